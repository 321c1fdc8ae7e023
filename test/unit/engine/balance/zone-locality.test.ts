// HAZL zone locality with a fake clock: watermarks 2.0 / 0.8, the load averaged over loadWindowMs,
// the dwell time between changes, the order in which zones join, and zones without ready endpoints.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { ZoneLocality } from '../../../../engine/balance/zone-locality';
import { DEFAULT_POOL_SETTINGS, DEFAULT_ZONE_LOCALITY } from '../../../../engine/config/snapshot';
import { Endpoint } from '../../../../engine/pool/endpoint';

const S = DEFAULT_ZONE_LOCALITY;
const WINDOW = S.loadWindowMs;

let nextPort = 1;
const ep = (zone: string): Endpoint => new Endpoint('10.0.0.1', nextPort++, zone, 1, DEFAULT_POOL_SETTINGS);

const zonesOf = (set: readonly Endpoint[]): string[] => [...new Set(set.map((e) => e.zone))].sort();

/**
 * Calls candidates() every millisecond over [from, to) and returns the first time at which the
 * number of zones in use differs from `spill` (or -1 when it never does).
 */
function firstChange(z: ZoneLocality, from: number, to: number, spill = z.spill): number {
  for (let t = from; t < to; t++) {
    z.candidates(t);
    if (z.spill !== spill) return t;
  }
  return -1;
}

test('the defaults: watermarks 2.0 and 0.8 over a 250 ms window', () => {
  assert.equal(S.enabled, true);
  assert.equal(S.highLoad, 2.0);
  assert.equal(S.lowLoad, 0.8);
  assert.equal(S.loadWindowMs, 250);
});

test('traffic stays in the local zone while the load is at or below the high watermark', () => {
  const [a1, a2, b1] = [ep('a'), ep('a'), ep('b')];
  const z = new ZoneLocality('a', S);
  z.setReady([b1, a1, a2]);
  a1.inFlight = 2;
  a2.inFlight = 2; // exactly 2.0 per endpoint: not above
  for (let t = 0; t < 10_000; t += 5) {
    const c = z.candidates(t);
    assert.deepEqual(c, [a1, a2], `at ${t} ms`);
  }
  assert.equal(z.spill, 0);
  assert.deepEqual(z.activeZones, []);
  assert.ok(Math.abs(z.averageLoad - 2) < 1e-9);
});

test('the load is an exponential average over loadWindowMs of requests in flight per ready endpoint', () => {
  const [a1, a2, b1] = [ep('a'), ep('a'), ep('b')];
  const z = new ZoneLocality('a', S);
  z.setReady([a1, a2, b1]);
  z.candidates(0);
  assert.equal(z.averageLoad, 0);
  a1.inFlight = 3;
  a2.inFlight = 1; // 2 per endpoint
  z.candidates(100);
  assert.ok(Math.abs(z.averageLoad - 2 * (1 - Math.exp(-100 / WINDOW))) < 1e-9, `${z.averageLoad}`);
  z.candidates(200);
  assert.ok(Math.abs(z.averageLoad - 2 * (1 - Math.exp(-200 / WINDOW))) < 1e-9, `${z.averageLoad}`);
});

test('a brief spike does not spill; a sustained overload does, after about 250 ms x ln 2', () => {
  const [a1, b1] = [ep('a'), ep('b')];
  const z = new ZoneLocality('a', S);
  z.setReady([a1, b1]);
  assert.equal(firstChange(z, 0, 1_000), -1, 'idle');
  // 100 ms at 4 in flight averages to 4 x (1 - e^-0.4) = 1.3: under the watermark.
  a1.inFlight = 4;
  assert.equal(firstChange(z, 1_000, 1_100), -1, 'spike');
  a1.inFlight = 0;
  assert.equal(firstChange(z, 1_100, 3_000), -1, 'after the spike');
  a1.inFlight = 4;
  const t = firstChange(z, 3_000, 5_000);
  assert.notEqual(t, -1, 'a sustained overload spills');
  // 4 x (1 - e^(-dt/250)) > 2 once dt > 173 ms (the sampling runs every 250/16 ms).
  assert.ok(t - 3_000 >= 155 && t - 3_000 <= 195, `spilled ${t - 3_000} ms after the load rose`);
  assert.equal(z.spill, 1);
  assert.deepEqual(z.candidates(t), [a1, b1]);
  assert.deepEqual(z.activeZones, ['b']);
});

test('when a zone joins, the averaged load is spread over the larger set at once', () => {
  const [a1, b1] = [ep('a'), ep('b')];
  const z = new ZoneLocality('a', S);
  z.setReady([a1, b1]);
  z.candidates(0);
  a1.inFlight = 4;
  const t = firstChange(z, 1, 2_000);
  assert.notEqual(t, -1);
  // It spilled on the first sample above 2.0; the same requests over two endpoints are just over 1.0.
  assert.ok(z.averageLoad > 1 && z.averageLoad < 1.1, `${z.averageLoad}`);
});

test('hysteresis: between the watermarks the spill stays; under 0.8 the added zone leaves, without flapping back', () => {
  const [a1, b1] = [ep('a'), ep('b')];
  const z = new ZoneLocality('a', S);
  z.setReady([a1, b1]);
  z.candidates(0);
  a1.inFlight = 6;
  const spilled = firstChange(z, 1, 2_000);
  assert.notEqual(spilled, -1);
  // 3 in flight over the two endpoints in use: 1.5, between 0.8 and 2.0.
  a1.inFlight = 2;
  b1.inFlight = 1;
  assert.equal(firstChange(z, spilled + 1, spilled + 10_000), -1, 'no change between the watermarks');
  assert.ok(Math.abs(z.averageLoad - 1.5) < 1e-6);
  // 1 in flight over two: 0.5 < 0.8, so b leaves once the average has come down (1.5 -> 0.8 takes ~300 ms).
  a1.inFlight = 1;
  b1.inFlight = 0;
  const from = spilled + 10_000;
  const back = firstChange(z, from, from + 2_000);
  assert.notEqual(back, -1, 'the spill ends');
  assert.ok(back - from >= 280 && back - from <= 330, `returned after ${back - from} ms`);
  assert.equal(z.spill, 0);
  assert.deepEqual(z.candidates(back), [a1]);
  // Local only, the same single request is a load of 1.0: between the watermarks, so it stays local.
  assert.equal(firstChange(z, back + 1, back + 10_000), -1, 'no flapping');
  assert.ok(Math.abs(z.averageLoad - 1) < 1e-6);
});

test('two changes are at least loadWindowMs apart, however fast the load rises again', () => {
  const [a1, b1, c1] = [ep('a'), ep('b'), ep('c')];
  const z = new ZoneLocality('a', S);
  z.setReady([a1, b1, c1]);
  z.candidates(0);
  a1.inFlight = 3; // over a1 and b1: 1.5, so one zone is enough
  const first = firstChange(z, 1, 2_000);
  assert.notEqual(first, -1);
  assert.deepEqual(z.activeZones, ['b']);
  // The load jumps: the average is above 2.0 again within a few samples, but c waits for the dwell time.
  a1.inFlight = 20;
  b1.inFlight = 20;
  const second = firstChange(z, first + 1, first + 2_000);
  assert.ok(second - first >= WINDOW, `changes ${second - first} ms apart`);
  assert.ok(second - first <= WINDOW + 20, `the next change follows the dwell time (${second - first} ms)`);
  assert.deepEqual(z.activeZones, ['b', 'c']);
  // Nothing more to add: it stays at all zones.
  assert.equal(firstChange(z, second + 1, second + 5_000), -1);
});

test('the dwell time also holds back a return to the local zone right after a spill', () => {
  const [a1, b1] = [ep('a'), ep('b')];
  const z = new ZoneLocality('a', S);
  z.setReady([a1, b1]);
  z.candidates(0);
  a1.inFlight = 100;
  const spilled = firstChange(z, 1, 1_000);
  assert.notEqual(spilled, -1);
  // The load collapses at once; the average falls under 0.8 quickly, but not the dwell time.
  a1.inFlight = 0;
  const back = firstChange(z, spilled + 1, spilled + 2_000);
  assert.ok(back - spilled >= WINDOW, `returned ${back - spilled} ms after spilling`);
});

test('a surge adds as many zones as the load needs in one change, in name order', () => {
  const local = ep('m');
  const [z1, b1, k1] = [ep('zulu'), ep('bravo'), ep('kilo')];
  const z = new ZoneLocality('m', S);
  z.setReady([z1, b1, local, k1]);
  z.candidates(0);
  // One sample 16 ms later: 80 x (1 - e^(-16/250)) = 4.96 per endpoint over m alone, 2.48 over
  // m + bravo, 1.65 over m + bravo + kilo: two zones join at once.
  local.inFlight = 80;
  const c = z.candidates(16);
  assert.deepEqual(z.activeZones, ['bravo', 'kilo']);
  assert.deepEqual(zonesOf(c), ['bravo', 'kilo', 'm']);
  assert.ok(Math.abs(z.averageLoad - (80 * (1 - Math.exp(-16 / WINDOW))) / 3) < 1e-9, `${z.averageLoad}`);
  // More load: zulu, last by name, joins after the dwell time.
  local.inFlight = b1.inFlight = k1.inFlight = 40;
  const t = firstChange(z, 17, 2_000);
  assert.ok(t >= 16 + WINDOW, `${t}`);
  assert.deepEqual(z.activeZones, ['bravo', 'kilo', 'zulu']);
  assert.equal(z.candidates(t).length, 4);
});

test('a bigger surge takes every zone at once', () => {
  const [a1, b1, c1, d1] = [ep('a'), ep('b'), ep('c'), ep('d')];
  const z = new ZoneLocality('a', S);
  z.setReady([d1, c1, b1, a1]);
  z.candidates(0);
  a1.inFlight = 200; // 12.4 after one 16 ms sample: above 2.0 even over the four endpoints
  assert.equal(z.candidates(16).length, 4);
  assert.deepEqual(z.activeZones, ['b', 'c', 'd']);
});

test('after a calm, traffic returns home in one change, not a zone at a time', () => {
  const [a1, b1, c1, d1] = [ep('a'), ep('b'), ep('c'), ep('d')];
  const z = new ZoneLocality('a', S);
  z.setReady([a1, b1, c1, d1]);
  z.candidates(0);
  a1.inFlight = 200;
  z.candidates(16);
  assert.equal(z.spill, 3);
  // The burst is over and no request came for a second: the next one finds the average near 0.
  a1.inFlight = 0;
  assert.deepEqual(z.candidates(1_016), [a1]);
  assert.equal(z.spill, 0);
});

test('while the load falls gradually, zones leave one change at a time, a window apart', () => {
  const [a1, b1, c1, d1] = [ep('a'), ep('b'), ep('c'), ep('d')];
  const z = new ZoneLocality('a', S);
  z.setReady([a1, b1, c1, d1]);
  z.candidates(0);
  a1.inFlight = 200;
  z.candidates(16);
  a1.inFlight = 0;
  const changes: [number, number][] = [];
  let spill = z.spill;
  for (let t = 17; t < 3_000; t++) {
    z.candidates(t);
    if (z.spill !== spill) changes.push([t, (spill = z.spill)]);
  }
  assert.equal(spill, 0, 'home in the end');
  assert.ok(changes.length >= 2, JSON.stringify(changes));
  for (let i = 1; i < changes.length; i++) assert.ok(changes[i]![0] - changes[i - 1]![0] >= WINDOW, JSON.stringify(changes));
  for (let i = 1; i < changes.length; i++) assert.ok(changes[i]![1] < changes[i - 1]![1], 'only ever fewer zones');
});

test('the local zone is not left to go back to it when that would put it over the high watermark', () => {
  const local = ep('a');
  const remote = [ep('b'), ep('b'), ep('b'), ep('b')];
  const z = new ZoneLocality('a', S);
  z.setReady([local, ...remote]);
  z.candidates(0);
  local.inFlight = 10;
  const spilled = firstChange(z, 1, 2_000);
  assert.notEqual(spilled, -1);
  // 3 in flight over 5 endpoints is 0.6, under the low watermark; but 3 on the local one alone is 3.0.
  local.inFlight = 1;
  for (const e of remote) e.inFlight = 0;
  remote[0]!.inFlight = 2;
  assert.equal(firstChange(z, spilled + 1, spilled + 10_000), -1, 'it stays spilled');
  assert.ok(z.averageLoad < S.lowLoad, `${z.averageLoad}`);
  // Down to 1 in flight: 0.2 here, 1.0 at home: it returns.
  remote[0]!.inFlight = 0;
  assert.notEqual(firstChange(z, spilled + 10_000, spilled + 12_000), -1);
  assert.equal(z.spill, 0);
});

test('a zone with no ready endpoint is skipped: the next zone in name order joins instead', () => {
  const [a1, b1, c1] = [ep('a'), ep('b'), ep('c')];
  const z = new ZoneLocality('a', S);
  // b's only endpoint is ejected: not in the ready set.
  z.setReady([a1, c1]);
  z.candidates(0);
  a1.inFlight = 10;
  b1.inFlight = 0; // the idlest endpoint, but not ready
  let t = firstChange(z, 1, 2_000);
  assert.notEqual(t, -1);
  assert.deepEqual(z.activeZones, ['c']);
  assert.deepEqual(z.candidates(t), [a1, c1]);
  assert.equal(firstChange(z, t + 1, t + 2_000), -1, 'no further zone to add');
  t += 2_000;
  for (let i = 0; i < 100; i++) assert.ok(!z.candidates(t + i).includes(b1));
});

test('when the spilled-into zone loses its last ready endpoint, it is no longer used', () => {
  const [a1, b1] = [ep('a'), ep('b')];
  const z = new ZoneLocality('a', S);
  z.setReady([a1, b1]);
  z.candidates(0);
  a1.inFlight = 10;
  const t = firstChange(z, 1, 2_000);
  assert.equal(z.spill, 1);
  z.setReady([a1]);
  assert.deepEqual(z.candidates(t + 1), [a1]);
  assert.equal(z.spill, 0);
  assert.deepEqual(z.activeZones, []);
});

test('with no ready endpoint in the local zone, every other zone is used, whatever the load', () => {
  const [a1, b1, b2, c1] = [ep('a'), ep('b'), ep('b'), ep('c')];
  const z = new ZoneLocality('a', S);
  z.setReady([b1, c1, b2]);
  for (let t = 0; t < 2_000; t += 10) {
    const c = z.candidates(t);
    assert.equal(c.length, 3);
    assert.deepEqual(zonesOf(c), ['b', 'c']);
    assert.ok(!c.includes(a1));
  }
  assert.deepEqual(z.activeZones, ['b', 'c']);
  // The local zone comes back, idle: traffic returns to it.
  z.setReady([a1, b1, c1, b2]);
  assert.deepEqual(z.candidates(2_000), [a1]);
});

test('a service whose endpoints are all local never samples or spills', () => {
  const [a1, a2] = [ep('a'), ep('a')];
  const z = new ZoneLocality('a', S);
  z.setReady([a1, a2]);
  a1.inFlight = a2.inFlight = 100;
  for (let t = 0; t < 2_000; t += 10) assert.deepEqual(z.candidates(t), [a1, a2]);
  assert.equal(z.spill, 0);
});

test('the candidate array is the same object until the spill changes (pickers key on it)', () => {
  const [a1, b1] = [ep('a'), ep('b')];
  const z = new ZoneLocality('a', S);
  z.setReady([a1, b1]);
  const first = z.candidates(0);
  for (let t = 1; t < 500; t++) assert.equal(z.candidates(t), first);
  a1.inFlight = 10;
  let t = 500;
  let c = z.candidates(t);
  while (z.spill === 0 && t < 2_000) {
    assert.equal(c, first);
    c = z.candidates(++t);
  }
  const spilled = c;
  assert.notEqual(spilled, first);
  for (let i = 1; i < 100; i++) assert.equal(z.candidates(t + i), spilled);
});
