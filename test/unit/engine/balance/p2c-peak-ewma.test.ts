// Peak-EWMA and P2C with a fake clock and a seeded RNG: deterministic.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { P2cPeakEwmaPicker } from '../../../../engine/balance/p2c';
import { DEFAULT_RTT_MS, PeakEwma } from '../../../../engine/balance/peak-ewma';
import { DEFAULT_POOL_SETTINGS } from '../../../../engine/config/snapshot';
import { Endpoint } from '../../../../engine/pool/endpoint';
import { Prng } from '../../../helpers/prng';

/** A uniform [0, 1) source from the seeded PRNG. */
function uniform(seed: number): () => number {
  const r = new Prng(seed);
  return () => r.u32() / 0x100000000;
}

const ep = (port: number): Endpoint => new Endpoint('127.0.0.1', port, '', 1, DEFAULT_POOL_SETTINGS);

test('a new estimate starts at 30 ms', () => {
  assert.equal(new PeakEwma(0).estimateMs(0), DEFAULT_RTT_MS);
});

test('a slower sample replaces the estimate at once; a faster one is averaged in by 1 - e^(-dt/tau)', () => {
  const e = new PeakEwma(0, 10_000, 30);
  e.observe(200, 0);
  assert.equal(e.estimateMs(0), 200);
  // 1 s later: the estimate decayed to 200 e^-0.1; a 10 ms sample moves it by w = 1 - e^-0.1.
  e.observe(10, 1000);
  const decayed = 200 * Math.exp(-0.1);
  const w = 1 - Math.exp(-0.1);
  assert.ok(Math.abs(e.estimateMs(1000) - (decayed * (1 - w) + 10 * w)) < 1e-9);
});

test('the estimate decays between samples (tau = 10 s)', () => {
  const e = new PeakEwma(0, 10_000, 100);
  assert.ok(Math.abs(e.estimateMs(10_000) - 100 / Math.E) < 1e-9);
  assert.ok(e.estimateMs(60_000) < 1);
});

test('P2C takes the cheaper of two distinct endpoints: cost = estimate x (in flight + 1)', () => {
  const [a, b] = [ep(1), ep(2)];
  const set = [a, b];
  const p = new P2cPeakEwmaPicker({ rng: uniform(1) });
  // Let the 30 ms starting estimates decay away, so that each sample becomes the estimate.
  p.cost(a, 0);
  p.cost(b, 0);
  const t = 200_000;
  p.observe(a, 100, t);
  p.observe(b, 10, t);
  assert.equal(p.cost(a, t), 100);
  assert.equal(p.cost(b, t), 10);
  for (let i = 0; i < 50; i++) assert.equal(p.pick(set, t), b);
  // Load on b: 10 x (20 + 1) = 210 > 100 x 1, so a wins now.
  b.inFlight = 20;
  assert.equal(p.pick(set, t), a);
  assert.equal(p.cost(b, t), 10 * 21);
});

test('over many picks a slow endpoint gets little traffic but is never starved forever', () => {
  const eps = [ep(1), ep(2), ep(3), ep(4)];
  const p = new P2cPeakEwmaPicker({ rng: uniform(42) });
  for (const e of eps) p.observe(e, e === eps[3] ? 500 : 5, 0);
  const counts = new Map(eps.map((e) => [e, 0]));
  for (let i = 0; i < 4000; i++) {
    const e = p.pick(eps, 0);
    counts.set(e, counts.get(e)! + 1);
  }
  // The slow one is only picked when both choices are it... which P2C never does: two distinct.
  assert.equal(counts.get(eps[3]), 0);
  for (const e of eps.slice(0, 3)) assert.ok(counts.get(e)! > 1000, `share of a fast endpoint: ${counts.get(e)}`);
  // A minute later its estimate has decayed below the fast ones' last samples: it is tried again.
  const t = 60_000;
  for (const e of eps.slice(0, 3)) p.observe(e, 5, t);
  let picked = 0;
  for (let i = 0; i < 400; i++) if (p.pick(eps, t) === eps[3]) picked++;
  assert.ok(picked > 0, 'the decayed endpoint is tried again');
});

test('a single candidate is always picked', () => {
  const only = ep(9);
  assert.equal(new P2cPeakEwmaPicker({ rng: () => 0.5 }).pick([only], 0), only);
});
