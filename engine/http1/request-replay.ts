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

// RFC 9110 section 5.6.7: IMF-fixdate and the obsolete RFC 850 form name GMT; asctime has no zone
// and means GMT too (Date.parse would read it as local time).
const GMT_DATE = /^[A-Za-z]{3,9}, [0-9]{2}[ -][A-Za-z]{3}[ -][0-9]{2,4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT$/;
const ASCTIME = /^[A-Za-z]{3} [A-Za-z]{3} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}$/;

/** Retry-After in seconds (delay-seconds or an HTTP-date), or -1 when absent or unreadable. */
export function parseRetryAfter(value: string, nowEpochMs: number): number {
  const v = value.trim();
  if (/^[0-9]+$/.test(v)) return Number(v);
  let at: number;
  if (GMT_DATE.test(v)) at = Date.parse(v);
  else if (ASCTIME.test(v)) at = Date.parse(`${v.replace(/ +/g, ' ')} GMT`);
  else return -1;
  return Number.isNaN(at) ? -1 : Math.max(0, (at - nowEpochMs) / 1000);
}
