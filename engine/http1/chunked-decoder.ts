// Incremental decoder of the chunked transfer coding (RFC 9112 section 7.1) for a body that wants its
// payload (e.g. MCP inspection of a chunked response): it reports each run of chunk data as a zero-copy
// subarray of the pushed buffer. Framing is validated strictly by ChunkedScanner on the forwarding path;
// this decoder is lenient about extensions and trailer contents (skipped without checking their grammar)
// but bounds every line and fails, never throws or spins, on malformed framing.

import { CR, HEX_VALUE, HTAB, LF, SP } from './chars';

const enum S {
  Size = 0,
  /** After at least one hex digit. */
  SizeMore,
  /** After the size: whitespace and extensions, skipped up to CR. */
  Ext,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  TrailerLine,
  TrailerLf,
  EndLf,
  Done,
  Failed,
}

/** As in ChunkedScanner: 13 hex digits stay below 2^53. */
const MAX_SIZE_DIGITS = 13;
const MAX_LINE_BYTES = 4096;
const MAX_TRAILER_BYTES = 16 * 1024;

export class ChunkedDecoder {
  private readonly onData: (slice: Buffer) => void;
  private state: S = S.Size;
  private remaining = 0;
  private digits = 0;
  private lineBytes = 0;
  private trailerBytes = 0;

  /** onData receives each run of chunk data as buf.subarray(...) of the buffer being pushed: valid only
   *  for as long as the caller keeps that buffer unchanged (copy it to keep it). */
  constructor(onData: (slice: Buffer) => void) {
    this.onData = onData;
  }

  /** The last chunk and the trailer section's final CRLF were seen. */
  get done(): boolean {
    return this.state === S.Done;
  }

  reset(): void {
    this.state = S.Size;
    this.remaining = 0;
    this.digits = 0;
    this.lineBytes = 0;
    this.trailerBytes = 0;
  }

  /**
   * Decodes the framed bytes buf[start, end) (default: all of buf), any split of the body. Returns false
   * on a framing error, and from then on until reset(); also false for bytes pushed after the body ended
   * (they are not part of it: the caller passes only the body, as ChunkedScanner delimited it).
   */
  push(buf: Buffer, start = 0, end = buf.length): boolean {
    let st = this.state;
    if (st === S.Failed || start < 0 || end > buf.length || start > end) return this.fail();
    let p = start;
    while (p < end) {
      if (st === S.Data) {
        const avail = end - p;
        if (avail < this.remaining) {
          this.remaining -= avail;
          this.state = st;
          this.onData(buf.subarray(p, end));
          return true;
        }
        const q = p + this.remaining;
        this.remaining = 0;
        st = S.DataCr;
        // State saved first: onData may throw, and the decoder must not report these bytes twice.
        this.state = st;
        this.onData(buf.subarray(p, q));
        p = q;
        continue;
      }
      const c = buf[p++];
      switch (st) {
        case S.Size: {
          const v = HEX_VALUE[c];
          if (v === 255) return this.fail();
          this.remaining = v;
          this.digits = 1;
          this.lineBytes = 1;
          st = S.SizeMore;
          break;
        }
        case S.SizeMore: {
          const v = HEX_VALUE[c];
          if (v !== 255) {
            if (++this.digits > MAX_SIZE_DIGITS) return this.fail();
            this.remaining = this.remaining * 16 + v;
            this.lineBytes++;
          } else if (c === CR) st = S.SizeLf;
          else if (c === 0x3b || c === SP || c === HTAB) st = S.Ext;
          else return this.fail();
          break;
        }
        case S.Ext:
          if (c === CR) st = S.SizeLf;
          else if (c === LF || ++this.lineBytes > MAX_LINE_BYTES) return this.fail();
          break;
        case S.SizeLf:
          if (c !== LF) return this.fail();
          if (this.remaining === 0) {
            this.trailerBytes = 0;
            st = S.TrailerStart;
          } else st = S.Data;
          break;
        case S.DataCr:
          if (c !== CR) return this.fail();
          st = S.DataLf;
          break;
        case S.DataLf:
          if (c !== LF) return this.fail();
          st = S.Size;
          break;
        case S.TrailerStart:
          if (c === CR) st = S.EndLf;
          else if (c === LF || ++this.trailerBytes > MAX_TRAILER_BYTES) return this.fail();
          else st = S.TrailerLine;
          break;
        case S.TrailerLine:
          if (c === CR) st = S.TrailerLf;
          else if (c === LF || ++this.trailerBytes > MAX_TRAILER_BYTES) return this.fail();
          break;
        case S.TrailerLf:
          if (c !== LF) return this.fail();
          st = S.TrailerStart;
          break;
        case S.EndLf:
          if (c !== LF) return this.fail();
          st = S.Done;
          break;
        default:
          // Done (bytes past the body) or Failed.
          return this.fail();
      }
    }
    this.state = st;
    return true;
  }

  private fail(): false {
    this.state = S.Failed;
    return false;
  }
}
