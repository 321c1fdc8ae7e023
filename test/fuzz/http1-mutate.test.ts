// Properties over mutated and random input: the head parser and the chunked scanner never throw, never
// report an end beyond the input, give the same verdict however the input is split, and agree with a
// slow reference checker written from the RFC 9112 grammar (accept / need more / reject, and what is
// extracted from accepted heads). Accepted heads never contain a bare CR or LF.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode, errorInfo } from '../../engine/errors';
import { ChunkedScanner } from '../../engine/http1/chunked-scanner';
import { HeadInfo, NEED_MORE, parseHead, PARSE_ERROR } from '../../engine/http1/head-parser';
import { Prng, fuzzSeeds } from '../helpers/prng';
import { everyByte, feedSplit } from '../helpers/http1-stream';
import { genChunkedBody, genRequest, genResponse } from '../helpers/http1-gen';
import { refChunked, refParseHead } from '../helpers/http1-reference';

const MAX = 4096;
const INTERESTING = [13, 10, 0, 32, 9, 0x3a, 0x2c, 0x3b, 0x22, 0x5c, 0x3d, 0x7f, 0x80, 0xff, 0x61, 0x41, 0x30, 0x2d, 0x2f, 0x0b, 0x0c];
const LINES = [
  'Content-Length: 5\r\n',
  'Content-Length: 0\r\n',
  'Content-Length: 05\r\n',
  'Transfer-Encoding: chunked\r\n',
  'Transfer-Encoding: gzip\r\n',
  'Transfer-Encoding: chunked, gzip\r\n',
  'Host: x\r\n',
  'Connection: close, x-a\r\n',
  ' obs-fold\r\n',
  'X : y\r\n',
  '\r\n',
  '\n',
  '\r',
];

/** Applies 1-4 random mutations. */
function mutate(rng: Prng, input: Buffer): Buffer {
  let b = Buffer.from(input);
  for (let n = rng.range(1, 4); n > 0; n--) {
    const at = rng.int(b.length + 1);
    switch (rng.int(7)) {
      case 0:
        if (b.length > 0) b[Math.min(at, b.length - 1)] = rng.pick(INTERESTING);
        break;
      case 1:
        if (b.length > 0) b[Math.min(at, b.length - 1)] = rng.int(256);
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, at), Buffer.from([rng.pick(INTERESTING)]), b.subarray(at)]);
        break;
      case 3:
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + rng.range(1, 3)))]);
        break;
      case 4: {
        // Insert a whole field line at a line start.
        const ls = b.indexOf('\r\n', at) + 2;
        if (ls >= 2) b = Buffer.concat([b.subarray(0, ls), Buffer.from(rng.pick(LINES), 'latin1'), b.subarray(ls)]);
        break;
      }
      case 5: {
        // Duplicate an existing line elsewhere (duplicate Host, CL, TE, Connection...).
        const s = b.indexOf('\r\n', at);
        const e = s === -1 ? -1 : b.indexOf('\r\n', s + 2);
        if (e !== -1) {
          const line = b.subarray(s + 2, e + 2);
          const to = b.indexOf('\r\n', rng.int(b.length)) + 2;
          if (to >= 2) b = Buffer.concat([b.subarray(0, to), line, b.subarray(to)]);
        }
        break;
      }
      default:
        if (b.length > 0) {
          const i = Math.min(at, b.length - 1);
          const c = b[i];
          if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) b[i] = c ^ 0x20;
        }
    }
  }
  return b;
}

/** Checks one input against every property; returns the verdict for statistics. */
function checkHead(input: Buffer, isRequest: boolean, rng: Prng, oneByte: boolean, label: string): 'ok' | 'need' | 'error' {
  const h = new HeadInfo();
  h.reset(0);
  let r: number;
  try {
    r = parseHead(input, h, isRequest, MAX);
  } catch (e) {
    assert.fail(`${label}: threw ${String(e)}`);
  }
  assert.ok(r === PARSE_ERROR || r === NEED_MORE || (r > 0 && r <= input.length), `${label}: result ${r} for ${input.length} bytes`);
  const ref = refParseHead(input, isRequest, MAX);
  if (r === PARSE_ERROR) {
    assert.notEqual(h.error, ErrorCode.None, label);
    const status = errorInfo(h.error).status;
    assert.ok(status === 400 || status === 431 || status === 505, `${label}: ${errorInfo(h.error).name}`);
    assert.equal(ref.kind, 'error', `${label}: parser refused (${errorInfo(h.error).name}), reference did not`);
  } else if (r === NEED_MORE) {
    assert.equal(h.error, ErrorCode.None, label);
    assert.equal(ref.kind, 'need', `${label}: parser needs more, reference says ${ref.kind}`);
  } else {
    assert.equal(h.error, ErrorCode.None, label);
    assert.equal(ref.kind, 'ok', `${label}: parser accepted, reference says ${ref.kind}`);
    if (ref.kind !== 'ok') return 'ok';
    // No bare CR or LF, no NUL anywhere in an accepted head.
    for (let i = h.base; i < r; i++) {
      const c = input[i];
      if (c === 10) assert.equal(input[i - 1], 13, `${label}: bare LF at ${i}`);
      if (c === 13) assert.equal(input[i + 1], 10, `${label}: bare CR at ${i}`);
      assert.notEqual(c, 0, `${label}: NUL at ${i}`);
    }
    assert.equal(h.headLen, r - h.base);
    const fields: [string, string][] = [];
    for (let i = 0; i < h.count; i++) fields.push([h.name(input, i), h.value(input, i)]);
    assert.deepEqual(
      {
        headStart: h.base,
        headEnd: r,
        method: isRequest ? input.toString('latin1', h.base, h.base + h.methodEnd) : '',
        target: isRequest ? input.toString('latin1', h.base + h.targetStart, h.base + h.targetEnd) : '',
        versionMinor: h.versionMinor,
        statusCode: h.statusCode,
        fields,
        contentLength: h.contentLength,
        chunked: h.chunked,
      },
      {
        headStart: ref.headStart,
        headEnd: ref.headEnd,
        method: ref.method,
        target: ref.target,
        versionMinor: ref.versionMinor,
        statusCode: ref.statusCode,
        fields: ref.fields,
        contentLength: ref.contentLength,
        chunked: ref.chunked,
      },
      label,
    );
  }
  // However it is split, the whole stream (head, body, following messages) parses the same.
  const whole = feedSplit(input, [], isRequest, MAX);
  const cuts = oneByte ? everyByte(input.length) : rng.cuts(input.length, rng.range(1, 12));
  assert.deepEqual(feedSplit(input, cuts, isRequest, MAX), whole, `${label}: split ${cuts.length} ways`);
  return r === PARSE_ERROR ? 'error' : r === NEED_MORE ? 'need' : 'ok';
}

for (const seed of fuzzSeeds([7, 8, 9])) {
  test(`mutated requests and responses (seed ${seed})`, () => {
    const rng = new Prng(seed);
    const seen = { ok: 0, need: 0, error: 0 };
    for (let it = 0; it < 3000; it++) {
      const isRequest = it % 3 !== 0;
      const g = isRequest ? genRequest(rng, { maxBody: 40, maxFields: 8 }) : genResponse(rng, { maxBody: 40, maxFields: 8 });
      // Mostly the head alone; sometimes with the body and a second message behind it.
      let input = rng.chance(0.7) ? g.bytes.subarray(0, g.expect.headEnd) : g.bytes;
      if (rng.chance(0.2)) input = Buffer.concat([input, (isRequest ? genRequest(rng) : genResponse(rng)).bytes]);
      let m = mutate(rng, input);
      if (rng.chance(0.1)) m = m.subarray(0, rng.int(m.length)); // a read that stops anywhere
      const label = `seed ${seed} iteration ${it} ${JSON.stringify(m.toString('latin1'))}`;
      seen[checkHead(m, isRequest, rng, it % 10 === 0, label)]++;
    }
    // The mutations must exercise all three verdicts, or the property says little.
    assert.ok(seen.ok > 100 && seen.error > 100 && seen.need > 10, JSON.stringify(seen));
  });
}

test('random bytes from an HTTP-flavoured alphabet', () => {
  const rng = new Prng(31);
  const pieces = ['GET', 'HTTP/1.1', 'HTTP/1.0', ' ', '/', '\r\n', '\r', '\n', ':', 'Host', 'host: a', 'Content-Length', 'Transfer-Encoding', 'chunked', '0', '5', ',', '\t', '\x00', '\xff', 'x'];
  for (let it = 0; it < 1500; it++) {
    let s = rng.chance(0.5) ? 'GET / HTTP/1.1\r\n' : '';
    for (let n = rng.range(1, 30); n > 0; n--) s += rng.pick(pieces);
    if (rng.chance(0.5)) s += '\r\n\r\n';
    const input = Buffer.from(s, 'latin1');
    checkHead(input, it % 4 !== 0, rng, it % 20 === 0, `iteration ${it} ${JSON.stringify(s)}`);
  }
});

test('uniformly random bytes', () => {
  const rng = new Prng(32);
  for (let it = 0; it < 500; it++) {
    const input = rng.bytes(rng.range(0, 300));
    checkHead(input, it % 2 === 0, rng, false, `iteration ${it} ${input.toString('hex')}`);
  }
});

test('heads near the size limit agree with the reference', () => {
  const rng = new Prng(33);
  for (let it = 0; it < 60; it++) {
    const pad = MAX - 60 + rng.range(-20, 40);
    const s = `GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ${'p'.repeat(Math.max(0, pad - 40))}\r\n${rng.chance(0.5) ? '\r\n' : ''}`;
    checkHead(Buffer.from(s, 'latin1'), true, rng, false, `iteration ${it} length ${s.length}`);
  }
});

/** NULs are invalid in every framing position of a chunked body: a tail of them makes "need more" unambiguous. */
const NUL_TAIL = Buffer.alloc(64);

function checkChunked(body: Buffer, rng: Prng, label: string): number {
  const input = Buffer.concat([body, NUL_TAIL]);
  const s = new ChunkedScanner();
  let r: number;
  try {
    r = s.scan(input, 0, input.length);
  } catch (e) {
    assert.fail(`${label}: threw ${String(e)}`);
  }
  assert.ok(r === -1 || r === -2 || (r > 0 && r <= input.length), `${label}: result ${r}`);
  assert.equal(r, refChunked(input, 0), label);
  if (r === -2) assert.ok(s.error !== ErrorCode.None && errorInfo(s.error).status === 400, label);
  else assert.equal(s.error, ErrorCode.None, label);
  // Split anywhere: same verdict, same error code.
  const t = new ChunkedScanner();
  let from = 0;
  let split = -1;
  for (const c of [...rng.cuts(input.length, rng.range(1, 20)), input.length]) {
    split = t.scan(input, from, c);
    from = c;
    if (split !== -1) break;
  }
  assert.equal(split, r, `${label}: split`);
  assert.equal(t.error, s.error, `${label}: split error`);
  return r;
}

for (const seed of fuzzSeeds([41, 42])) {
  test(`valid and mutated chunked bodies agree with the reference (seed ${seed})`, () => {
    const rng = new Prng(seed);
    const seen = { end: 0, need: 0, error: 0 };
    for (let it = 0; it < 4000; it++) {
      const body = Buffer.from(genChunkedBody(rng, rng.chance(0.5) ? 4 : 60), 'latin1');
      if (it % 4 === 0) {
        assert.equal(checkChunked(body, rng, `seed ${seed} valid ${it}`), body.length);
        continue;
      }
      const m = mutate(rng, body);
      const r = checkChunked(m, rng, `seed ${seed} iteration ${it} ${JSON.stringify(m.toString('latin1'))}`);
      if (r === -1) seen.need++;
      else if (r === -2) seen.error++;
      else seen.end++;
    }
    assert.ok(seen.end > 50 && seen.error > 200 && seen.need > 0, JSON.stringify(seen));
  });
}
