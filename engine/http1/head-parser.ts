// Strict, incremental HTTP/1.1 head parser (RFC 9112) that works in place over a Buffer: it records
// offsets, never strings, and validates every byte against the smuggling rules as it goes. A head
// that arrives in several reads is parsed line by line, so a slow client costs O(n) in total.

import { ErrorCode } from '../errors';
import { COLON, CR, equalsExact, equalsLower, FIELD_VCHAR, HTAB, LF, SP, TARGET_CHAR, TCHAR } from './chars';

export const enum Method {
  Other = 0,
  Get,
  Head,
  Post,
  Put,
  Delete,
  Connect,
  Options,
  Trace,
  Patch,
}

export const enum BodyKind {
  None = 0,
  Length,
  Chunked,
  /** Response delimited by the upstream closing the connection. */
  UntilClose,
}

/** Flags in HeadInfo.conn, from the Connection header's tokens. */
export const enum ConnFlag {
  Close = 1,
  KeepAlive = 2,
  Upgrade = 4,
  /** Tokens other than close/keep-alive/upgrade: they name headers to drop. */
  Other = 8,
}

export const MAX_HEADERS = 128;

/**
 * What the parser learned about one head. All offsets are relative to `base`, the head's first byte in
 * the buffer being parsed, so that a partial head can be moved to a new buffer without fixing them up.
 * One instance per connection side is reused for every message.
 */
export class HeadInfo {
  base = 0;
  /** Relative offset of the next unparsed line while the head is incomplete. */
  scan = 0;
  /** Relative offset up to which that line has been searched for LF (a long line fed slowly stays O(n)). */
  searched = 0;
  lines = 0;
  /** Relative offset just past the blank line that ends the head (0 until complete). */
  headLen = 0;

  // start line
  method: Method = Method.Other;
  methodEnd = 0;
  targetStart = 0;
  targetEnd = 0;
  versionMinor = 1;
  statusCode = 0;

  // header fields: [nameStart, nameEnd, valueStart, valueEnd, lineStart, lineEnd(after LF)] per field
  count = 0;
  readonly fields = new Int32Array(MAX_HEADERS * 6);
  /** 1 where the field is hop-by-hop (or a duplicate) and must not be forwarded. */
  readonly drop = new Uint8Array(MAX_HEADERS);
  dropCount = 0;

  contentLength = -1;
  /** Transfer-Encoding present; chunked when its final coding is chunked. */
  hasTransferEncoding = false;
  chunked = false;
  conn = 0;
  hostField = -1;
  upgradeField = -1;
  connectionField = -1;
  expectContinue = false;
  bodyKind: BodyKind = BodyKind.None;
  error: ErrorCode = ErrorCode.None;

  reset(base: number): void {
    this.base = base;
    this.scan = 0;
    this.searched = 0;
    this.lines = 0;
    this.headLen = 0;
    this.method = Method.Other;
    this.methodEnd = 0;
    this.targetStart = 0;
    this.targetEnd = 0;
    this.versionMinor = 1;
    this.statusCode = 0;
    if (this.dropCount !== 0) this.drop.fill(0, 0, this.count);
    this.count = 0;
    this.dropCount = 0;
    this.contentLength = -1;
    this.hasTransferEncoding = false;
    this.chunked = false;
    this.conn = 0;
    this.hostField = -1;
    this.upgradeField = -1;
    this.connectionField = -1;
    this.expectContinue = false;
    this.bodyKind = BodyKind.None;
    this.error = ErrorCode.None;
  }

  markDrop(i: number): void {
    if (this.drop[i] === 0) {
      this.drop[i] = 1;
      this.dropCount++;
    }
  }

  nameStart(i: number): number { return this.fields[i * 6]; }
  nameEnd(i: number): number { return this.fields[i * 6 + 1]; }
  valueStart(i: number): number { return this.fields[i * 6 + 2]; }
  valueEnd(i: number): number { return this.fields[i * 6 + 3]; }
  lineStart(i: number): number { return this.fields[i * 6 + 4]; }
  lineEnd(i: number): number { return this.fields[i * 6 + 5]; }

  /** A header value as a latin1 string (for routing and the slow paths only). */
  value(buf: Buffer, i: number): string {
    return buf.toString('latin1', this.base + this.fields[i * 6 + 2], this.base + this.fields[i * 6 + 3]);
  }
  name(buf: Buffer, i: number): string {
    return buf.toString('latin1', this.base + this.fields[i * 6], this.base + this.fields[i * 6 + 1]).toLowerCase();
  }
  /** Marks every field with this lower-case name as dropped; returns how many. */
  dropAll(buf: Buffer, lowerName: string): number {
    const f = this.fields;
    const b = this.base;
    let n = 0;
    for (let i = 0; i < this.count; i++) {
      if (f[i * 6 + 1] - f[i * 6] === lowerName.length && equalsLower(buf, b + f[i * 6], b + f[i * 6 + 1], lowerName)) {
        this.markDrop(i);
        n++;
      }
    }
    return n;
  }

  /** Index of the first field with this lower-case name, or -1. */
  find(buf: Buffer, lowerName: string): number {
    const f = this.fields;
    const b = this.base;
    for (let i = 0; i < this.count; i++) {
      if (equalsLower(buf, b + f[i * 6], b + f[i * 6 + 1], lowerName)) return i;
    }
    return -1;
  }
}

/** Result of parseHead: > 0 the absolute offset just past the head; 0 need more bytes; -1 error (see h.error). */
export const NEED_MORE = 0;
export const PARSE_ERROR = -1;

/**
 * Parses (or continues parsing) a head that starts at h.base in buf. `isRequest` selects the start line
 * grammar. Call h.reset(base) before the first call for a new message.
 */
export function parseHead(buf: Buffer, h: HeadInfo, isRequest: boolean, maxHeadBytes: number): number {
  let base = h.base;
  const end = buf.length;
  let pos = base + h.scan;
  for (;;) {
    const lf = buf.indexOf(LF, base + h.searched > pos ? base + h.searched : pos);
    if (lf === -1) {
      if (end - base > maxHeadBytes) return fail(h, ErrorCode.HeadTooLarge);
      h.searched = end - base;
      return NEED_MORE;
    }
    h.searched = 0;
    if (lf + 1 - base > maxHeadBytes) return fail(h, ErrorCode.HeadTooLarge);
    if (lf === pos || buf[lf - 1] !== CR) return fail(h, ErrorCode.BareLf);
    const lineEnd = lf - 1;
    if (h.lines === 0) {
      if (lineEnd === pos) {
        // One empty line before a request line is tolerated (RFC 9112 2.2): the head starts after it.
        if (!isRequest || h.scan !== 0 || h.methodEnd === -1) return fail(h, ErrorCode.BadRequestLine);
        h.methodEnd = -1;
        base = h.base = lf + 1;
        pos = base;
        continue;
      }
      const err = isRequest ? parseRequestLine(buf, pos, lineEnd, h) : parseStatusLine(buf, pos, lineEnd, h);
      if (err !== ErrorCode.None) return fail(h, err);
    } else if (lineEnd === pos) {
      h.headLen = lf + 1 - base;
      const err = isRequest ? finishRequest(h) : finishResponse(h);
      if (err !== ErrorCode.None) return fail(h, err);
      return lf + 1;
    } else {
      const err = parseField(buf, pos, lineEnd, lf + 1, h);
      if (err !== ErrorCode.None) return fail(h, err);
    }
    h.lines++;
    pos = lf + 1;
    h.scan = pos - base;
  }
}

function fail(h: HeadInfo, code: ErrorCode): number {
  h.error = code;
  return PARSE_ERROR;
}

function methodOf(buf: Buffer, s: number, e: number): Method {
  const n = e - s;
  const c = buf[s];
  switch (n) {
    case 3:
      if (c === 0x47 && buf[s + 1] === 0x45 && buf[s + 2] === 0x54) return Method.Get;
      if (c === 0x50 && buf[s + 1] === 0x55 && buf[s + 2] === 0x54) return Method.Put;
      return Method.Other;
    case 4:
      if (equalsExact(buf, s, e, 'HEAD')) return Method.Head;
      if (equalsExact(buf, s, e, 'POST')) return Method.Post;
      return Method.Other;
    case 5:
      if (equalsExact(buf, s, e, 'PATCH')) return Method.Patch;
      if (equalsExact(buf, s, e, 'TRACE')) return Method.Trace;
      return Method.Other;
    case 6:
      return equalsExact(buf, s, e, 'DELETE') ? Method.Delete : Method.Other;
    case 7:
      if (equalsExact(buf, s, e, 'CONNECT')) return Method.Connect;
      if (equalsExact(buf, s, e, 'OPTIONS')) return Method.Options;
      return Method.Other;
    default:
      return Method.Other;
  }
}

/** "HTTP/1.1" at [p, p+8): returns the minor version, -1 malformed, -2 unsupported major. */
function parseVersion(buf: Buffer, p: number, e: number): number {
  if (e - p !== 8) return -1;
  if (buf[p] !== 0x48 || buf[p + 1] !== 0x54 || buf[p + 2] !== 0x54 || buf[p + 3] !== 0x50 || buf[p + 4] !== 0x2f) return -1;
  const major = buf[p + 5] - 0x30;
  const minor = buf[p + 7] - 0x30;
  if (major < 0 || major > 9 || minor < 0 || minor > 9 || buf[p + 6] !== 0x2e) return -1;
  if (major !== 1) return -2;
  return minor;
}

function parseRequestLine(buf: Buffer, s: number, e: number, h: HeadInfo): ErrorCode {
  let p = s;
  while (p < e && TCHAR[buf[p]] === 1) p++;
  if (p === s || p >= e || buf[p] !== SP) return lineError(buf, s, e, ErrorCode.BadRequestLine);
  h.method = methodOf(buf, s, p);
  h.methodEnd = p - h.base;
  const ts = ++p;
  while (p < e && TARGET_CHAR[buf[p]] === 1) p++;
  if (p === ts || p >= e || buf[p] !== SP) return lineError(buf, s, e, ErrorCode.BadRequestLine);
  h.targetStart = ts - h.base;
  h.targetEnd = p - h.base;
  const minor = parseVersion(buf, p + 1, e);
  if (minor === -2) return ErrorCode.VersionNotSupported;
  if (minor < 0) return lineError(buf, s, e, ErrorCode.BadVersion);
  h.versionMinor = minor;
  return ErrorCode.None;
}

/** `code`, unless the line holds a CR: a bare CR is reported as such wherever it is. */
function lineError(buf: Buffer, s: number, e: number, code: ErrorCode): ErrorCode {
  const cr = buf.indexOf(CR, s);
  return cr !== -1 && cr < e ? ErrorCode.BareCr : code;
}

function parseStatusLine(buf: Buffer, s: number, e: number, h: HeadInfo): ErrorCode {
  if (e - s < 12) return lineError(buf, s, e, ErrorCode.BadRequestLine);
  const minor = parseVersion(buf, s, s + 8);
  if (minor < 0 || buf[s + 8] !== SP) return lineError(buf, s, e, ErrorCode.BadVersion);
  h.versionMinor = minor;
  const d0 = buf[s + 9] - 0x30, d1 = buf[s + 10] - 0x30, d2 = buf[s + 11] - 0x30;
  if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) return lineError(buf, s, e, ErrorCode.BadRequestLine);
  h.statusCode = d0 * 100 + d1 * 10 + d2;
  let p = s + 12;
  if (p < e) {
    if (buf[p] !== SP) return lineError(buf, s, e, ErrorCode.BadRequestLine);
    for (p++; p < e; p++) if (FIELD_VCHAR[buf[p]] !== 1) return buf[p] === CR ? ErrorCode.BareCr : ErrorCode.BadHeaderValue;
  }
  return ErrorCode.None;
}

function parseField(buf: Buffer, s: number, e: number, next: number, h: HeadInfo): ErrorCode {
  const c0 = buf[s];
  if (c0 === SP || c0 === HTAB) return ErrorCode.ObsFold;
  let p = s;
  while (p < e && TCHAR[buf[p]] === 1) p++;
  if (p === e || buf[p] !== COLON) {
    if (p < e && (buf[p] === SP || buf[p] === HTAB)) return ErrorCode.WhitespaceBeforeColon;
    if (p < e && buf[p] === CR) return ErrorCode.BareCr;
    return ErrorCode.BadHeaderName;
  }
  if (p === s) return ErrorCode.BadHeaderName;
  const nameEnd = p;
  p++;
  while (p < e && (buf[p] === SP || buf[p] === HTAB)) p++;
  const vs = p;
  for (; p < e; p++) {
    if (FIELD_VCHAR[buf[p]] !== 1) return buf[p] === CR ? ErrorCode.BareCr : ErrorCode.BadHeaderValue;
  }
  let ve = e;
  while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HTAB)) ve--;
  const i = h.count;
  if (i >= MAX_HEADERS) return ErrorCode.TooManyHeaders;
  h.count = i + 1;
  const b = h.base;
  const f = h.fields;
  const o = i * 6;
  f[o] = s - b;
  f[o + 1] = nameEnd - b;
  f[o + 2] = vs - b;
  f[o + 3] = ve - b;
  f[o + 4] = s - b;
  f[o + 5] = next - b;
  return classifyField(buf, s, nameEnd, vs, ve, i, h);
}

/** Recognises the fields that framing and hop-by-hop handling depend on, by length first. */
function classifyField(buf: Buffer, ns: number, ne: number, vs: number, ve: number, i: number, h: HeadInfo): ErrorCode {
  switch (ne - ns) {
    case 2:
      if (equalsLower(buf, ns, ne, 'te')) h.markDrop(i);
      break;
    case 4:
      if (equalsLower(buf, ns, ne, 'host')) {
        if (h.hostField !== -1) return ErrorCode.DuplicateHost;
        h.hostField = i;
      }
      break;
    case 6:
      if (equalsLower(buf, ns, ne, 'expect') && equalsLower(buf, vs, ve, '100-continue')) h.expectContinue = true;
      break;
    case 7:
      if (equalsLower(buf, ns, ne, 'upgrade')) {
        h.upgradeField = i;
        h.markDrop(i);
      }
      break;
    case 10:
      if (equalsLower(buf, ns, ne, 'connection')) {
        h.markDrop(i);
        h.connectionField = i;
        return parseConnection(buf, vs, ve, h);
      }
      if (equalsLower(buf, ns, ne, 'keep-alive')) h.markDrop(i);
      break;
    case 14:
      if (equalsLower(buf, ns, ne, 'content-length')) return parseContentLength(buf, vs, ve, i, h);
      if (equalsLower(buf, ns, ne, 'http2-settings')) h.markDrop(i);
      break;
    case 16:
      if (equalsLower(buf, ns, ne, 'proxy-connection')) h.markDrop(i);
      break;
    case 17:
      if (equalsLower(buf, ns, ne, 'transfer-encoding')) return parseTransferEncoding(buf, vs, ve, h);
      break;
  }
  return ErrorCode.None;
}

function parseContentLength(buf: Buffer, vs: number, ve: number, i: number, h: HeadInfo): ErrorCode {
  if (ve === vs || ve - vs > 15) return ErrorCode.BadContentLength;
  let n = 0;
  for (let p = vs; p < ve; p++) {
    const d = buf[p] - 0x30;
    if (d < 0 || d > 9) return ErrorCode.BadContentLength;
    n = n * 10 + d;
  }
  if (h.contentLength !== -1) {
    if (h.contentLength !== n) return ErrorCode.DuplicateContentLength;
    h.markDrop(i); // an identical duplicate is folded into the first one
    return ErrorCode.None;
  }
  h.contentLength = n;
  return ErrorCode.None;
}

/** Walks the comma-separated codings; chunked must be the last one, and appear once. */
function parseTransferEncoding(buf: Buffer, vs: number, ve: number, h: HeadInfo): ErrorCode {
  h.hasTransferEncoding = true;
  let p = vs;
  let any = false;
  while (p < ve) {
    while (p < ve && (buf[p] === SP || buf[p] === HTAB || buf[p] === 0x2c)) p++;
    const ts = p;
    while (p < ve && TCHAR[buf[p]] === 1) p++;
    if (p === ts) {
      if (p < ve) return ErrorCode.BadTransferEncoding;
      break;
    }
    const te = p;
    // Skip transfer-parameters (";" ...) up to the next comma.
    while (p < ve && buf[p] !== 0x2c) p++;
    any = true;
    if (h.chunked) return ErrorCode.BadTransferEncoding; // a coding after chunked
    if (equalsLower(buf, ts, te, 'chunked')) {
      if (p !== te && trimmedLen(buf, te, p) !== 0) return ErrorCode.BadTransferEncoding;
      h.chunked = true;
    }
  }
  if (!any) return ErrorCode.BadTransferEncoding;
  return ErrorCode.None;
}

function trimmedLen(buf: Buffer, s: number, e: number): number {
  while (s < e && (buf[s] === SP || buf[s] === HTAB)) s++;
  return e - s;
}

function parseConnection(buf: Buffer, vs: number, ve: number, h: HeadInfo): ErrorCode {
  let p = vs;
  while (p < ve) {
    while (p < ve && (buf[p] === SP || buf[p] === HTAB || buf[p] === 0x2c)) p++;
    const ts = p;
    while (p < ve && TCHAR[buf[p]] === 1) p++;
    if (p === ts) {
      if (p < ve) return ErrorCode.BadHeaderValue;
      break;
    }
    if (equalsLower(buf, ts, p, 'close')) h.conn |= ConnFlag.Close;
    else if (equalsLower(buf, ts, p, 'keep-alive')) h.conn |= ConnFlag.KeepAlive;
    else if (equalsLower(buf, ts, p, 'upgrade')) h.conn |= ConnFlag.Upgrade;
    else h.conn |= ConnFlag.Other;
    while (p < ve && (buf[p] === SP || buf[p] === HTAB)) p++;
    if (p < ve && buf[p] !== 0x2c) return ErrorCode.BadHeaderValue;
  }
  return ErrorCode.None;
}

function finishRequest(h: HeadInfo): ErrorCode {
  if (h.versionMinor >= 1 && h.hostField === -1) return ErrorCode.MissingHost;
  if (h.hasTransferEncoding) {
    if (h.contentLength !== -1) return ErrorCode.ContentLengthWithTransferEncoding;
    if (!h.chunked || h.versionMinor === 0) return ErrorCode.BadTransferEncoding;
    h.bodyKind = BodyKind.Chunked;
  } else if (h.contentLength > 0) {
    h.bodyKind = BodyKind.Length;
  } else {
    h.bodyKind = BodyKind.None;
  }
  return ErrorCode.None;
}

function finishResponse(h: HeadInfo): ErrorCode {
  // Body framing that depends on the request (HEAD, CONNECT) and status (1xx, 204, 304) is applied by
  // the caller; here only the message's own framing headers are checked.
  // A 1.0 response with Transfer-Encoding has faulty framing (RFC 9112 section 6.1): never forward it.
  if (h.hasTransferEncoding && h.versionMinor === 0) return ErrorCode.BadTransferEncoding;
  if (h.hasTransferEncoding) {
    if (h.contentLength !== -1) return ErrorCode.ContentLengthWithTransferEncoding;
    h.bodyKind = h.chunked ? BodyKind.Chunked : BodyKind.UntilClose;
  } else if (h.contentLength >= 0) {
    h.bodyKind = h.contentLength > 0 ? BodyKind.Length : BodyKind.None;
  } else {
    h.bodyKind = BodyKind.UntilClose;
  }
  return ErrorCode.None;
}

/**
 * Fields that a Connection token may not remove: the body is forwarded as framed by them, so dropping
 * them would let the next hop see a different message boundary (request smuggling).
 */
const END_TO_END = new Set(['content-length', 'transfer-encoding', 'host']);

/** True when the Connection header's extra tokens name this field (slow path: rare in practice). */
export function markConnectionNamedFields(buf: Buffer, h: HeadInfo): void {
  if ((h.conn & ConnFlag.Other) === 0 || h.connectionField === -1) return;
  const names = new Set<string>();
  for (let i = 0; i < h.count; i++) {
    if (equalsLower(buf, h.base + h.nameStart(i), h.base + h.nameEnd(i), 'connection')) {
      for (const t of h.value(buf, i).split(',')) {
        const n = t.trim().toLowerCase();
        if (n !== '' && n !== 'close' && n !== 'keep-alive' && n !== 'upgrade' && !END_TO_END.has(n)) names.add(n);
      }
    }
  }
  for (let i = 0; i < h.count; i++) {
    if (names.has(h.name(buf, i))) h.markDrop(i);
  }
}
