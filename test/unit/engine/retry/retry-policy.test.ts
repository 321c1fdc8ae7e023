// The compiled retry policy: which statuses and attempt failures each condition retries, which
// requests may be sent again, and the budget built from the policy's settings.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { AttemptFailure, CompiledRetry, type RetryCounters, RetryOn } from '../../../../engine/retry/retry-policy';
import { DEFAULT_RETRY_POLICY, type RetryCondition, type RetryPolicy } from '../../../../engine/config/snapshot';
import { MetricsRegistry } from '../../../../engine/metrics/registry';

function counters(): RetryCounters {
  const m = new MetricsRegistry();
  const labels = { route: 'r', backend: 'b' };
  return {
    retries: m.counter('retry_requests_total', labels),
    budgetExhausted: m.counter('retry_budget_exhausted_total', labels),
    limitExceeded: m.counter('retry_limit_exceeded_total', labels),
  };
}

const compile = (on: RetryCondition[], over: Partial<RetryPolicy> = {}): CompiledRetry =>
  new CompiledRetry({ ...DEFAULT_RETRY_POLICY, on, ...over }, counters());

/** The statuses in [100, 600) that the policy retries. */
function retriedStatuses(r: CompiledRetry): number[] {
  const out: number[] = [];
  for (let s = 100; s < 600; s++) if (r.retriesStatus(s)) out.push(s);
  return out;
}

const range = (lo: number, hi: number): number[] => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);

function failures(r: CompiledRetry): Record<string, boolean> {
  return {
    connect: r.retriesFailure(AttemptFailure.Connect),
    reset: r.retriesFailure(AttemptFailure.Reset),
    timeout: r.retriesFailure(AttemptFailure.ResponseTimeout),
    badResponse: r.retriesFailure(AttemptFailure.BadResponse),
  };
}

test('the default policy retries connection failures only, and no status', () => {
  const r = new CompiledRetry(DEFAULT_RETRY_POLICY, counters());
  assert.equal(r.mask, RetryOn.ConnectFailure);
  assert.deepEqual(retriedStatuses(r), []);
  assert.deepEqual(failures(r), { connect: true, reset: false, timeout: false, badResponse: false });
});

test('5xx retries every 5xx status and every attempt failure', () => {
  const r = compile(['5xx']);
  assert.deepEqual(retriedStatuses(r), range(500, 599));
  assert.equal(r.retriesStatus(600), false);
  assert.equal(r.retriesStatus(429), false);
  assert.deepEqual(failures(r), { connect: true, reset: true, timeout: true, badResponse: true });
});

test('gateway-error retries 502, 503 and 504, and every attempt that got no response (answered locally with 502/504)', () => {
  const r = compile(['gateway-error']);
  assert.deepEqual(retriedStatuses(r), [502, 503, 504]);
  assert.deepEqual(failures(r), { connect: true, reset: true, timeout: true, badResponse: true });
});

test('connect-failure with other conditions still retries connection failures', () => {
  const r = compile(['connect-failure', 'reset']);
  assert.deepEqual(retriedStatuses(r), []);
  assert.equal(r.retriesFailure(AttemptFailure.Connect), true);
  assert.equal(r.retriesFailure(AttemptFailure.Reset), true);
});

test('reset retries a connection broken before the response head, and no status', () => {
  const r = compile(['reset']);
  assert.deepEqual(retriedStatuses(r), []);
  assert.equal(r.retriesFailure(AttemptFailure.Reset), true);
  assert.equal(r.retriesFailure(AttemptFailure.BadResponse), false);
});

test('retriable-status-codes retries exactly the listed statuses', () => {
  const r = compile(['retriable-status-codes'], { statusCodes: [409, 429, 503] });
  assert.deepEqual(retriedStatuses(r), [409, 429, 503]);
  assert.equal(r.retriesFailure(AttemptFailure.Reset), false);
});

test('conditions combine: connect-failure plus listed statuses', () => {
  const r = compile(['connect-failure', 'retriable-status-codes'], { statusCodes: [429] });
  assert.equal(r.mask, RetryOn.ConnectFailure | RetryOn.StatusCodes);
  assert.deepEqual(retriedStatuses(r), [429]);
  assert.equal(r.retriesFailure(AttemptFailure.Connect), true);
  assert.equal(r.retriesFailure(AttemptFailure.Reset), false);
});

test('status codes listed without the retriable-status-codes condition are not retried', () => {
  const r = compile(['connect-failure'], { statusCodes: [429, 503] });
  assert.deepEqual(retriedStatuses(r), []);
});

test('5xx and gateway-error together retry the union, without duplicates of behaviour', () => {
  const r = compile(['gateway-error', '5xx', 'retriable-status-codes'], { statusCodes: [429] });
  assert.deepEqual(retriedStatuses(r), [429, ...range(500, 599)]);
  assert.deepEqual(failures(r), { connect: true, reset: true, timeout: true, badResponse: true });
});

test('mayResend: idempotent requests always; others only with nonIdempotent', () => {
  const strict = compile(['5xx']);
  assert.equal(strict.mayResend(true), true);
  assert.equal(strict.mayResend(false), false);
  const lax = compile(['5xx'], { nonIdempotent: true });
  assert.equal(lax.mayResend(true), true);
  assert.equal(lax.mayResend(false), true);
  assert.equal(DEFAULT_RETRY_POLICY.nonIdempotent, false);
});

test('the limits and backoff bounds are taken from the policy', () => {
  const r = compile(['5xx'], { maxRetries: 4, maxBodyBytes: 1234, backoffBaseMs: 10, backoffMaxMs: 90 });
  assert.deepEqual(
    [r.maxRetries, r.maxBodyBytes, r.backoffBaseMs, r.backoffMaxMs, r.nonIdempotent],
    [4, 1234, 10, 90, false],
  );
});

test('the budget is built from the policy: floor minPerSecond x window, then the ratio', () => {
  const r = compile(['5xx'], { budget: { ratio: 0.5, minPerSecond: 1, windowMs: 4_000 } });
  assert.equal(r.budget.remaining(0), 4);
  for (let i = 0; i < 20; i++) r.budget.deposit(0);
  assert.equal(r.budget.remaining(0), 10);
});

test('each compiled policy has a budget of its own', () => {
  const a = compile(['5xx']);
  const b = compile(['5xx']);
  while (a.budget.withdraw(0));
  assert.equal(a.budget.remaining(0), 0);
  assert.equal(b.budget.remaining(0), 100);
});
