// Incremental parser of a text/event-stream body (WHATWG HTML, "event stream interpretation") for MCP
// inspection: it reads the decoded body bytes the proxy forwards untouched, in any split, and reports
// each dispatched event. It never keeps a reference to a pushed chunk: only a partial line at the end of
// a chunk is copied (into a buffer reused across lines), and strings are made only for field values.

import { isAscii } from 'node:buffer';

const LF = 10;
const CR = 13;
const SP = 32;
const COLON = 58;
const BOM = [0xef, 0xbb, 0xbf] as const;
/** bomPos value once the start of the stream is past (BOM skipped, or absent). */
const BOM_DONE = 3;

/** Chunks shorter than this are not checked for ASCII (see push): they take the UTF-8 path. */
const MIN_ASCII_CHECK_BYTES = 128;

/** Buffer's own slice methods, called directly (as toString does after its argument checks). */
type SliceBuffer = Buffer & { latin1Slice(start: number, end: number): string; utf8Slice(start: number, end: number): string };

export interface SseEvent {
  /**
   * The value of the id field of THIS event, or null when the event had none. This differs from the
   * spec's "last event ID", which persists across events: a caller that needs it (Last-Event-ID on
   * reconnection) keeps the last non-null id itself. An id field containing NUL is ignored (spec), and
   * an id given in a block that dispatches nothing (no data line) is not reported.
   */
  id: string | null;
  /** The event field's value, '' when there was none (the spec's default type 'message'). */
  event: string;
  /** The data lines joined with '\n' (the spec's data buffer without its final LF). */
  data: string;
  /**
   * The last valid retry field of this event's block (ASCII digits only, in ms), -1 when none. The spec
   * applies retry at once even when the block dispatches nothing; such a retry is not reported.
   */
  retry: number;
}

export class SseParser {
  private readonly onEvent: (ev: SseEvent) => void;
  private readonly maxEventBytes: number;
  /** The partial line carried from one push to the next: line[0, lineLen). */
  private line: Buffer = Buffer.alloc(0);
  private lineLen = 0;
  /** Every byte of the partial line is ASCII (values from it can then be made with latin1Slice). */
  private lineAscii = true;
  /** The previous line ended in CR at the end of a chunk: an LF starting the next chunk belongs to it. */
  private skipLf = false;
  private bomPos = 0;
  private isFailed = false;
  private data = '';
  private dataLines = 0;
  /** Bytes of the data buffer (UTF-8, one LF per line): what maxEventBytes bounds. */
  private dataBytes = 0;
  private eventType = '';
  private id: string | null = null;
  private retry = -1;

  /** maxEventBytes bounds both the data of one event and the length of any one line (default 4 MiB). */
  constructor(onEvent: (ev: SseEvent) => void, maxEventBytes = 4 * 1024 * 1024) {
    this.onEvent = onEvent;
    this.maxEventBytes = maxEventBytes;
  }

  /** True once an event's data or a line grew past maxEventBytes; further input is ignored until reset(). */
  get failed(): boolean {
    return this.isFailed;
  }

  /**
   * Bytes held for the incomplete line and event: the partial line copied from the last chunk, the data
   * buffer's bytes, and a partial BOM at the stream's start (for tests and accounting).
   */
  get heldBytes(): number {
    return this.lineLen + this.dataBytes + (this.bomPos < BOM_DONE ? this.bomPos : 0);
  }

  /**
   * Forgets everything, including a failure: the next push starts a new stream (BOM and all). Not to be
   * called from onEvent while a push is running (the rest of that chunk would still be parsed).
   */
  reset(): void {
    this.isFailed = false;
    this.discard();
  }

  /**
   * The stream ended: an incomplete line and an incomplete event are discarded (spec). The parser is
   * then ready for a new stream; a failure stays until reset().
   */
  end(): void {
    this.discard();
  }

  /**
   * Feeds chunk (any split of the stream). Events are reported synchronously, in order, before push
   * returns. Returns false once the parser failed (see maxEventBytes); it then ignores further input.
   */
  push(chunk: Buffer): boolean {
    if (this.isFailed) return false;
    const len = chunk.length;
    let p = 0;
    if (this.bomPos < BOM_DONE) {
      p = this.skipBom(chunk);
      if (p === len) return true;
    }
    if (this.skipLf) {
      if (p === len) return true;
      this.skipLf = false;
      if (chunk[p] === LF) p++;
    }
    // Cached positions of the next CR and LF at or after p; -1: none left in this chunk; -2: not searched.
    // Each is searched again only once p has passed it, so a chunk is scanned at most twice in all.
    let cr = -2;
    let lf = -2;
    // Whether the chunk is all ASCII (-1: not yet known): then values are made with latin1Slice, which
    // skips UTF-8 decoding (about 40 % cheaper for a 150-byte value). Asked once per chunk, when needed;
    // a small chunk is not asked (0), as the call costs about what it saves there.
    let ascii = len < MIN_ASCII_CHECK_BYTES ? 0 : -1;
    while (p < len) {
      let eol: number;
      const c0 = chunk[p];
      if (c0 === LF || c0 === CR) eol = p; // a blank line, or the end of a held line: no search
      else {
        if (lf !== -1 && lf < p) lf = chunk.indexOf(LF, p);
        if (cr !== -1 && cr < p) cr = chunk.indexOf(CR, p);
        eol = lf === -1 ? cr : cr === -1 || lf < cr ? lf : cr;
        if (eol === -1) {
          if (ascii === -1) ascii = isAscii(chunk) ? 1 : 0;
          this.hold(chunk, p, len, ascii === 1);
          break;
        }
      }
      if (this.lineLen > 0) {
        if (eol > p && ascii === -1) ascii = isAscii(chunk) ? 1 : 0;
        this.hold(chunk, p, eol, ascii === 1);
        if (this.isFailed) return false;
        const n = this.lineLen;
        this.lineLen = 0;
        this.field(this.line as SliceBuffer, 0, n, this.lineAscii);
      } else {
        if (ascii === -1 && eol > p && c0 !== COLON) ascii = isAscii(chunk) ? 1 : 0;
        this.field(chunk as SliceBuffer, p, eol, ascii === 1);
      }
      if (this.isFailed) return false;
      p = eol + 1;
      if (chunk[eol] === CR) {
        if (p === len) this.skipLf = true;
        else if (chunk[p] === LF) p++;
      }
    }
    return !this.isFailed;
  }

  private discard(): void {
    this.lineLen = 0;
    this.skipLf = false;
    this.bomPos = 0;
    this.clearEvent();
    // A line buffer grown for one huge line is not kept for the next stream.
    if (this.line.length > 256 * 1024) this.line = Buffer.alloc(0);
  }

  private clearEvent(): void {
    this.data = '';
    this.dataLines = 0;
    this.dataBytes = 0;
    this.eventType = '';
    this.id = null;
    this.retry = -1;
  }

  /** Matches the stream's leading BOM, possibly split across chunks; returns where the stream proper starts. */
  private skipBom(chunk: Buffer): number {
    let p = 0;
    while (this.bomPos < BOM_DONE && p < chunk.length) {
      if (chunk[p] === BOM[this.bomPos]) {
        this.bomPos++;
        p++;
        continue;
      }
      // Not a BOM after all: the bytes matched so far (from earlier chunks) start the first line.
      const matched = this.bomPos;
      this.bomPos = BOM_DONE;
      if (matched > 0) this.hold(Buffer.from(BOM.slice(0, matched)), 0, matched, false);
    }
    return p;
  }

  /**
   * Copies buf[start, end) to the end of the partial line (ascii: those bytes are known to be ASCII);
   * fails when the line grows past the limit.
   */
  private hold(buf: Buffer, start: number, end: number, ascii: boolean): void {
    const n = end - start;
    if (n === 0) return;
    this.lineAscii = (this.lineLen === 0 || this.lineAscii) && ascii;
    const need = this.lineLen + n;
    if (need > this.maxEventBytes) {
      this.fail();
      return;
    }
    if (need > this.line.length) {
      const grown = Buffer.allocUnsafe(Math.min(Math.max(need, this.line.length * 2, 256), this.maxEventBytes));
      this.line.copy(grown, 0, 0, this.lineLen);
      this.line = grown;
    }
    buf.copy(this.line, this.lineLen, start, end);
    this.lineLen = need;
  }

  private fail(): void {
    this.isFailed = true;
    this.lineLen = 0;
    this.clearEvent();
  }

  /** Interprets one complete line buf[s, e) (without its terminator); ascii: buf[s, e) is known to be ASCII. */
  private field(buf: SliceBuffer, s: number, e: number, ascii: boolean): void {
    if (s === e) {
      this.dispatch();
      return;
    }
    if (e - s > this.maxEventBytes) {
      this.fail();
      return;
    }
    if (buf[s] === COLON) return; // comment
    let colon = s;
    while (colon < e && buf[colon] !== COLON) colon++;
    let v = colon + 1;
    if (colon === e) v = e;
    else if (v < e && buf[v] === SP) v++;
    switch (colon - s) {
      case 4:
        // "data"
        if (buf[s] === 0x64 && buf[s + 1] === 0x61 && buf[s + 2] === 0x74 && buf[s + 3] === 0x61) {
          this.dataBytes += e - v + 1;
          if (this.dataBytes > this.maxEventBytes) {
            this.fail();
            return;
          }
          const value = ascii ? buf.latin1Slice(v, e) : buf.utf8Slice(v, e);
          this.data = this.dataLines === 0 ? value : this.data + '\n' + value;
          this.dataLines++;
        }
        return;
      case 5:
        // "event"
        if (buf[s] === 0x65 && buf[s + 1] === 0x76 && buf[s + 2] === 0x65 && buf[s + 3] === 0x6e && buf[s + 4] === 0x74) {
          this.eventType = isMessage(buf, v, e) ? 'message' : ascii ? buf.latin1Slice(v, e) : buf.utf8Slice(v, e);
        } else if (buf[s] === 0x72 && buf[s + 1] === 0x65 && buf[s + 2] === 0x74 && buf[s + 3] === 0x72 && buf[s + 4] === 0x79) {
          // "retry"
          const r = parseRetry(buf, v, e);
          if (r >= 0) this.retry = r;
        }
        return;
      case 2:
        // "id"
        if (buf[s] === 0x69 && buf[s + 1] === 0x64) {
          for (let i = v; i < e; i++) if (buf[i] === 0) return;
          this.id = ascii ? buf.latin1Slice(v, e) : buf.utf8Slice(v, e);
        }
        return;
      default:
        return; // unknown fields are ignored
    }
  }

  private dispatch(): void {
    if (this.dataLines === 0) {
      // Nothing to dispatch; the event type (and our per-event id and retry) start afresh.
      this.clearEvent();
      return;
    }
    const ev: SseEvent = { id: this.id, event: this.eventType, data: this.data, retry: this.retry };
    // Cleared before the callback, which may push or reset re-entrantly.
    this.clearEvent();
    this.onEvent(ev);
  }
}

function isMessage(buf: Buffer, v: number, e: number): boolean {
  return (
    e - v === 7 &&
    buf[v] === 0x6d && buf[v + 1] === 0x65 && buf[v + 2] === 0x73 && buf[v + 3] === 0x73 &&
    buf[v + 4] === 0x61 && buf[v + 5] === 0x67 && buf[v + 6] === 0x65
  );
}

/** The retry value buf[v, e) in ms, or -1 unless it is one or more ASCII digits. */
function parseRetry(buf: Buffer, v: number, e: number): number {
  if (v === e) return -1;
  let n = 0;
  for (let i = v; i < e; i++) {
    const d = buf[i] - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  // Past 2^53 the running sum rounds differently from a decimal parse; such values only need to be big.
  return e - v > 15 ? Number(buf.toString('latin1', v, e)) : n;
}

/**
 * Serialises an event back to the wire format (for the proxy's rewrite path): id, event and retry lines
 * when set, one data line per line of data (CR, LF and CRLF in data all split lines), then a blank line.
 * Throws a TypeError when id or event contains CR or LF (or id NUL), or retry is not a safe integer:
 * such an event cannot be written without changing the stream's framing.
 */
export function formatSseEvent(ev: SseEvent): Buffer {
  let s = '';
  if (ev.id !== null) {
    if (/[\r\n\0]/.test(ev.id)) throw new TypeError('SSE id must not contain CR, LF or NUL');
    s += `id: ${ev.id}\n`;
  }
  if (ev.event !== '') {
    if (/[\r\n]/.test(ev.event)) throw new TypeError('SSE event type must not contain CR or LF');
    s += `event: ${ev.event}\n`;
  }
  if (ev.retry >= 0) {
    if (!Number.isSafeInteger(ev.retry)) throw new TypeError(`SSE retry must be an integer, got ${ev.retry}`);
    s += `retry: ${ev.retry}\n`;
  }
  const data = ev.data;
  if (data.indexOf('\r') === -1) {
    s += `data: ${data.indexOf('\n') === -1 ? data : data.split('\n').join('\ndata: ')}\n\n`;
  } else {
    s += `data: ${data.split(/\r\n|\r|\n/).join('\ndata: ')}\n\n`;
  }
  return Buffer.from(s, 'utf8');
}
