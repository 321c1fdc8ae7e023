// Failure accrual of one endpoint: consecutive and success-rate verdicts, ejection backoff with
// jitter, probe outcomes. Pure state: times and random draws are passed in.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { EndpointHealth, Health, ejectionBackoffMs } from '../../../../engine/balance/failure-accrual';
import { DEFAULT_FAILURE_ACCRUAL, type FailureAccrualSettings } from '../../../../engine/config/snapshot';

const S = DEFAULT_FAILURE_ACCRUAL;

const rate = (over: Partial<FailureAccrualSettings>): FailureAccrualSettings => ({ ...S, mode: 'success-rate', ...over });

/** Records `n` failures; returns the 1-based index of the first that asked for ejection, or 0. */
function failures(h: EndpointHealth, s: FailureAccrualSettings, n: number): number {
  for (let i = 1; i <= n; i++) if (h.failure(s)) return i;
  return 0;
}

function successes(h: EndpointHealth, s: FailureAccrualSettings, n: number): void {
  for (let i = 0; i < n; i++) assert.equal(h.success(s), false, 'a success of a ready endpoint restores nothing');
}

test('the defaults: 7 failures in a row, 1 s to 60 s backoff with half again of jitter, at most half ejected', () => {
  assert.equal(S.mode, 'consecutive');
  assert.equal(S.consecutiveFailures, 7);
  assert.equal(S.minBackoffMs, 1_000);
  assert.equal(S.maxBackoffMs, 60_000);
  assert.equal(S.jitter, 0.5);
  assert.equal(S.maxEjectionPercent, 50);
});

test('consecutive mode asks for ejection at the 7th failure in a row, not before', () => {
  const h = new EndpointHealth();
  assert.equal(failures(h, S, 6), 0);
  assert.equal(h.consecutive, 6);
  assert.equal(h.failure(S), true);
  assert.equal(h.state, Health.Ready, 'failure() only decides; eject() takes it out');
});

test('a success resets the run of failures', () => {
  const h = new EndpointHealth();
  assert.equal(failures(h, S, 6), 0);
  successes(h, S, 1);
  assert.equal(h.consecutive, 0);
  assert.equal(failures(h, S, 6), 0, 'six more after the success are not seven in a row');
  assert.equal(h.failure(S), true);
});

test('a ready endpoint kept in rotation past the threshold keeps asking for ejection on every failure', () => {
  const h = new EndpointHealth();
  assert.equal(failures(h, S, 7), 7);
  // The balancer refused (panic threshold): the next failures still count.
  assert.equal(h.failure(S), true);
  assert.equal(h.failure(S), true);
});

test('mode off never asks for ejection', () => {
  const h = new EndpointHealth();
  assert.equal(failures(h, { ...S, mode: 'off' }, 1000), 0);
});

test('success-rate mode waits for the minimum number of outcomes', () => {
  const s = rate({ successRateMinRequests: 20, successRateWindow: 100, successRateThreshold: 0.8 });
  const h = new EndpointHealth();
  // 19 failures: a 0 % success rate, but too few outcomes to judge.
  assert.equal(failures(h, s, 19), 0);
  assert.equal(h.failure(s), true, 'the 20th outcome makes the rate count');
});

test('success-rate mode ejects only when the rate falls strictly below the threshold', () => {
  const s = rate({ successRateMinRequests: 20, successRateWindow: 100, successRateThreshold: 0.8 });
  const h = new EndpointHealth();
  successes(h, s, 16);
  // 16 of 20 = 0.8: not below.
  assert.equal(failures(h, s, 4), 0);
  // 16 of 21 < 0.8.
  assert.equal(h.failure(s), true);
});

test('success-rate mode ignores a long run of failures while the rate stays high', () => {
  const s = rate({ successRateMinRequests: 10, successRateWindow: 100, successRateThreshold: 0.5 });
  const h = new EndpointHealth();
  successes(h, s, 50);
  // 20 failures in a row would eject in consecutive mode; 50 of 70 is still above 0.5.
  assert.equal(failures(h, s, 20), 0);
});

test('success-rate mode forgets outcomes older than the window', () => {
  const s = rate({ successRateMinRequests: 10, successRateWindow: 10, successRateThreshold: 0.5 });
  const h = new EndpointHealth();
  assert.equal(failures(h, s, 9), 0, 'fewer than 10 outcomes');
  successes(h, s, 10);
  // The window now holds 10 successes; the 9 early failures are gone (cumulatively 10 of 24 would eject).
  assert.equal(failures(h, s, 5), 0, '5 of 10: not below 0.5');
  assert.equal(h.failure(s), true, '4 of 10');
});

test('ejectionBackoffMs doubles per ejection in a row from the minimum', () => {
  assert.equal(ejectionBackoffMs(S, 0, 0), 1_000);
  assert.equal(ejectionBackoffMs(S, 1, 0), 2_000);
  assert.equal(ejectionBackoffMs(S, 2, 0), 4_000);
  assert.equal(ejectionBackoffMs(S, 5, 0), 32_000);
});

test('ejectionBackoffMs adds up to the jitter fraction at random', () => {
  assert.equal(ejectionBackoffMs(S, 0, 0.5), 1_250);
  assert.equal(ejectionBackoffMs(S, 2, 0.5), 5_000);
  const top = ejectionBackoffMs(S, 0, 0.999_999);
  assert.ok(top < 1_500 && top > 1_499.99, `${top}`);
  assert.equal(ejectionBackoffMs({ ...S, jitter: 0 }, 3, 0.9), 8_000, 'no jitter: rand is ignored');
});

test('ejectionBackoffMs never exceeds the maximum, jitter included, however many ejections', () => {
  assert.equal(ejectionBackoffMs(S, 6, 0), 60_000, '64 s capped');
  assert.equal(ejectionBackoffMs(S, 5, 0.999), 47_984, '32 s + 49.9 % is within the cap');
  assert.equal(ejectionBackoffMs({ ...S, jitter: 1 }, 5, 0.999), 60_000, '32 s + 99.9 % is capped');
  for (const n of [7, 30, 31, 100, 1e6]) {
    for (const r of [0, 0.5, 0.999]) {
      const b = ejectionBackoffMs(S, n, r);
      assert.equal(b, 60_000, `n=${n} rand=${r}: ${b}`);
    }
  }
});

test('eject takes the endpoint out until now + backoff and counts the ejection', () => {
  const h = new EndpointHealth();
  failures(h, S, 7);
  h.eject(S, 10_000, 0);
  assert.equal(h.state, Health.Ejected);
  assert.equal(h.untilMs, 11_000);
  assert.equal(h.ejections, 1);
  assert.equal(h.consecutive, 0);
  assert.equal(h.probeInFlight, false);
});

test('failures and successes while ejected neither re-eject nor restore', () => {
  const h = new EndpointHealth();
  h.eject(S, 0, 0);
  assert.equal(failures(h, S, 20), 0);
  assert.equal(h.success(S), false);
  assert.equal(h.state, Health.Ejected);
  assert.equal(h.untilMs, 1_000, 'the ejection is not extended');
});

test('a successful probe restores the endpoint and resets the backoff', () => {
  const h = new EndpointHealth();
  h.eject(S, 0, 0);
  h.state = Health.Probing; // the balancer moves it once the backoff is over
  h.probeInFlight = true;
  assert.equal(h.success(S), true);
  assert.equal(h.state, Health.Ready);
  assert.equal(h.probeInFlight, false);
  assert.equal(h.ejections, 0);
  // The next ejection starts from the minimum again.
  failures(h, S, 7);
  h.eject(S, 5_000, 0);
  assert.equal(h.untilMs, 6_000);
});

test('a failed probe asks for re-ejection at once, and the next backoff is twice as long', () => {
  const h = new EndpointHealth();
  h.eject(S, 0, 0);
  assert.equal(h.untilMs, 1_000);
  h.state = Health.Probing;
  h.probeInFlight = true;
  assert.equal(h.failure(S), true, 'one failed probe is enough');
  h.eject(S, 1_000, 0);
  assert.equal(h.state, Health.Ejected);
  assert.equal(h.untilMs, 3_000);
  h.state = Health.Probing;
  assert.equal(h.failure(S), true);
  h.eject(S, 3_000, 0);
  assert.equal(h.untilMs, 7_000);
  assert.equal(h.ejections, 3);
});

test('a cancelled probe frees the probe slot without a verdict', () => {
  const h = new EndpointHealth();
  h.eject(S, 0, 0);
  h.state = Health.Probing;
  h.probeInFlight = true;
  h.cancelled();
  assert.equal(h.probeInFlight, false);
  assert.equal(h.state, Health.Probing);
  assert.equal(h.ejections, 1);
});

test('success-rate mode starts a fresh window after a restore', () => {
  const s = rate({ successRateMinRequests: 5, successRateWindow: 10, successRateThreshold: 0.5 });
  const h = new EndpointHealth();
  successes(h, s, 3);
  assert.equal(failures(h, s, 10), 4, '3 of 7 is below 0.5');
  h.eject(s, 0, 0);
  h.state = Health.Probing;
  assert.equal(h.success(s), true);
  // Only the outcomes since the restore count: 4 failures are fewer than the minimum of 5.
  assert.equal(failures(h, s, 4), 0);
  assert.equal(h.failure(s), true);
});
