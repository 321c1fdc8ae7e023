// Property: random valid pipelined HTTP/1 messages parse to exactly what the generator built, and to
// the same results however the bytes are split into reads (random cuts, cuts around CR/LF, one byte
// at a time). Deterministic seeds; set BOWLINE_FUZZ_SEED to add one.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prng, fuzzSeeds } from '../helpers/prng';
import { everyByte, feedSplit, type StreamResult } from '../helpers/http1-stream';
import { genRequest, genResponse, type GenMessage, type GenOptions } from '../helpers/http1-gen';

interface Sequence {
  bytes: Buffer;
  expected: object[];
}

function sequence(rng: Prng, isRequest: boolean, opts: GenOptions): Sequence {
  const msgs: GenMessage[] = [];
  for (let n = rng.range(1, 5); n > 0; n--) msgs.push(isRequest ? genRequest(rng, opts) : genResponse(rng, opts));
  const expected: object[] = [];
  let at = 0;
  for (const g of msgs) {
    const e = g.expect;
    expected.push({
      headStart: at + e.headStart,
      headEnd: at + e.headEnd,
      bodyEnd: at + e.bodyEnd,
      method: e.method,
      target: e.target,
      versionMinor: e.versionMinor,
      statusCode: e.statusCode,
      fields: e.fields,
      contentLength: e.contentLength,
      chunked: e.chunked,
    });
    at += g.bytes.length;
  }
  return { bytes: Buffer.concat(msgs.map((g) => g.bytes)), expected };
}

/** The generator-checkable part of a parse result. */
function essentials(r: StreamResult): object {
  return {
    error: r.error,
    messages: r.messages.map((m) => ({
      headStart: m.headStart,
      headEnd: m.headEnd,
      bodyEnd: m.bodyEnd,
      method: m.method,
      target: m.target,
      versionMinor: m.versionMinor,
      statusCode: m.statusCode,
      fields: m.fields,
      contentLength: m.contentLength,
      chunked: m.chunked,
    })),
  };
}

/** Cut points on both sides of every CR and LF: the places where a line-based parser resumes. */
function cutsAroundLineEnds(bytes: Buffer, rng: Prng): number[] {
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    if ((bytes[i] === 13 || bytes[i] === 10) && rng.chance(0.5)) out.push(i, i + 1);
  }
  return [...new Set(out)].filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b);
}

function check(seed: number, isRequest: boolean, iterations: number, opts: GenOptions): void {
  const rng = new Prng(seed);
  for (let it = 0; it < iterations; it++) {
    const { bytes, expected } = sequence(rng, isRequest, opts);
    const label = `seed ${seed} iteration ${it}: ${JSON.stringify(bytes.toString('latin1').slice(0, 400))}`;
    const whole = feedSplit(bytes, [], isRequest);
    assert.deepEqual(essentials(whole), { error: null, messages: expected }, label);
    const splits: number[][] = [rng.cuts(bytes.length, rng.range(1, 4)), rng.cuts(bytes.length, rng.range(5, 40)), cutsAroundLineEnds(bytes, rng)];
    if (it % 4 === 0) splits.push(everyByte(bytes.length));
    for (const cuts of splits) {
      // Everything, including Connection flags, body kinds and drop marks, must be split-invariant.
      assert.deepEqual(feedSplit(bytes, cuts, isRequest), whole, `${label} cuts ${cuts.length <= 50 ? cuts.join(',') : `${cuts.length} cuts`}`);
    }
  }
}

for (const seed of fuzzSeeds([1, 2, 3])) {
  test(`pipelined requests split at random points parse as generated (seed ${seed})`, () => {
    check(seed, true, 300, {});
  });
}

for (const seed of fuzzSeeds([11, 12])) {
  test(`pipelined responses split at random points parse as generated (seed ${seed})`, () => {
    check(seed, false, 300, {});
  });
}

test('many fields and large bodies, split at random points', () => {
  check(101, true, 25, { maxFields: 100, maxBody: 5000 });
  check(102, false, 25, { maxFields: 100, maxBody: 5000 });
});

test('tiny chunks and bodies, one byte at a time', () => {
  const rng = new Prng(202);
  for (let it = 0; it < 80; it++) {
    const { bytes, expected } = sequence(rng, it % 2 === 0, { maxBody: 3, maxFields: 3 });
    const split = feedSplit(bytes, everyByte(bytes.length), it % 2 === 0);
    assert.deepEqual(essentials(split), { error: null, messages: expected }, `iteration ${it}`);
  }
});
