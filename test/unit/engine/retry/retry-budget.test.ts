// The retry budget with a fake clock: 20 % of the requests of a sliding 10 s window, a floor of
// minPerSecond x window, slots that expire; full-jitter backoff; and a full outage simulated for a
// minute, in which the upstream must see at most 1.2x the offered load (plus the floor).

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { RetryBudget, retryBackoffMs } from '../../../../engine/retry/retry-budget';
import { DEFAULT_RETRY_BUDGET, DEFAULT_RETRY_POLICY, type RetryBudgetSettings } from '../../../../engine/config/snapshot';
import { Prng } from '../../../helpers/prng';

/** A uniform [0, 1) source from the seeded PRNG. */
function uniform(seed: number): () => number {
  const r = new Prng(seed);
  return () => r.u32() / 0x100000000;
}

/** The budget without its floor: only the ratio counts. */
const RATIO_ONLY: RetryBudgetSettings = { ...DEFAULT_RETRY_BUDGET, minPerSecond: 0 };

function deposit(b: RetryBudget, t: number, n: number): void {
  for (let i = 0; i < n; i++) b.deposit(t);
}

/** Withdraws until refused (at most `max`); returns how many were granted. */
function drain(b: RetryBudget, t: number, max = 100_000): number {
  let n = 0;
  while (n < max && b.withdraw(t)) n++;
  return n;
}

test('the defaults: 20 % of a 10 s window, at least 10 retries a second', () => {
  assert.deepEqual({ ...DEFAULT_RETRY_BUDGET }, { ratio: 0.2, minPerSecond: 10, windowMs: 10_000 });
  assert.equal(DEFAULT_RETRY_POLICY.maxRetries, 2);
  assert.equal(DEFAULT_RETRY_POLICY.backoffBaseMs, 25);
  assert.equal(DEFAULT_RETRY_POLICY.backoffMaxMs, 250);
});

test('a quiet service may still retry: the floor is minPerSecond x window', () => {
  const b = new RetryBudget(DEFAULT_RETRY_BUDGET);
  assert.equal(b.remaining(0), 100);
  assert.equal(drain(b, 0), 100);
  assert.equal(b.withdraw(0), false);
  assert.equal(b.remaining(0), 0);
});

test('retries are limited to 20 % of the requests in the window', () => {
  const b = new RetryBudget(RATIO_ONLY);
  assert.equal(b.withdraw(0), false, 'no requests, no floor: no retries');
  deposit(b, 0, 50);
  assert.equal(b.remaining(0), 10);
  assert.equal(drain(b, 500), 10);
  deposit(b, 600, 5);
  assert.equal(b.withdraw(600), true, 'five more requests buy one more retry');
  assert.equal(b.withdraw(600), false);
});

test('the floor and the ratio are not added: the larger of the two applies', () => {
  const b = new RetryBudget(DEFAULT_RETRY_BUDGET);
  deposit(b, 0, 400); // 20 % = 80 < floor 100
  assert.equal(b.remaining(0), 100);
  deposit(b, 0, 600); // 20 % of 1000 = 200 > floor
  assert.equal(b.remaining(0), 200);
  assert.equal(drain(b, 0), 200);
});

test('requests older than the window no longer buy retries (slots of 1 s expire)', () => {
  const b = new RetryBudget(RATIO_ONLY);
  deposit(b, 0, 50);
  deposit(b, 5_000, 50);
  assert.equal(b.remaining(9_999), 20);
  assert.equal(b.remaining(10_000), 10, 'the requests of second 0 left the window');
  assert.equal(b.remaining(14_999), 10);
  assert.equal(b.remaining(15_000), 0);
});

test('spent retries are given back as their slot expires', () => {
  const b = new RetryBudget(DEFAULT_RETRY_BUDGET);
  assert.equal(drain(b, 2_500), 100);
  // Slots are 200 ms: the one holding 2.5 s (2.4-2.6 s) leaves the window at 12.4 s.
  assert.equal(b.withdraw(12_399), false, 'still within the window');
  assert.equal(b.remaining(12_400), 100);
  assert.equal(b.withdraw(12_400), true);
});

test('a window that moves part-way keeps the newer slots and drops the older ones', () => {
  const b = new RetryBudget(RATIO_ONLY);
  deposit(b, 0, 50);
  deposit(b, 3_000, 50);
  deposit(b, 3_999, 50);
  assert.equal(drain(b, 3_999), 30);
  // At 12.5 s the window is 2.6-12.6 s: the 100 requests and 30 retries near 3 s remain.
  assert.equal(b.remaining(12_500), 0);
  deposit(b, 12_500, 50); // 150 requests: 30 allowed, 30 spent
  assert.equal(b.remaining(12_500), 0);
  deposit(b, 12_600, 5);
  assert.equal(b.remaining(12_600), 1);
  // At 13 s the slot of 3.0 s has left (50 requests fewer), the one of 3.999 s with the 30 retries not yet.
  assert.equal(b.remaining(13_000), 0);
  // At 14 s it has left too: 55 requests and no retries in the window.
  assert.equal(b.remaining(14_000), 11);
});

test('after a long quiet spell the whole window is empty again', () => {
  const b = new RetryBudget(RATIO_ONLY);
  deposit(b, 0, 1_000);
  assert.equal(drain(b, 0), 200);
  assert.equal(b.remaining(3_600_000), 0, 'no requests in the last 10 s');
  deposit(b, 3_600_000, 10);
  assert.equal(b.remaining(3_600_000), 2);
});

test('a shorter window scales the floor and the slots', () => {
  const b = new RetryBudget({ ratio: 0.5, minPerSecond: 2, windowMs: 2_000 });
  assert.equal(b.remaining(0), 4);
  deposit(b, 0, 20);
  assert.equal(b.remaining(0), 10);
  assert.equal(b.remaining(1_999), 10);
  assert.equal(b.remaining(2_000), 4, 'slots of 200 ms: gone after 2 s');
});

test('retryBackoffMs: full jitter up to base x 2^retry, capped at max (25 .. 250 ms)', () => {
  const { backoffBaseMs: base, backoffMaxMs: max } = DEFAULT_RETRY_POLICY;
  const caps = [25, 50, 100, 200, 250, 250, 250];
  caps.forEach((cap, retry) => {
    assert.equal(retryBackoffMs(retry, base, max, 0), 0, 'full jitter starts at 0');
    assert.equal(retryBackoffMs(retry, base, max, 0.5), cap / 2);
    const top = retryBackoffMs(retry, base, max, 0.999_999);
    assert.ok(top < cap && top > cap * 0.999, `retry ${retry}: ${top} for a cap of ${cap}`);
  });
  for (const retry of [31, 100, 10_000]) assert.equal(retryBackoffMs(retry, base, max, 0.5), 125, `retry ${retry}`);
});

test('retryBackoffMs spreads uniformly over its range', () => {
  const rng = uniform(11);
  const buckets = new Array<number>(10).fill(0);
  for (let i = 0; i < 10_000; i++) {
    const d = retryBackoffMs(1, 25, 250, rng());
    assert.ok(d >= 0 && d < 50);
    buckets[Math.floor(d / 5)]!++;
  }
  for (const n of buckets) assert.ok(n > 850 && n < 1_150, `bucket of ${n}`);
});

test('full outage: 100 req/s for 60 s, all failing with 2 retries each, stays within 1.2x (plus the floor) in every 10 s window', () => {
  const s = DEFAULT_RETRY_BUDGET;
  const policy = DEFAULT_RETRY_POLICY;
  const budget = new RetryBudget(s);
  const rng = uniform(2024);
  const DURATION_MS = 60_000;
  const INTERVAL_MS = 1_000 / 100;
  const end = DURATION_MS + 1_000;
  // Events per millisecond: retries due (number of retries already made by that request).
  const due: number[][] = Array.from({ length: end }, () => []);
  const offered = new Int32Array(end);
  const attempts = new Int32Array(end);
  let retries = 0;
  let refused = 0;
  const failed = (t: number, retriesSoFar: number): void => {
    // Every attempt fails; the request wants another try while it has retries left.
    if (retriesSoFar >= policy.maxRetries) return;
    const delay = retryBackoffMs(retriesSoFar, policy.backoffBaseMs, policy.backoffMaxMs, rng());
    due[t + Math.ceil(delay)]!.push(retriesSoFar);
  };
  for (let t = 0; t < end; t++) {
    for (const n of due[t]!) {
      if (!budget.withdraw(t)) {
        refused++;
        continue;
      }
      retries++;
      attempts[t]!++;
      failed(t, n + 1);
    }
    if (t < DURATION_MS && t % INTERVAL_MS === 0) {
      budget.deposit(t);
      offered[t]!++;
      attempts[t]!++;
      failed(t, 0);
    }
  }
  const sum = (a: Int32Array, from: number, to: number): number => {
    let n = 0;
    for (let i = Math.max(0, from); i < Math.min(a.length, to); i++) n += a[i]!;
    return n;
  };
  const totalOffered = sum(offered, 0, end);
  assert.equal(totalOffered, 6_000);
  assert.ok(refused > 0, 'the budget refused retries');
  // Every 10 s window, starting at every millisecond (prefix sums).
  const W = s.windowMs;
  const floor = (s.minPerSecond * W) / 1_000;
  const pre = (a: Int32Array): Float64Array => {
    const p = new Float64Array(a.length + 1);
    for (let i = 0; i < a.length; i++) p[i + 1] = p[i]! + a[i]!;
    return p;
  };
  const po = pre(offered);
  const pa = pre(attempts);
  let worst = 0;
  for (let from = -W + 1; from < end; from++) {
    const lo = Math.max(0, from);
    const hi = Math.min(end, from + W);
    const o = po[hi]! - po[lo]!;
    const a = pa[hi]! - pa[lo]!;
    assert.ok(a <= (1 + s.ratio) * o + floor, `window from ${from} ms: ${a} attempts for ${o} requests`);
    if (o >= 900) worst = Math.max(worst, a / o);
  }
  // Not vacuous: once past the first window the budget is used up to its 20 %.
  for (let from = 20_000; from + W <= DURATION_MS; from += 1_000) {
    const r = sum(attempts, from, from + W) - sum(offered, from, from + W);
    assert.ok(r >= 0.18 * sum(offered, from, from + W), `retries from ${from} ms: ${r}`);
  }
  assert.ok(worst > 1.15 && worst <= 1.3, `worst ratio in a full window ${worst}`);
  assert.ok(retries < 0.25 * totalOffered + 2 * floor, `${retries} retries in all`);
});
