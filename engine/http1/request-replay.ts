// Copies of a request body as it was forwarded, kept so that the request can be sent again on a
// retry. Bounded: past the limit the copies are dropped and the request is no longer retried.

export class BodyReplay {
  readonly chunks: Buffer[] = [];
  bytes = 0;
  /** The body outgrew the limit: nothing is kept. */
  overflow = false;

  constructor(private readonly limit: number) {}

  /** Keeps `chunk`; a copy when it lies in a socket's read buffer (`transient`), which the next read refills. */
  add(chunk: Buffer, transient: boolean): void {
    if (this.overflow) return;
    this.bytes += chunk.length;
    if (this.bytes > this.limit) {
      this.overflow = true;
      this.chunks.length = 0;
      return;
    }
    this.chunks.push(transient ? Buffer.from(chunk) : chunk);
  }
}

/** Retry-After in seconds (delay-seconds or an HTTP-date), or -1 when absent or unreadable. */
export function parseRetryAfter(value: string, nowEpochMs: number): number {
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v);
  const at = Date.parse(v);
  return Number.isNaN(at) ? -1 : Math.max(0, (at - nowEpochMs) / 1000);
}
