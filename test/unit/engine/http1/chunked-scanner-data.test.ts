// Unit tests of the chunked scanner as a decoder (its onData callback, which MCP inspection and the
// HTTP/2-to-HTTP/1 call use): payload and zero-copy slices in every split, extensions and trailers
// skipped, framing errors, and the same payload on random bodies in random splits.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { ChunkedScanner } from '../../../../engine/http1/chunked-scanner';
import { genChunkedBody } from '../../../helpers/http1-gen';
import { fuzzSeeds, Prng, splitAt } from '../../../helpers/prng';

const l1 = (s: string): Buffer => Buffer.from(s, 'latin1');

interface Decoded {
  ok: boolean;
  done: boolean;
  data: Buffer;
  slices: number;
}

/** Decodes the pieces in order; checks that every slice is a view into the piece it came from. */
function decode(pieces: Buffer[]): Decoded {
  const parts: Buffer[] = [];
  let current: Buffer = Buffer.alloc(0);
  const d = new ChunkedScanner();
  d.onData = (buf, start, end): void => {
    const slice = buf.subarray(start, end);
    assert.equal(slice.buffer, current.buffer, 'a view, not a copy');
    assert.ok(slice.byteOffset >= current.byteOffset && slice.byteOffset + slice.length <= current.byteOffset + current.length);
    assert.ok(slice.length > 0, 'no empty slices');
    parts.push(Buffer.from(slice));
  };
  let ok = true;
  let done = false;
  for (const piece of pieces) {
    current = piece;
    if (!ok || done) break;
    const r = d.scan(piece, 0, piece.length);
    if (r === -2) ok = false;
    else if (r >= 0) done = true;
  }
  return { ok, done, data: Buffer.concat(parts), slices: parts.length };
}


/** Asserts the payload for the whole body, every two-piece split and one byte per push. */
function decodes(body: string, payload: string): void {
  const buf = l1(body);
  const want = l1(payload);
  const check = (r: Decoded, what: string): void => {
    assert.equal(r.ok, true, what);
    assert.equal(r.done, true, what);
    assert.deepEqual(r.data, want, what);
  };
  check(decode([buf]), 'whole');
  for (let i = 0; i <= buf.length; i++) check(decode(splitAt(buf, [i])), `split at ${i}`);
  const bytes: Buffer[] = [];
  for (let i = 0; i < buf.length; i++) bytes.push(buf.subarray(i, i + 1));
  check(decode(bytes), 'bytewise');
}

/** Asserts that the body fails, whole and one byte per push, and that the decoder stays failed. */
function fails(body: string): void {
  const buf = l1(body);
  assert.equal(decode([buf]).ok, false, JSON.stringify(body));
  const bytes: Buffer[] = [];
  for (let i = 0; i < buf.length; i++) bytes.push(buf.subarray(i, i + 1));
  assert.equal(decode(bytes).ok, false, `bytewise ${JSON.stringify(body)}`);
}

describe('ChunkedScanner as a decoder (onData)', () => {
  test('data chunks, hex case, leading zeros, the last chunk', () => {
    decodes('0\r\n\r\n', '');
    decodes('5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n', 'hello world');
    decodes(`a\r\n${'x'.repeat(10)}\r\nA\r\n${'y'.repeat(10)}\r\n1f\r\n${'z'.repeat(31)}\r\n000\r\n\r\n`, 'x'.repeat(10) + 'y'.repeat(10) + 'z'.repeat(31));
    decodes(`00000000000ff\r\n${'q'.repeat(255)}\r\n0\r\n\r\n`, 'q'.repeat(255));
  });

  test('chunk data is opaque: CR, LF and a fake last chunk inside data', () => {
    decodes('c\r\n0\r\n\r\n\x00\r\nab\nZ\r\n0\r\n\r\n', '0\r\n\r\n\x00\r\nab\nZ');
  });

  test('extensions are skipped', () => {
    decodes('5;name\r\nhello\r\n0\r\n\r\n', 'hello');
    decodes('5 ;a=1;b="quoted ; value\\"x"\r\nhello\r\n0;last=yes\r\n\r\n', 'hello');
    decodes('5\t; a = 1 \r\nhello\r\n0\r\n\r\n', 'hello');
  });

  test('trailers are skipped', () => {
    decodes('5\r\nhello\r\n0\r\nExpires: never\r\nX-Checksum: abc\r\n\r\n', 'hello');
    decodes('0\r\nA:\r\n\r\n', '');
  });

  test('scan(buf, start, end) decodes only that range; slices are views of buf', () => {
    const buf = l1('GARBAGE5\r\nhello\r\n0\r\n\r\nNEXT');
    const got: Buffer[] = [];
    const d = new ChunkedScanner();
    d.onData = (b, s, e): void => {
      got.push(b.subarray(s, e));
    };
    assert.equal(d.scan(buf, 7, 10), -1);
    assert.equal(d.scan(buf, 10, buf.length), buf.length - 4);
    assert.deepEqual(got.map((x) => x.toString('latin1')), ['hello']);
    assert.equal(got[0]!.buffer, buf.buffer);
    assert.equal(got[0]!.byteOffset, buf.byteOffset + 10);
  });

  test('a large chunk is reported in one slice per push, with no copy', () => {
    const size = 64 * 1024;
    const body = Buffer.concat([l1(`${size.toString(16)}\r\n`), Buffer.alloc(size, 0x61), l1('\r\n0\r\n\r\n')]);
    const r = decode(splitAt(body, [1000, 30000]));
    assert.equal(r.ok, true);
    assert.equal(r.data.length, size);
    assert.equal(r.slices, 3); // one per push that holds data
  });

  test('framing errors', () => {
    fails('zz\r\n');
    fails('\r\n');
    fails(';ext\r\n0\r\n\r\n');
    fails('5\nhello\r\n0\r\n\r\n'); // bare LF after the size
    fails('5;a\nhello\r\n0\r\n\r\n'); // bare LF in an extension
    fails('5\r\nhello0\r\n\r\n'); // no CRLF after the data
    fails('5\r\nhello\r0\r\n\r\n');
    fails('5\r\nhello\r\n0\r\n\n');
    fails('5\r\nhello\r\n0\r\nX: y\n\r\n'); // bare LF in a trailer
    fails('5\r\nhello\r\n0\r\nX: y\r\r\n');
    fails('5x\r\nhello\r\n0\r\n\r\n');
    fails('-5\r\nhello\r\n');
    fails(`${'f'.repeat(14)}\r\n`); // past 2^53
    fails(`5;${'e'.repeat(5000)}\r\n`); // an endless extension
    fails(`0\r\n${'X: y\r\n'.repeat(5000)}\r\n`); // an endless trailer section
  });

  for (const seed of fuzzSeeds([11, 12, 13])) {
    test(`random bodies in random splits give the payload of the whole body (seed ${seed})`, () => {
      const rng = new Prng(seed);
      for (let i = 0; i < 300; i++) {
        const body = l1(genChunkedBody(rng, rng.chance(0.5) ? 8 : 300));
        const ref: Buffer[] = [];
        const sc = new ChunkedScanner();
        sc.onData = (buf, s, e): void => {
          ref.push(Buffer.from(buf.subarray(s, e)));
        };
        assert.equal(sc.scan(body, 0, body.length), body.length);
        const r = decode(splitAt(body, rng.cuts(body.length, rng.range(0, 20))));
        assert.equal(r.ok, true, `seed ${seed} case ${i}`);
        assert.equal(r.done, true);
        assert.deepEqual(r.data, Buffer.concat(ref), `seed ${seed} case ${i}`);
      }
    });

    test(`mutated and random bytes never throw; what is accepted whole decodes alike in splits (seed ${seed})`, () => {
      const rng = new Prng(seed);
      for (let i = 0; i < 2000; i++) {
        let body: Buffer;
        if (rng.chance(0.2)) body = rng.bytes(rng.range(0, 64));
        else {
          body = l1(genChunkedBody(rng, 16));
          for (let k = rng.range(1, 3); k > 0; k--) {
            const at = rng.int(body.length);
            const op = rng.int(3);
            if (op === 0) body[at] = rng.pick([0x0d, 0x0a, 0x3b, 0x20, 0x30, 0x61, 0x7a, 0x00, 0xff]);
            else if (op === 1) body = Buffer.concat([body.subarray(0, at), body.subarray(at + 1)]);
            else body = Buffer.concat([body.subarray(0, at), l1(rng.pick(['\r', '\n', '\r\n', '0', ';', 'g'])), body.subarray(at)]);
          }
        }
        const pieces = splitAt(body, rng.cuts(body.length, rng.range(0, 8)));
        const r = decode(pieces);
        const ref: Buffer[] = [];
        const sc = new ChunkedScanner();
        sc.onData = (buf, s, e): void => {
          ref.push(Buffer.from(buf.subarray(s, e)));
        };
        if (sc.scan(body, 0, body.length) === body.length) {
          assert.equal(r.ok, true, `seed ${seed} case ${i}: ${JSON.stringify(body.toString('latin1'))}`);
          assert.equal(r.done, true);
          assert.deepEqual(r.data, Buffer.concat(ref));
        }
      }
    });
  }
});
