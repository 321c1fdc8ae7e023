// A test-side HTTP/1 consumer that drives parseHead and ChunkedScanner exactly as the proxy does
// (keep the bytes from h.base, append the next read, parse again without reset; skip bodies; parse the
// next pipelined head), and records every result as plain data so that runs can be compared.

import { ErrorCode, errorInfo } from '../../engine/errors';
import { ChunkedScanner } from '../../engine/http1/chunked-scanner';
import { BodyKind, HeadInfo, markConnectionNamedFields, NEED_MORE, parseHead, PARSE_ERROR } from '../../engine/http1/head-parser';

export interface ParsedField {
  /** Lower-case name. */
  name: string;
  value: string;
  /** The whole field line as it arrived, CRLF included. */
  raw: string;
  drop: boolean;
}

export interface ParsedMessage {
  /** Absolute offset of the head's first byte (after a tolerated leading CRLF). */
  headStart: number;
  /** Absolute offset just past the head. */
  headEnd: number;
  method: string;
  target: string;
  versionMinor: number;
  statusCode: number;
  fields: ParsedField[];
  contentLength: number;
  chunked: boolean;
  bodyKind: BodyKind;
  conn: number;
  expectContinue: boolean;
  /** Absolute offset just past the body, or -1 while it is incomplete. */
  bodyEnd: number;
}

export interface StreamError {
  code: ErrorCode;
  /** The code's stable name, so that failures read well. */
  name: string;
  where: 'head' | 'body';
}

export interface StreamResult {
  messages: ParsedMessage[];
  error: StreamError | null;
}

const enum Phase {
  HeadStart,
  Head,
  Length,
  Chunked,
  UntilClose,
  Stopped,
}

const EMPTY = Buffer.alloc(0);

/** The strings and flags of a parsed head in `buf` (offsets relative to h.base). */
export function summarizeHead(buf: Buffer, h: HeadInfo, absBase: number, end: number): ParsedMessage {
  const b = h.base;
  const fields: ParsedField[] = [];
  for (let i = 0; i < h.count; i++) {
    fields.push({
      name: h.name(buf, i),
      value: h.value(buf, i),
      raw: buf.toString('latin1', b + h.lineStart(i), b + h.lineEnd(i)),
      drop: h.drop[i] === 1,
    });
  }
  return {
    headStart: absBase + b,
    headEnd: absBase + end,
    method: h.methodEnd > 0 ? buf.toString('latin1', b, b + h.methodEnd) : '',
    target: buf.toString('latin1', b + h.targetStart, b + h.targetEnd),
    versionMinor: h.versionMinor,
    statusCode: h.statusCode,
    fields,
    contentLength: h.contentLength,
    chunked: h.chunked,
    bodyKind: h.bodyKind,
    conn: h.conn,
    expectContinue: h.expectContinue,
    bodyEnd: -1,
  };
}

export class Http1Stream {
  private readonly h = new HeadInfo();
  private readonly scanner = new ChunkedScanner();
  private pending: Buffer = EMPTY;
  /** Absolute stream offset of pending[0]. */
  private abs = 0;
  private phase = Phase.HeadStart;
  private remaining = 0;
  private current: ParsedMessage | null = null;
  readonly messages: ParsedMessage[] = [];
  error: StreamError | null = null;

  constructor(
    private readonly isRequest: boolean,
    private readonly maxHeadBytes: number,
  ) {}

  feed(piece: Buffer): void {
    if (this.phase === Phase.Stopped) return;
    this.pending = this.pending.length === 0 ? piece : Buffer.concat([this.pending, piece]);
    this.pump();
  }

  result(): StreamResult {
    return { messages: this.messages, error: this.error };
  }

  private stop(code: ErrorCode, where: 'head' | 'body'): void {
    this.error = { code, name: errorInfo(code).name, where };
    this.phase = Phase.Stopped;
  }

  private consume(n: number): void {
    this.pending = n === this.pending.length ? EMPTY : this.pending.subarray(n);
    this.abs += n;
  }

  private pump(): void {
    for (;;) {
      switch (this.phase) {
        case Phase.HeadStart:
        case Phase.Head: {
          if (this.pending.length === 0) return;
          const h = this.h;
          if (this.phase === Phase.HeadStart) {
            h.reset(0);
            this.phase = Phase.Head;
          }
          const r = parseHead(this.pending, h, this.isRequest, this.maxHeadBytes);
          if (r === NEED_MORE) {
            if (h.base !== 0) {
              this.consume(h.base);
              h.base = 0;
            }
            return;
          }
          if (r === PARSE_ERROR) {
            this.stop(h.error, 'head');
            return;
          }
          if (r < 0 || r > this.pending.length) throw new Error(`parseHead returned ${r} for ${this.pending.length} bytes`);
          markConnectionNamedFields(this.pending, h);
          const m = summarizeHead(this.pending, h, this.abs, r);
          this.messages.push(m);
          this.current = m;
          this.consume(r);
          if (h.bodyKind === BodyKind.Length) {
            this.remaining = h.contentLength;
            this.phase = Phase.Length;
          } else if (h.bodyKind === BodyKind.Chunked) {
            this.scanner.reset();
            this.phase = Phase.Chunked;
          } else if (h.bodyKind === BodyKind.UntilClose) {
            this.phase = Phase.UntilClose;
          } else {
            m.bodyEnd = this.abs;
            this.phase = Phase.HeadStart;
          }
          break;
        }
        case Phase.Length: {
          const take = Math.min(this.remaining, this.pending.length);
          this.remaining -= take;
          this.consume(take);
          if (this.remaining > 0) return;
          this.current!.bodyEnd = this.abs;
          this.phase = Phase.HeadStart;
          break;
        }
        case Phase.Chunked: {
          if (this.pending.length === 0) return;
          const e = this.scanner.scan(this.pending, 0, this.pending.length);
          if (e === -1) {
            this.consume(this.pending.length);
            return;
          }
          if (e === -2) {
            this.stop(this.scanner.error, 'body');
            return;
          }
          if (e <= 0 || e > this.pending.length) throw new Error(`scan returned ${e} for ${this.pending.length} bytes`);
          this.consume(e);
          this.current!.bodyEnd = this.abs;
          this.phase = Phase.HeadStart;
          break;
        }
        case Phase.UntilClose:
          this.consume(this.pending.length);
          return;
        default:
          return;
      }
    }
  }
}

/** Feeds `bytes` split at the given sorted cut points (none: in one read) and returns what was parsed. */
export function feedSplit(bytes: Buffer, cuts: readonly number[], isRequest: boolean, maxHeadBytes = 65536): StreamResult {
  const s = new Http1Stream(isRequest, maxHeadBytes);
  let from = 0;
  for (const c of cuts) {
    if (c <= from || c >= bytes.length) continue;
    s.feed(bytes.subarray(from, c));
    from = c;
  }
  if (from < bytes.length) s.feed(bytes.subarray(from));
  return s.result();
}

/** Every offset in (0, len): one-byte reads. */
export function everyByte(len: number): number[] {
  const out: number[] = [];
  for (let i = 1; i < len; i++) out.push(i);
  return out;
}
