// Slow, obviously-written reference checkers for HTTP/1 heads and chunked bodies, straight from the
// RFC 9112 grammar with the proxy's strictness choices (no obs-fold, no bare CR/LF, CL and TE rules).
// Property tests compare the fast parsers against these on random and mutated input: they must agree
// on accept / need-more / reject, and on everything extracted from accepted input.

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const TOKEN_START = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/;
const FIELD_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([\t\x20-\x7e\x80-\xff]*)$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e\x80-\xff]+) HTTP\/([0-9])\.([0-9])$/;
const STATUS_LINE = /^HTTP\/1\.([0-9]) ([1-5][0-9]{2})(?: [\t\x20-\x7e\x80-\xff]*)?$/;

export type RefHead =
  | { kind: 'need' }
  | { kind: 'error' }
  | {
      kind: 'ok';
      headStart: number;
      headEnd: number;
      method: string;
      target: string;
      versionMinor: number;
      statusCode: number;
      fields: [string, string][];
      contentLength: number;
      chunked: boolean;
    };

const trimOws = (s: string): string => s.replace(/^[ \t]+/, '').replace(/[ \t]+$/, '');

/** Checks the head at the start of `input` (latin1). */
export function refParseHead(input: Buffer, isRequest: boolean, maxHeadBytes: number, maxHeaders = 128): RefHead {
  const s = input.toString('latin1');
  let base = 0;
  let pos = 0;
  let first = true;
  let skippedEmpty = false;
  let method = '';
  let target = '';
  let versionMinor = 1;
  let statusCode = 0;
  const fields: [string, string][] = [];
  let hosts = 0;
  let contentLength = -1;
  let hasTe = false;
  let chunked = false;
  for (;;) {
    const lf = s.indexOf('\n', pos);
    if (lf === -1) return s.length - base > maxHeadBytes ? { kind: 'error' } : { kind: 'need' };
    if (lf + 1 - base > maxHeadBytes) return { kind: 'error' };
    const line = s.slice(pos, lf);
    if (!line.endsWith('\r')) return { kind: 'error' };
    const content = line.slice(0, -1);
    if (content.includes('\r')) return { kind: 'error' };
    pos = lf + 1;
    if (first) {
      if (content === '') {
        if (!isRequest || skippedEmpty) return { kind: 'error' };
        skippedEmpty = true;
        base = pos;
        continue;
      }
      first = false;
      if (isRequest) {
        const m = REQUEST_LINE.exec(content);
        if (m === null || m[3] !== '1') return { kind: 'error' };
        method = m[1];
        target = m[2];
        versionMinor = Number(m[4]);
      } else {
        const m = STATUS_LINE.exec(content);
        if (m === null) return { kind: 'error' };
        versionMinor = Number(m[1]);
        statusCode = Number(m[2]);
      }
      continue;
    }
    if (content === '') break;
    const m = FIELD_LINE.exec(content);
    if (m === null) return { kind: 'error' };
    const name = m[1].toLowerCase();
    const value = trimOws(m[2]);
    fields.push([name, value]);
    if (fields.length > maxHeaders) return { kind: 'error' };

    // Field semantics, checked as each line arrives (as a streaming parser must).
    if (name === 'host') {
      if (++hosts > 1) return { kind: 'error' };
    } else if (name === 'content-length') {
      if (!/^[0-9]{1,15}$/.test(value)) return { kind: 'error' };
      const n = Number(value);
      if (contentLength !== -1 && contentLength !== n) return { kind: 'error' };
      contentLength = n;
    } else if (name === 'transfer-encoding') {
      hasTe = true;
      let any = false;
      for (const element of value.split(',')) {
        const e = trimOws(element);
        if (e === '') continue;
        const t = TOKEN_START.exec(e);
        if (t === null) return { kind: 'error' };
        any = true;
        if (chunked) return { kind: 'error' }; // a coding after chunked
        if (t[0].toLowerCase() === 'chunked') {
          if (e.length !== t[0].length) return { kind: 'error' }; // no parameters on chunked
          chunked = true;
        }
      }
      if (!any) return { kind: 'error' };
    } else if (name === 'connection') {
      for (const element of value.split(',')) {
        const e = trimOws(element);
        if (e !== '' && !TOKEN.test(e)) return { kind: 'error' };
      }
    }
  }

  if (isRequest) {
    if (versionMinor >= 1 && hosts === 0) return { kind: 'error' };
    if (hasTe && (contentLength !== -1 || !chunked || versionMinor === 0)) return { kind: 'error' };
  } else if (hasTe && (contentLength !== -1 || versionMinor === 0)) {
    // A 1.0 response with Transfer-Encoding has faulty framing (RFC 9112 section 6.1).
    return { kind: 'error' };
  }
  return { kind: 'ok', headStart: base, headEnd: pos, method, target, versionMinor, statusCode, fields, contentLength, chunked };
}

const SIZE_LINE = (() => {
  const tok = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+";
  const quoted = '"(?:[\\t \\x21\\x23-\\x5b\\x5d-\\x7e\\x80-\\xff]|\\\\[\\t \\x21-\\x7e\\x80-\\xff])*"';
  const ext = `[ \\t]*;[ \\t]*${tok}(?:[ \\t]*=[ \\t]*(?:${tok}|${quoted}))?[ \\t]*`;
  return new RegExp(`([0-9A-Fa-f]{1,13})(?:${ext})*\\r\\n`, 'y');
})();
const TRAILER_LINE = /[!#$%&'*+\-.^_`|~0-9A-Za-z][\t\x20-\x7e\x80-\xff]*\r\n/y;

/**
 * Checks a chunked body starting at `start`. The input must end in bytes that are invalid in every
 * framing position (the tests append NULs), so that "need more" only happens inside chunk data: the
 * result is the end offset, -1 (more data needed) or -2 (invalid).
 */
export function refChunked(input: Buffer, start: number): number {
  const s = input.toString('latin1');
  let p = start;
  for (;;) {
    SIZE_LINE.lastIndex = p;
    const m = SIZE_LINE.exec(s);
    if (m === null) return -2;
    p = SIZE_LINE.lastIndex;
    const size = parseInt(m[1], 16);
    if (size === 0) break;
    if (s.length - p < size) return -1;
    p += size;
    if (p === s.length) return -1;
    if (s[p] !== '\r') return -2;
    if (p + 1 === s.length) return -1;
    if (s[p + 1] !== '\n') return -2;
    p += 2;
  }
  for (;;) {
    if (s.startsWith('\r\n', p)) return p + 2;
    TRAILER_LINE.lastIndex = p;
    if (TRAILER_LINE.exec(s) === null) return -2;
    p = TRAILER_LINE.lastIndex;
  }
}
