// Generators of random but valid HTTP/1 messages for property tests. Each message comes with what a
// correct parser must report for it (strings, framing, offsets), so tests compare against the truth
// and not only against another run of the same parser.

import type { Prng } from './prng';

export const TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
/** VCHAR and obs-text: what a field value may start and end with. */
const VALUE_EDGE = (() => {
  let s = '';
  for (let c = 0x21; c <= 0x7e; c++) s += String.fromCharCode(c);
  for (let c = 0x80; c <= 0xff; c += 7) s += String.fromCharCode(c);
  return s;
})();
const VALUE_INNER = VALUE_EDGE + ' \t  ';
const TARGET_CHARS = ALNUM + "-._~!$&'()*+,;=:@%/" + '\x80\xe9\xff';
const QDTEXT = ALNUM + ' \t!#$%&()*+,-./:;<=>?@[]^_`{|}~\xe9';

/** Field names the parser treats specially: random names never collide with them. */
const SPECIAL = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'upgrade',
  'http2-settings',
  'expect',
]);
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'upgrade', 'http2-settings']);

export interface ExpectedField {
  name: string;
  value: string;
  raw: string;
  drop: boolean;
}

export interface ExpectedMessage {
  /** Offset of the head start within the message's bytes (2 after a tolerated leading CRLF). */
  headStart: number;
  /** Offset just past the head within the message's bytes. */
  headEnd: number;
  /** Offset just past the body within the message's bytes (= bytes.length). */
  bodyEnd: number;
  method: string;
  target: string;
  versionMinor: number;
  statusCode: number;
  fields: ExpectedField[];
  contentLength: number;
  chunked: boolean;
}

export interface GenMessage {
  bytes: Buffer;
  expect: ExpectedMessage;
}

export interface GenOptions {
  /** Allow a leading empty line (requests only). */
  leadingCrlf?: boolean;
  /** Rough upper bound on the number of extra header fields. */
  maxFields?: number;
  /** Upper bound of a Content-Length body or of one chunk. */
  maxBody?: number;
}

function randomName(rng: Prng): string {
  for (;;) {
    const n = rng.chance(0.7) ? `x-${rng.string(LOWER, rng.range(1, 10))}` : rng.string(TCHARS, rng.range(1, 16));
    if (!SPECIAL.has(n.toLowerCase())) return rng.chance(0.3) ? n.toUpperCase() : n;
  }
}

function randomValue(rng: Prng): string {
  const kind = rng.int(10);
  if (kind === 0) return '';
  if (kind === 1) return rng.string(VALUE_EDGE, 1);
  const n = rng.range(2, 40);
  return rng.string(VALUE_EDGE, 1) + rng.string(VALUE_INNER, n - 2) + rng.string(VALUE_EDGE, 1);
}

function ows(rng: Prng): string {
  return rng.chance(0.6) ? (rng.chance(0.8) ? ' ' : '') : rng.string(' \t', rng.range(1, 3));
}

function caseMix(rng: Prng, s: string): string {
  let out = '';
  for (const ch of s) out += rng.chance(0.5) ? ch.toUpperCase() : ch;
  return out;
}

interface FieldSpec {
  name: string;
  value: string;
  drop: boolean;
}

function fieldLine(rng: Prng, f: FieldSpec): { raw: string; ef: ExpectedField } {
  const raw = `${f.name}:${ows(rng)}${f.value}${f.value === '' ? '' : ows(rng)}\r\n`;
  return { raw, ef: { name: f.name.toLowerCase(), value: f.value, raw, drop: f.drop } };
}

function hexSize(rng: Prng, n: number): string {
  let h = n.toString(16);
  if (rng.chance(0.3)) h = h.toUpperCase();
  else if (rng.chance(0.3)) h = caseMix(rng, h);
  if (rng.chance(0.15)) h = '0'.repeat(rng.range(1, 13 - h.length)) + h;
  return h;
}

function chunkExt(rng: Prng): string {
  if (!rng.chance(0.3)) return '';
  let s = '';
  const n = rng.range(1, 3);
  for (let i = 0; i < n; i++) {
    s += `${rng.chance(0.2) ? ' ' : ''};${rng.chance(0.2) ? ' ' : ''}${rng.string(TCHARS, rng.range(1, 8))}`;
    const v = rng.int(3);
    if (v === 1) s += `=${rng.string(TCHARS, rng.range(1, 8))}`;
    else if (v === 2) {
      let q = '';
      for (let k = rng.range(0, 10); k > 0; k--) q += rng.chance(0.1) ? `\\${rng.pick(['"', '\\', 'a', ' '])}` : rng.string(QDTEXT, 1);
      s += `${rng.chance(0.2) ? ' ' : ''}=${rng.chance(0.2) ? '\t' : ''}"${q}"`;
    }
  }
  return s;
}

/** A valid chunked body: random chunk sizes, extensions and trailers. Returns the latin1 string. */
export function genChunkedBody(rng: Prng, maxChunk = 200): string {
  let s = '';
  for (let n = rng.range(0, 5); n > 0; n--) {
    const size = rng.range(1, maxChunk);
    s += `${hexSize(rng, size)}${chunkExt(rng)}\r\n${rng.bytes(size).toString('latin1')}\r\n`;
  }
  s += `${rng.chance(0.2) ? '0'.repeat(rng.range(2, 13)) : '0'}${chunkExt(rng)}\r\n`;
  for (let n = rng.chance(0.3) ? rng.range(1, 3) : 0; n > 0; n--) s += `${randomName(rng)}:${ows(rng)}${randomValue(rng)}\r\n`;
  return s + '\r\n';
}

function randomTarget(rng: Prng, method: string): string {
  if (method === 'CONNECT') return `${rng.string(LOWER, rng.range(1, 12))}.example:${rng.range(1, 65535)}`;
  if (method === 'OPTIONS' && rng.chance(0.5)) return '*';
  const path = '/' + rng.string(TARGET_CHARS, rng.range(0, 30));
  if (rng.chance(0.15)) return `http://${rng.string(LOWER, rng.range(1, 10))}.test:${rng.range(1, 65535)}${path}`;
  return rng.chance(0.3) ? `${path}?${rng.string(TARGET_CHARS + '?', rng.range(0, 20))}` : path;
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];

/** Builds the head and body of one message from its parts (shared by requests and responses). */
function build(
  rng: Prng,
  startLine: string,
  leading: string,
  isRequest: boolean,
  versionMinor: number,
  opts: GenOptions,
  meta: { method: string; target: string; statusCode: number },
): GenMessage {
  const specs: FieldSpec[] = [];
  const maxFields = opts.maxFields ?? 12;
  for (let n = rng.range(0, maxFields); n > 0; n--) specs.push({ name: randomName(rng), value: randomValue(rng), drop: false });

  if (isRequest && (versionMinor === 1 || rng.chance(0.5))) {
    specs.splice(rng.int(specs.length + 1), 0, { name: caseMix(rng, 'host'), value: `${rng.string(LOWER, rng.range(1, 10))}.test`, drop: false });
  }

  // Hop-by-hop fields, sometimes with a Connection token naming a custom field.
  const named: string[] = [];
  if (rng.chance(0.3)) {
    const tokens: string[] = [];
    if (rng.chance(0.5)) tokens.push(rng.pick(['close', 'keep-alive', 'Keep-Alive', 'upgrade', 'Close']));
    if (rng.chance(0.5) || tokens.length === 0) {
      const n = `x-hop-${rng.string(LOWER, rng.range(1, 5))}`;
      tokens.push(n);
      named.push(n);
    }
    specs.splice(rng.int(specs.length + 1), 0, { name: caseMix(rng, 'connection'), value: tokens.join(rng.pick([',', ', ', ' ,\t'])), drop: true });
    for (const n of named) specs.splice(rng.int(specs.length + 1), 0, { name: caseMix(rng, n), value: randomValue(rng), drop: true });
  }
  for (const hop of ['keep-alive', 'proxy-connection', 'te', 'upgrade', 'http2-settings']) {
    if (rng.chance(0.08)) specs.splice(rng.int(specs.length + 1), 0, { name: caseMix(rng, hop), value: rng.string(ALNUM, rng.range(1, 8)), drop: true });
  }
  if (isRequest && rng.chance(0.05)) specs.splice(rng.int(specs.length + 1), 0, { name: 'Expect', value: '100-continue', drop: false });

  // Framing.
  let body = '';
  let contentLength = -1;
  let chunked = false;
  const framing = rng.int(isRequest ? 3 : 2) + (isRequest ? 0 : 1); // responses always frame their body
  const maxBody = opts.maxBody ?? 300;
  if (framing === 1) {
    contentLength = rng.chance(0.1) ? 0 : rng.range(1, maxBody);
    body = rng.bytes(contentLength).toString('latin1');
    const at = rng.int(specs.length + 1);
    specs.splice(at, 0, { name: caseMix(rng, 'content-length'), value: String(contentLength), drop: false });
    if (rng.chance(0.1)) specs.splice(rng.range(at + 1, specs.length), 0, { name: 'Content-Length', value: String(contentLength), drop: true });
  } else if (framing === 2 && versionMinor === 1) {
    // Chunked only in 1.1 messages: a 1.0 message with Transfer-Encoding is refused (RFC 9112 6.1).
    chunked = true;
    body = genChunkedBody(rng, maxBody);
    const te = rng.pick(['chunked', 'Chunked', 'gzip, chunked', 'gzip,chunked', 'x-a;q=1, chunked']);
    specs.splice(rng.int(specs.length + 1), 0, { name: caseMix(rng, 'transfer-encoding'), value: te, drop: false });
  } else if (!isRequest) {
    contentLength = 0;
    specs.push({ name: 'Content-Length', value: '0', drop: false });
  }

  let head = startLine;
  const fields: ExpectedField[] = [];
  for (const f of specs) {
    const { raw, ef } = fieldLine(rng, f);
    head += raw;
    fields.push(ef);
  }
  head += '\r\n';
  const bytes = Buffer.from(leading + head + body, 'latin1');
  return {
    bytes,
    expect: {
      headStart: leading.length,
      headEnd: leading.length + head.length,
      bodyEnd: bytes.length,
      method: meta.method,
      target: meta.target,
      versionMinor,
      statusCode: meta.statusCode,
      fields,
      contentLength,
      chunked,
    },
  };
}

/** A random valid request (possibly with a body) and what a parser must find in it. */
export function genRequest(rng: Prng, opts: GenOptions = {}): GenMessage {
  const method = rng.chance(0.85) ? rng.pick(METHODS) : rng.string(TCHARS, rng.range(1, 12));
  const target = randomTarget(rng, method);
  const versionMinor = rng.chance(0.85) ? 1 : 0;
  const leading = opts.leadingCrlf !== false && rng.chance(0.1) ? '\r\n' : '';
  return build(rng, `${method} ${target} HTTP/1.${versionMinor}\r\n`, leading, true, versionMinor, opts, { method, target, statusCode: 0 });
}

/** A random valid response with a framed body (Content-Length or chunked). */
export function genResponse(rng: Prng, opts: GenOptions = {}): GenMessage {
  const statusCode = rng.pick([200, 201, 204, 301, 404, 500, 503]);
  const versionMinor = rng.chance(0.9) ? 1 : 0;
  const reason = rng.int(4) === 0 ? '' : rng.chance(0.5) ? ' ' : ` ${rng.string(ALNUM + ' \t\xe9', rng.range(1, 20))}`;
  return build(rng, `HTTP/1.${versionMinor} ${statusCode}${reason}\r\n`, '', false, versionMinor, opts, { method: '', target: '', statusCode });
}

export { HOP_BY_HOP };
