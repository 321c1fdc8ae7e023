// The balancer with a fake clock and scripted randomness: failure accrual (7 in a row), ejection
// backoff with jitter, the single probe, the panic threshold, zone locality, the failure penalty;
// and the simple pickers (least-request, round-robin) over candidate arrays that change.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Balancer, type BalancerOptions, HealthEpoch, Outcome } from '../../../../engine/balance/balancer';
import { EndpointHealth, Health } from '../../../../engine/balance/failure-accrual';
import { LeastRequestPicker } from '../../../../engine/balance/least-request';
import { P2cPeakEwmaPicker } from '../../../../engine/balance/p2c';
import { type Picker, RoundRobinPicker } from '../../../../engine/balance/picker';
import {
  DEFAULT_FAILURE_ACCRUAL,
  DEFAULT_FAILURE_PENALTY,
  DEFAULT_POOL_SETTINGS,
  DEFAULT_ZONE_LOCALITY,
} from '../../../../engine/config/snapshot';
import { Endpoint } from '../../../../engine/pool/endpoint';
import { Prng } from '../../../helpers/prng';

interface FakeClock {
  t: number;
  now(): number;
}

const fakeClock = (t = 0): FakeClock => ({
  t,
  now() {
    return this.t;
  },
});

/** A uniform [0, 1) source from the seeded PRNG. */
function uniform(seed: number): () => number {
  const r = new Prng(seed);
  return () => r.u32() / 0x100000000;
}

/** Returns the scripted values in order, then repeats the last one. */
function scripted(...values: number[]): () => number {
  let i = 0;
  return () => values[Math.min(i++, values.length - 1)]!;
}

let nextPort = 1;
const ep = (zone = ''): Endpoint => new Endpoint('10.0.0.1', nextPort++, zone, 1, DEFAULT_POOL_SETTINGS);
const eps = (n: number, zone = ''): Endpoint[] => Array.from({ length: n }, () => ep(zone));

interface Log {
  ejected: Endpoint[];
  restored: Endpoint[];
}

interface Rig {
  b: Balancer;
  clock: FakeClock;
  log: Log;
  opts: BalancerOptions;
}

function rig(endpoints: Endpoint[], over: Partial<BalancerOptions> = {}): Rig {
  const clock = fakeClock();
  const log: Log = { ejected: [], restored: [] };
  const opts: BalancerOptions = {
    picker: new RoundRobinPicker(),
    clock,
    rng: () => 0,
    accrual: DEFAULT_FAILURE_ACCRUAL,
    penalty: DEFAULT_FAILURE_PENALTY,
    zone: '',
    zoneLocality: DEFAULT_ZONE_LOCALITY,
    events: { ejected: (e) => log.ejected.push(e), restored: (e) => log.restored.push(e) },
    ...over,
  };
  return { b: new Balancer(endpoints, opts), clock, log, opts };
}

function fail(b: Balancer, e: Endpoint, n: number): void {
  for (let i = 0; i < n; i++) b.outcome(e, Outcome.Failure);
}

/** How often each endpoint is picked in `n` picks (the clock does not move). */
function picks(b: Balancer, n: number): Map<Endpoint, number> {
  const m = new Map<Endpoint, number>();
  for (let i = 0; i < n; i++) {
    const e = b.pick();
    assert.ok(e !== null);
    m.set(e, (m.get(e) ?? 0) + 1);
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// Ready set and failure accrual

test('no endpoints: pick gives null; a single endpoint is always picked and never ejected', () => {
  assert.equal(rig([]).b.pick(), null);
  const only = ep();
  const { b, log } = rig([only]);
  fail(b, only, 100);
  for (let i = 0; i < 10; i++) assert.equal(b.pick(), only);
  assert.equal(only.health, null, 'no accrual state for a lone endpoint');
  assert.deepEqual(log.ejected, []);
  assert.equal(b.readyCount, 1);
});

test('round-robin over all ready endpoints while nothing fails', () => {
  const set = eps(3);
  const { b } = rig(set);
  const got = Array.from({ length: 6 }, () => b.pick());
  assert.deepEqual(got, [...set, ...set]);
});

test('6 failures in a row keep an endpoint in rotation; the 7th ejects it', () => {
  const [a, x, y] = eps(3);
  const { b, log } = rig([a!, x!, y!]);
  fail(b, a!, 6);
  assert.equal(picks(b, 30).get(a!), 10);
  assert.deepEqual(log.ejected, []);
  b.outcome(a!, Outcome.Failure);
  assert.deepEqual(log.ejected, [a]);
  assert.equal(b.readyCount, 2);
  assert.equal(picks(b, 100).get(a!), undefined, 'an ejected endpoint gets no traffic');
});

test('a success between failures resets the count: 6 + 1 success + 6 does not eject', () => {
  const [a, x] = eps(2);
  const { b, log } = rig([a!, x!]);
  fail(b, a!, 6);
  b.outcome(a!, Outcome.Success);
  fail(b, a!, 6);
  assert.deepEqual(log.ejected, []);
  assert.equal(b.readyCount, 2);
});

test('the first ejection lasts 1 s plus jitter; after it exactly one probe request goes to the endpoint', () => {
  const [a, x, y] = eps(3);
  // rng 0.5: 1 s x (1 + 0.5 x 0.5) = 1.25 s
  const { b, clock } = rig([a!, x!, y!], { rng: () => 0.5 });
  clock.t = 10_000;
  fail(b, a!, 7);
  assert.equal(a!.health!.untilMs, 11_250);
  clock.t = 11_249;
  assert.equal(picks(b, 20).get(a!), undefined, 'still ejected 1 ms before the end');
  clock.t = 11_250;
  assert.equal(b.pick(), a, 'the first pick after the backoff is the probe');
  assert.equal(a!.health!.state, Health.Probing);
  assert.equal(a!.health!.probeInFlight, true);
  // While the probe is out, nothing else goes there.
  clock.t = 20_000;
  assert.equal(picks(b, 100).get(a!), undefined);
});

test('a successful probe restores the endpoint to rotation and emits restored', () => {
  const [a, x, y] = eps(3);
  const { b, clock, log } = rig([a!, x!, y!]);
  fail(b, a!, 7);
  clock.t = 1_000;
  assert.equal(b.pick(), a);
  b.outcome(a!, Outcome.Success);
  assert.deepEqual(log.restored, [a]);
  assert.equal(b.readyCount, 3);
  assert.equal(a!.health!.state, Health.Ready);
  assert.equal(picks(b, 30).get(a!), 10, 'its full round-robin share again');
});

test('a failed probe re-ejects for twice as long, and the backoff grows to the 60 s cap', () => {
  const [a, x, y] = eps(3);
  const { b, clock, log } = rig([a!, x!, y!]);
  fail(b, a!, 7);
  const durations: number[] = [];
  let start = 0;
  for (let round = 0; round < 9; round++) {
    const until = a!.health!.untilMs;
    durations.push(until - start);
    clock.t = until - 1;
    assert.notEqual(b.pick(), a, `round ${round}: not before the backoff ends`);
    clock.t = until;
    assert.equal(b.pick(), a, `round ${round}: the probe`);
    b.outcome(a!, Outcome.Failure);
    start = until;
  }
  assert.deepEqual(durations, [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
  assert.equal(log.ejected.length, 10);
  assert.equal(b.readyCount, 2, 'still counted out once, not once per ejection');
});

test('after a restore the next ejection starts again from 1 s', () => {
  const [a, x, y] = eps(3);
  const { b, clock } = rig([a!, x!, y!]);
  fail(b, a!, 7);
  clock.t = 1_000;
  b.pick();
  b.outcome(a!, Outcome.Failure); // re-ejected until 3 s
  clock.t = 3_000;
  assert.equal(b.pick(), a);
  b.outcome(a!, Outcome.Success);
  clock.t = 5_000;
  fail(b, a!, 7);
  assert.equal(a!.health!.untilMs, 6_000);
});

test('ejection jitter comes from the injected rng, one draw per ejection', () => {
  const [a, x, y] = eps(3);
  const { b, clock } = rig([a!, x!, y!], { rng: scripted(0.2, 0.8) });
  fail(b, a!, 7);
  assert.equal(a!.health!.untilMs, 1_100); // 1 s x (1 + 0.5 x 0.2)
  clock.t = 1_100;
  assert.equal(b.pick(), a);
  b.outcome(a!, Outcome.Failure);
  assert.equal(a!.health!.untilMs, 1_100 + 2_800); // 2 s x (1 + 0.5 x 0.8)
});

test('a cancelled probe is retried: the next pick sends a new probe', () => {
  const [a, x, y] = eps(3);
  const { b, clock, log } = rig([a!, x!, y!]);
  fail(b, a!, 7);
  clock.t = 1_000;
  assert.equal(b.pick(), a);
  assert.equal(b.lastPickWasProbe, true);
  // A cancelled request that was not the probe changes nothing: the probe is still out.
  b.outcome(a!, Outcome.Cancelled, false);
  assert.equal(picks(b, 20).get(a!), undefined, 'no second probe while the first is out');
  b.outcome(a!, Outcome.Cancelled, true);
  assert.equal(a!.health!.state, Health.Probing, 'no verdict');
  assert.equal(b.pick(), a, 'probed again');
  assert.equal(picks(b, 20).get(a!), undefined, 'and only once');
  b.outcome(a!, Outcome.Success);
  assert.deepEqual(log.restored, [a]);
});

test('a cancelled request to a ready endpoint is no verdict at all', () => {
  const [a, x] = eps(2);
  const { b } = rig([a!, x!]);
  fail(b, a!, 6);
  b.outcome(a!, Outcome.Cancelled);
  b.outcome(a!, Outcome.Failure);
  assert.equal(b.readyCount, 1, 'the run of failures went on through the cancel: 7 in a row');
});

test('two endpoints due at once are probed one per pick, each once', () => {
  const [a, c, x, y] = eps(4);
  const { b, clock } = rig([a!, c!, x!, y!]);
  fail(b, a!, 7);
  fail(b, c!, 7);
  clock.t = 1_000;
  const first = [b.pick(), b.pick()];
  assert.deepEqual(new Set(first), new Set([a, c]));
  const rest = picks(b, 40);
  assert.equal(rest.get(a!), undefined);
  assert.equal(rest.get(c!), undefined);
});

test('an endpoint re-ejected by a late failure before its probe went out gets no request until the new backoff ends', () => {
  const [a, c, x, y] = eps(4);
  const { b, clock } = rig([a!, c!, x!, y!]);
  fail(b, a!, 7);
  fail(b, c!, 7);
  clock.t = 1_000;
  const probed = b.pick()!; // both are due; one probe goes out per pick
  const waiting = probed === a ? c! : a!;
  // A request sent to `waiting` before its ejection fails now: out again, until 3 s.
  b.outcome(waiting, Outcome.Failure);
  assert.equal(waiting.health!.state, Health.Ejected);
  assert.equal(waiting.health!.untilMs, 3_000);
  assert.equal(picks(b, 20).get(waiting), undefined, 'no request to an ejected endpoint');
  clock.t = 3_000;
  assert.equal(b.pick(), waiting, 'probed when the new backoff ends');
});

test('panic threshold: at most maxEjectionPercent of the endpoints are out; the others stay in rotation', () => {
  const set = eps(4);
  const { b, log } = rig(set);
  for (const e of set) fail(b, e, 20);
  assert.equal(log.ejected.length, 2, '50 % of 4');
  assert.equal(b.readyCount, 2);
  const got = picks(b, 40);
  assert.equal(got.size, 2);
  for (const e of log.ejected) assert.equal(got.get(e), undefined);
});

test('panic threshold: never the last endpoint, even at 100 %', () => {
  const set = eps(3);
  const { b, log } = rig(set, { accrual: { ...DEFAULT_FAILURE_ACCRUAL, maxEjectionPercent: 100 } });
  for (const e of set) fail(b, e, 20);
  assert.equal(log.ejected.length, 2);
  assert.equal(b.readyCount, 1);
  const survivor = set.find((e) => !log.ejected.includes(e))!;
  assert.equal(picks(b, 10).get(survivor), 10);
});

test('panic threshold: of two endpoints both failing, one stays in', () => {
  const [a, c] = eps(2);
  const { b, log } = rig([a!, c!]);
  fail(b, a!, 7);
  fail(b, c!, 50);
  assert.deepEqual(log.ejected, [a]);
  assert.equal(picks(b, 10).get(c!), 10);
});

test('panic threshold: an endpoint being probed still counts as out; its restore makes room for the next ejection', () => {
  const [a, c, x] = eps(3); // 50 % of 3: one at a time
  const { b, clock, log } = rig([a!, c!, x!]);
  fail(b, a!, 7);
  clock.t = 1_000;
  assert.equal(b.pick(), a); // probing
  fail(b, c!, 10);
  assert.deepEqual(log.ejected, [a], 'c stays in while a is being probed');
  b.outcome(a!, Outcome.Success);
  b.outcome(c!, Outcome.Failure);
  assert.deepEqual(log.ejected, [a, c], 'the next failure of c, already past 7 in a row, ejects it');
});

test('a refused connection takes a ready endpoint out at once, for the usual backoff', () => {
  const [a, x, y] = eps(3);
  const { b, clock, log } = rig([a!, x!, y!]);
  clock.t = 100;
  b.outcome(a!, Outcome.ConnectFailure);
  assert.deepEqual(log.ejected, [a]);
  assert.equal(a!.health!.untilMs, 1_100);
  assert.equal(picks(b, 20).get(a!), undefined);
  clock.t = 1_100;
  assert.equal(b.pick(), a, 'probed like any ejected endpoint');
  b.outcome(a!, Outcome.ConnectFailure);
  assert.equal(a!.health!.untilMs, 3_100, 'a refused probe: out again for twice as long');
  assert.equal(log.ejected.length, 2);
});

test('refused connections respect the panic threshold', () => {
  const set = eps(4);
  const { b, log } = rig(set);
  for (const e of set) b.outcome(e, Outcome.ConnectFailure);
  assert.deepEqual(log.ejected, set.slice(0, 2));
  assert.equal(b.readyCount, 2);
});

test('a refused connection reported for an endpoint already ejected changes nothing', () => {
  const [a, x, y] = eps(3);
  const { b, clock, log } = rig([a!, x!, y!]);
  b.outcome(a!, Outcome.ConnectFailure);
  clock.t = 500;
  b.outcome(a!, Outcome.ConnectFailure);
  b.outcome(a!, Outcome.Failure);
  assert.equal(log.ejected.length, 1);
  assert.equal(a!.health!.untilMs, 1_000, 'the ejection is not extended');
});

test('accrual off: neither failures nor refused connections eject', () => {
  const set = eps(3);
  const { b, log } = rig(set, { accrual: { ...DEFAULT_FAILURE_ACCRUAL, mode: 'off' } });
  for (const e of set) fail(b, e, 100);
  for (const e of set) b.outcome(e, Outcome.ConnectFailure);
  assert.deepEqual(log.ejected, []);
  assert.equal(b.readyCount, 3);
  assert.ok(set.every((e) => e.health === null));
});

test('success-rate mode ejects through the balancer too', () => {
  const [a, x] = eps(2);
  const accrual = { ...DEFAULT_FAILURE_ACCRUAL, mode: 'success-rate' as const, successRateMinRequests: 10, successRateWindow: 10 };
  const { b, log } = rig([a!, x!], { accrual });
  for (let i = 0; i < 10; i++) b.outcome(a!, i % 3 === 0 ? Outcome.Failure : Outcome.Success); // 4 of 10 fail: 0.6
  assert.deepEqual(log.ejected, [a]);
});

// ---------------------------------------------------------------------------------------------
// Reloads: health lives on the endpoints, balancers are rebuilt

test('a rebuilt balancer keeps an ejected endpoint out and counts it for the panic threshold', () => {
  const set = eps(4);
  const first = rig(set);
  fail(first.b, set[0]!, 7);
  const { b, clock, log } = rig(set);
  assert.equal(b.readyCount, 3);
  assert.equal(picks(b, 30).get(set[0]!), undefined);
  clock.t = 500;
  fail(b, set[1]!, 7);
  fail(b, set[2]!, 7);
  assert.deepEqual(log.ejected, [set[1]], 'one more makes 50 %');
  clock.t = 1_000;
  assert.equal(b.pick(), set[0], 'the new balancer probes it when the backoff ends');
  assert.equal(picks(b, 30).get(set[1]!), undefined, 'the one it ejected itself is still out until 1.5 s');
});

test('a rebuilt balancer does not send a second probe while the first is in flight', () => {
  const set = eps(3);
  const first = rig(set);
  fail(first.b, set[0]!, 7);
  first.clock.t = 1_000;
  assert.equal(first.b.pick(), set[0]);
  assert.equal(set[0]!.health!.probeInFlight, true);
  // A reload now: the probe is still out.
  const { b, clock } = rig(set);
  clock.t = 1_000;
  const got = picks(b, 20);
  assert.equal(got.get(set[0]!), undefined, `a second probe while one is in flight (${got.get(set[0]!)} picks)`);
});

test('an endpoint whose probe succeeded on the balancer a reload replaced comes back into the new one', () => {
  // A request keeps the cluster it started with, so the probe's verdict reaches the old balancer.
  // The engine's balancers share one HealthEpoch, so that each sees changes made through another.
  const set = eps(3);
  const epoch = new HealthEpoch();
  const old = rig(set, { epoch });
  fail(old.b, set[0]!, 7);
  old.clock.t = 1_000;
  assert.equal(old.b.pick(), set[0]);
  const { b, clock } = rig(set, { epoch });
  clock.t = 1_000;
  b.pick();
  b.pick();
  old.b.outcome(set[0]!, Outcome.Success);
  assert.equal(set[0]!.health!.state, Health.Ready);
  clock.t = 2_000;
  const got = picks(b, 30);
  assert.ok((got.get(set[0]!) ?? 0) > 0, 'the restored endpoint is in rotation again');
  assert.equal(b.readyCount, 3);
});

// ---------------------------------------------------------------------------------------------
// Zone locality

test('zone locality is off without a proxy zone, when disabled, or when no endpoint is in the proxy zone', () => {
  const set = [ep('a'), ep('b'), ep('c')];
  assert.equal(rig(set).b.spillZones, null);
  assert.equal(rig(set, { zone: 'a', zoneLocality: { ...DEFAULT_ZONE_LOCALITY, enabled: false } }).b.spillZones, null);
  const elsewhere = rig(set, { zone: 'z' });
  assert.equal(elsewhere.b.spillZones, null);
  assert.equal(picks(elsewhere.b, 30).size, 3, 'all zones are used');
  assert.equal(picks(rig(set).b, 30).size, 3);
});

test('with the proxy zone set and an endpoint in it, an idle service sends everything to the local zone', () => {
  const [a1, a2, b1, c1] = [ep('a'), ep('a'), ep('b'), ep('c')];
  const { b, clock } = rig([b1, a1, c1, a2], { zone: 'a' });
  const seen = new Map<Endpoint, number>();
  for (let i = 0; i < 1_000; i++) {
    clock.t = i;
    const e = b.pick()!;
    seen.set(e, (seen.get(e) ?? 0) + 1);
  }
  assert.deepEqual([seen.get(a1), seen.get(a2), seen.size], [500, 500, 2]);
  assert.deepEqual(b.spillZones, []);
});

test('an overloaded local zone spills into the next zone by name, skipping a zone whose endpoints are ejected', () => {
  const [a1, b1, c1, d1] = [ep('a'), ep('b'), ep('c'), ep('d')];
  const { b, clock } = rig([a1, b1, c1, d1], { zone: 'a' });
  fail(b, b1, 7); // zone b has no ready endpoint left
  a1.inFlight = 3; // 3.0 at home, 1.5 over a1 and c1: one zone joins
  const seen = new Set<Endpoint>();
  for (let t = 0; t < 200; t++) {
    clock.t = t;
    seen.add(b.pick()!);
  }
  assert.deepEqual(b.spillZones, ['c']);
  assert.ok(seen.has(c1));
  assert.ok(!seen.has(b1), 'the ejected zone is never used');
  assert.ok(!seen.has(d1), 'one zone at a time');
  assert.ok(Math.abs(b.zoneLoad - 1.5) < 1e-9, `${b.zoneLoad}`);
});

test('when every local endpoint is ejected, all other zones share the traffic', () => {
  const [a1, b1, c1, c2] = [ep('a'), ep('b'), ep('c'), ep('c')];
  const { b, clock } = rig([a1, b1, c1, c2], { zone: 'a' });
  fail(b, a1, 7);
  const seen = new Map<Endpoint, number>();
  for (let t = 0; t < 300; t++) {
    clock.t = t;
    const e = b.pick()!;
    seen.set(e, (seen.get(e) ?? 0) + 1);
  }
  assert.deepEqual([seen.get(a1), seen.get(b1), seen.get(c1), seen.get(c2)], [undefined, 100, 100, 100]);
  assert.deepEqual(b.spillZones, ['b', 'c']);
  // It comes back after its probe and takes all the traffic again.
  clock.t = 1_000;
  assert.equal(b.pick(), a1);
  b.outcome(a1, Outcome.Success);
  for (let t = 1_001; t < 1_100; t++) {
    clock.t = t;
    assert.equal(b.pick(), a1);
  }
});

// ---------------------------------------------------------------------------------------------
// Latency feedback and the failure penalty

test('observe feeds the picker with the clock time; not for a lone endpoint', () => {
  const seen: [Endpoint, number, number][] = [];
  const picker: Picker = { pick: (c) => c[0]!, observe: (e, rtt, now) => seen.push([e, rtt, now]) };
  const [a, x] = eps(2);
  const { b, clock } = rig([a!, x!], { picker });
  clock.t = 42;
  b.observe(a!, 7);
  assert.deepEqual(seen, [[a, 7, 42]]);
  const lone = ep();
  rig([lone], { picker }).b.observe(lone, 9);
  assert.equal(seen.length, 1);
});

test('the default penalty applies to 429 and 503 only, 1 s without Retry-After', () => {
  const { b } = rig(eps(2));
  for (const s of [429, 503]) {
    assert.equal(b.penalizes(s), true);
    assert.equal(b.penaltyMs(s, -1), 1_000);
  }
  for (const s of [200, 404, 500, 502, 504]) {
    assert.equal(b.penalizes(s), false);
    assert.equal(b.penaltyMs(s, 5), 0);
  }
});

test('a Retry-After is the penalty, capped at maxLatencyMs', () => {
  const { b } = rig(eps(2));
  assert.equal(b.penaltyMs(503, 5), 5_000);
  assert.equal(b.penaltyMs(429, 2.5), 2_500);
  assert.equal(b.penaltyMs(503, 30), 30_000);
  assert.equal(b.penaltyMs(503, 3_600), 30_000);
});

test('a disabled penalty charges nothing', () => {
  const { b } = rig(eps(2), { penalty: { ...DEFAULT_FAILURE_PENALTY, enabled: false } });
  assert.equal(b.penalizes(503), false);
  assert.equal(b.penaltyMs(503, 5), 0);
  assert.equal(b.penaltyMs(429, -1), 0);
});

test('the penalty makes P2C avoid an endpoint that sheds fast', () => {
  const [a, x] = eps(2);
  const picker = new P2cPeakEwmaPicker({ rng: uniform(3) });
  const { b, clock } = rig([a!, x!], { picker });
  clock.t = 100_000;
  b.observe(x!, 20);
  // a answers 503 in 1 ms, with Retry-After: 2.
  b.observe(a!, Math.max(1, b.penaltyMs(503, 2)));
  assert.equal(picks(b, 50).get(x!), 50);
});

// ---------------------------------------------------------------------------------------------
// The pickers over changing candidate arrays

test('LeastRequestPicker takes the one with fewer in flight of two distinct candidates; ties go to the first drawn', () => {
  const [a, c, d] = eps(3);
  const set = [a!, c!, d!];
  // i = floor(0 x 3) = 0, j = floor(0 x 2) = 0 -> bumped to 1: a against c.
  assert.equal(new LeastRequestPicker(scripted(0, 0)).pick(set), a, 'tie: the first');
  c!.inFlight = 0;
  a!.inFlight = 1;
  assert.equal(new LeastRequestPicker(scripted(0, 0)).pick(set), c);
  // i = 2, j = floor(0.99 x 2) = 1: d against c.
  d!.inFlight = 5;
  assert.equal(new LeastRequestPicker(scripted(0.99, 0.99)).pick(set), c);
});

test('LeastRequestPicker never picks the unique busiest candidate, and follows the array it is given', () => {
  const all = eps(6);
  const p = new LeastRequestPicker(uniform(7));
  all.forEach((e, i) => (e.inFlight = i));
  const sets = [all, all.slice(0, 4), all.slice(2), [all[5]!, all[0]!], all.slice(1, 2)];
  for (const set of sets) {
    const busiest = set.reduce((m, e) => (e.inFlight > m.inFlight ? e : m));
    const counts = new Map<Endpoint, number>();
    for (let i = 0; i < 2_000; i++) {
      const e = p.pick(set);
      assert.ok(set.includes(e), 'only from the candidates given');
      counts.set(e, (counts.get(e) ?? 0) + 1);
    }
    if (set.length > 1) assert.equal(counts.get(busiest), undefined, `set of ${set.length}`);
    // The idlest wins whenever it is drawn, i.e. 2 / n of the time.
    const idlest = set.reduce((m, e) => (e.inFlight < m.inFlight ? e : m));
    const share = counts.get(idlest)! / 2_000;
    assert.ok(Math.abs(share - Math.min(1, 2 / set.length)) < 0.05, `share of the idlest ${share} in a set of ${set.length}`);
  }
});

test('RoundRobinPicker rotates over a candidate array and starts over when a new array comes', () => {
  const [a, c, d] = eps(3);
  const p = new RoundRobinPicker();
  const abc = [a!, c!, d!];
  assert.deepEqual([p.pick(abc), p.pick(abc), p.pick(abc), p.pick(abc)], [a, c, d, a]);
  const ad = [a!, d!];
  assert.deepEqual([p.pick(ad), p.pick(ad), p.pick(ad)], [a, d, a]);
  const single = [c!];
  assert.deepEqual([p.pick(single), p.pick(single)], [c, c]);
});

test('RoundRobinPicker follows the weights of the current candidates', () => {
  const heavy = new Endpoint('10.0.0.2', 1, '', 5, DEFAULT_POOL_SETTINGS);
  const [b1, c1] = eps(2);
  const p = new RoundRobinPicker();
  const all = [heavy, b1!, c1!];
  const count = (set: Endpoint[], n: number): number[] => {
    const m = new Map<Endpoint, number>();
    for (let i = 0; i < n; i++) {
      const e = p.pick(set);
      m.set(e, (m.get(e) ?? 0) + 1);
    }
    return set.map((e) => m.get(e) ?? 0);
  };
  assert.deepEqual(count(all, 700), [500, 100, 100]);
  assert.deepEqual(count([heavy, c1!], 600), [500, 100]);
});

test('the balancer hands the picker a new array when the ready set changes, so round-robin skips the ejected', () => {
  const set = eps(4);
  const { b, clock } = rig(set);
  assert.deepEqual([b.pick(), b.pick()], [set[0], set[1]]);
  fail(b, set[2]!, 7);
  const round = (n: number): Set<Endpoint | null> => new Set(Array.from({ length: n }, () => b.pick()));
  for (let i = 0; i < 5; i++) assert.deepEqual(round(3), new Set([set[0], set[1], set[3]]), 'each of the three once per round');
  clock.t = 1_000;
  assert.equal(b.pick(), set[2]);
  b.outcome(set[2]!, Outcome.Success);
  for (let i = 0; i < 5; i++) assert.deepEqual(round(4), new Set(set), 'all four again');
});

test('EndpointHealth state left by another balancer is honoured: a ready one with a failure run continues it', () => {
  const [a, x] = eps(2);
  a!.health = new EndpointHealth();
  a!.health.consecutive = 6;
  const { b, log } = rig([a!, x!]);
  b.outcome(a!, Outcome.Failure);
  assert.deepEqual(log.ejected, [a]);
});
