// Property: for random latencies, each bucket holds exactly the values in (previous bound, bound] and
// the counts sum to the number recorded.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LATENCY_BUCKETS_MS, LatencyHistogram } from '../../engine/metrics/latency';
import { Prng, fuzzSeeds } from '../helpers/prng';

/** Where a value recorded with microsecond resolution belongs. */
function bucketOf(ms: number): number {
  const us = Math.min(Math.max(Math.round(ms * 1000), 1), 3_600_000_000);
  const i = LATENCY_BUCKETS_MS.findIndex((le) => us <= le * 1000);
  return i === -1 ? LATENCY_BUCKETS_MS.length : i;
}

for (const seed of fuzzSeeds([71, 72])) {
  test(`bucket counts are exact for random latencies (seed ${seed})`, () => {
    const rng = new Prng(seed);
    const h = new LatencyHistogram();
    const want = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      let ms: number;
      const k = rng.int(4);
      if (k === 0) ms = rng.pick(LATENCY_BUCKETS_MS); // on a bound
      else if (k === 1) ms = rng.pick(LATENCY_BUCKETS_MS) + rng.pick([-1, 1]) * rng.range(1, 999) / 1000; // within 1 ms of one
      else if (k === 2) ms = Math.exp(rng.int(1_000_000) / 1_000_000 * Math.log(200_000)); // log-uniform up to 200 s
      else ms = rng.u32() / 0x100000000 * 5;
      h.recordMs(ms);
      want[bucketOf(ms)]++;
    }
    const got = h.bucketCounts();
    assert.deepEqual(got, want);
    assert.equal(got.reduce((a, b) => a + b, 0), n);
    assert.equal(h.count, n);
  });
}
