// A log for lines that clients can cause (denials): at most `perSecond` lines a second, then one line
// with the count of the rest, so that a flood of denied calls cannot flood the log.

export type LogFn = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export class RateLimitedLog {
  private windowMs = 0;
  private logged = 0;
  private suppressed = 0;

  constructor(
    private readonly log: LogFn,
    /** What the count line says was not logged. */
    private readonly what: string,
    private readonly perSecond = 10,
  ) {}

  info(msg: string, fields: Record<string, unknown>): void {
    const now = Date.now();
    if (now - this.windowMs >= 1000) {
      if (this.suppressed > 0) this.log('info', `${this.what} not logged (rate limit)`, { count: this.suppressed, windowMs: 1000 });
      this.windowMs = now;
      this.logged = 0;
      this.suppressed = 0;
    }
    if (this.logged++ >= this.perSecond) {
      this.suppressed++;
      return;
    }
    this.log('info', msg, fields);
  }
}
