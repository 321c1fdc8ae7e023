// Incremental scanner for the chunked transfer coding (RFC 9112 section 7.1). It finds where a chunked
// body ends and validates its framing strictly, without copying or decoding: the proxy forwards the
// raw bytes it has scanned as they are. Chunk data is skipped in one step, only size lines, extensions
// and trailers are looked at byte by byte.

import { ErrorCode } from '../errors';
import { CR, FIELD_VCHAR, HEX_VALUE, HTAB, LF, SP, TCHAR } from './chars';

const enum S {
  Size = 0,
  /** After at least one hex digit. */
  SizeMore,
  /** Optional whitespace after the size, before ';' or CR. */
  SizeWs,
  /** BWS after ';', before the extension name. */
  ExtName,
  ExtNameChars,
  ExtNameWs,
  ExtValueStart,
  ExtToken,
  ExtQuoted,
  ExtQuotedEscape,
  ExtAfterValue,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  TrailerLine,
  TrailerLf,
  EndLf,
  Done,
}

/** Largest chunk size accepted (2^53 - 1 bytes would overflow a double's exact range). */
const MAX_SIZE_DIGITS = 13;
const MAX_LINE_BYTES = 4096;
const MAX_TRAILER_BYTES = 16 * 1024;

export class ChunkedScanner {
  private state: S = S.Size;
  private remaining = 0;
  private digits = 0;
  private lineBytes = 0;
  private trailerBytes = 0;
  error: ErrorCode = ErrorCode.None;
  /**
   * Called with each run of chunk data scanned (buf[start, end)), when a caller decodes the body
   * (HTTP/1 to HTTP/2 translation) instead of forwarding it as it is. Null on the forwarding path.
   */
  onData: ((buf: Buffer, start: number, end: number) => void) | null = null;

  reset(): void {
    this.state = S.Size;
    this.remaining = 0;
    this.digits = 0;
    this.lineBytes = 0;
    this.trailerBytes = 0;
    this.error = ErrorCode.None;
  }

  get done(): boolean {
    return this.state === S.Done;
  }

  /**
   * Scans buf[start, end). Returns the offset just past the body's last byte when the body ends inside
   * this range, -1 when all of it belongs to the body and more is needed, -2 on a framing error (see error).
   */
  scan(buf: Buffer, start: number, end: number): number {
    let p = start;
    let st = this.state;
    while (p < end) {
      if (st === S.Data) {
        const avail = end - p;
        if (avail < this.remaining) {
          this.remaining -= avail;
          this.state = st;
          if (this.onData !== null && avail > 0) this.onData(buf, p, end);
          return -1;
        }
        if (this.onData !== null && this.remaining > 0) this.onData(buf, p, p + this.remaining);
        p += this.remaining;
        this.remaining = 0;
        st = S.DataCr;
        continue;
      }
      const c = buf[p++];
      switch (st) {
        case S.Size: {
          const v = HEX_VALUE[c];
          if (v === 255) return this.fail(ErrorCode.BadChunkSize);
          this.remaining = v;
          this.digits = 1;
          this.lineBytes = 1;
          st = S.SizeMore;
          break;
        }
        case S.SizeMore: {
          const v = HEX_VALUE[c];
          if (v !== 255) {
            if (++this.digits > MAX_SIZE_DIGITS) return this.fail(ErrorCode.BadChunkSize);
            this.remaining = this.remaining * 16 + v;
            this.lineBytes++;
          } else if (c === CR) st = S.SizeLf;
          else if (c === SP || c === HTAB) st = S.SizeWs;
          else if (c === 0x3b) st = S.ExtName;
          else return this.fail(ErrorCode.BadChunkSize);
          break;
        }
        default:
          st = this.extOrFraming(st, c);
          if (st < 0) return -2;
          if (st === S.Done) {
            this.state = S.Done;
            return p;
          }
          if (st <= S.ExtAfterValue && ++this.lineBytes > MAX_LINE_BYTES) return this.fail(ErrorCode.BadChunkExtension);
      }
    }
    this.state = st;
    return -1;
  }

  private fail(code: ErrorCode): number {
    this.error = code;
    return -2;
  }

  /** The states past the size digits; returns the next state, or -1 on error (error set). */
  private extOrFraming(st: S, c: number): S {
    switch (st) {
      case S.SizeWs:
        // Whitespace after the size is only allowed as BWS before an extension (a smuggling vector).
        if (c === 0x3b) return S.ExtName;
        if (c === SP || c === HTAB) return st;
        return this.failState(ErrorCode.BadChunkSize);
      case S.ExtName:
        if (TCHAR[c] === 1) return S.ExtNameChars;
        if (c === SP || c === HTAB) return st;
        return this.failState(ErrorCode.BadChunkExtension);
      case S.ExtNameChars:
        if (TCHAR[c] === 1) return st;
        if (c === 0x3d) return S.ExtValueStart;
        if (c === SP || c === HTAB) return S.ExtNameWs;
        if (c === 0x3b) return S.ExtName;
        if (c === CR) return S.SizeLf;
        return this.failState(ErrorCode.BadChunkExtension);
      case S.ExtNameWs:
        if (c === SP || c === HTAB) return st;
        if (c === 0x3d) return S.ExtValueStart;
        if (c === 0x3b) return S.ExtName;
        if (c === CR) return S.SizeLf;
        return this.failState(ErrorCode.BadChunkExtension);
      case S.ExtValueStart:
        if (c === SP || c === HTAB) return st;
        if (c === 0x22) return S.ExtQuoted;
        if (TCHAR[c] === 1) return S.ExtToken;
        return this.failState(ErrorCode.BadChunkExtension);
      case S.ExtToken:
        if (TCHAR[c] === 1) return st;
        if (c === SP || c === HTAB) return S.ExtAfterValue;
        if (c === 0x3b) return S.ExtName;
        if (c === CR) return S.SizeLf;
        return this.failState(ErrorCode.BadChunkExtension);
      case S.ExtQuoted:
        if (c === 0x22) return S.ExtAfterValue;
        if (c === 0x5c) return S.ExtQuotedEscape;
        if (c === HTAB || c === SP || (c >= 0x21 && c !== 0x7f)) return st;
        return this.failState(ErrorCode.BadChunkExtension);
      case S.ExtQuotedEscape:
        if (c === HTAB || c === SP || (c >= 0x21 && c !== 0x7f)) return S.ExtQuoted;
        return this.failState(ErrorCode.BadChunkExtension);
      case S.ExtAfterValue:
        if (c === SP || c === HTAB) return st;
        if (c === 0x3b) return S.ExtName;
        if (c === CR) return S.SizeLf;
        return this.failState(ErrorCode.BadChunkExtension);
      case S.SizeLf:
        if (c !== LF) return this.failState(ErrorCode.BadChunkFraming);
        if (this.remaining === 0) {
          this.trailerBytes = 0;
          return S.TrailerStart;
        }
        return S.Data;
      case S.DataCr:
        return c === CR ? S.DataLf : this.failState(ErrorCode.BadChunkFraming);
      case S.DataLf:
        return c === LF ? S.Size : this.failState(ErrorCode.BadChunkFraming);
      case S.TrailerStart:
        if (c === CR) return S.EndLf;
        if (TCHAR[c] !== 1) return this.failState(ErrorCode.BadTrailer);
        return this.countTrailer(S.TrailerLine);
      case S.TrailerLine:
        if (c === CR) return this.countTrailer(S.TrailerLf);
        if (FIELD_VCHAR[c] !== 1 && c !== 0x3a) return this.failState(ErrorCode.BadTrailer);
        return this.countTrailer(st);
      case S.TrailerLf:
        return c === LF ? S.TrailerStart : this.failState(ErrorCode.BadTrailer);
      case S.EndLf:
        return c === LF ? S.Done : this.failState(ErrorCode.BadChunkFraming);
      default:
        return this.failState(ErrorCode.BadChunkFraming);
    }
  }

  private countTrailer(next: S): S {
    if (++this.trailerBytes > MAX_TRAILER_BYTES) return this.failState(ErrorCode.BadTrailer);
    return next;
  }

  private failState(code: ErrorCode): S {
    this.error = code;
    return -1 as S;
  }
}
