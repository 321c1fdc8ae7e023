// Unit tests of the latency histogram's Prometheus buckets (Linkerd's response_latency_ms layout).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LATENCY_BUCKETS_MS, LatencyHistogram, MergedLatency } from '../../../../engine/metrics/latency';

const INF = LATENCY_BUCKETS_MS.length;
const bucketOf = (le: number): number => {
  const i = LATENCY_BUCKETS_MS.indexOf(le);
  assert.notEqual(i, -1, `no bucket le=${le}`);
  return i;
};

function countsOf(values: number[]): number[] {
  const h = new LatencyHistogram();
  for (const v of values) h.recordMs(v);
  return h.bucketCounts();
}

function onlyIn(values: number[], index: number): void {
  for (const v of values) {
    const c = countsOf([v]);
    const want = new Array<number>(INF + 1).fill(0);
    want[index] = 1;
    assert.deepEqual(c, want, `${v} ms should be in bucket ${index === INF ? '+Inf' : `le=${LATENCY_BUCKETS_MS[index]}`}`);
  }
}

test('the bucket bounds are increasing and there is a +Inf slot', () => {
  for (let i = 1; i < LATENCY_BUCKETS_MS.length; i++) assert.ok(LATENCY_BUCKETS_MS[i] > LATENCY_BUCKETS_MS[i - 1]);
  assert.equal(new LatencyHistogram().bucketCounts().length, LATENCY_BUCKETS_MS.length + 1);
  assert.deepEqual(new LatencyHistogram().bucketCounts(), new Array<number>(INF + 1).fill(0));
});

test('a value exactly on a bound belongs to that bound (le is inclusive)', () => {
  for (let i = 0; i < LATENCY_BUCKETS_MS.length; i++) onlyIn([LATENCY_BUCKETS_MS[i]], i);
  onlyIn([1], bucketOf(1));
  onlyIn([1000], bucketOf(1000));
  onlyIn([50000], bucketOf(50000));
});

test('values just above a bound go to the next bucket', () => {
  onlyIn([1.001, 1.5, 2], bucketOf(2));
  onlyIn([5.001, 5.02, 5.1, 10], bucketOf(10));
  onlyIn([100.4, 150, 200], bucketOf(200));
  onlyIn([1000.5, 1005, 1999], bucketOf(2000));
  onlyIn([10050, 20000], bucketOf(20000));
});

test('values above the last bound go to +Inf, including huge ones', () => {
  onlyIn([50000.001, 50001, 50200, 60000, 3_600_000, 1e12, Infinity], INF);
});

test('tiny, zero and negative values go to the first bucket', () => {
  onlyIn([0, 0.0001, 0.5, 0.999, -3], 0);
});

test('counts sum to the number recorded, and sum and count are kept', () => {
  const values = [0.2, 1, 1, 3.5, 7, 7, 7, 45, 45.5, 99, 250, 999, 4500, 12000, 49999, 51000, 90000];
  const h = new LatencyHistogram();
  for (const v of values) h.recordMs(v);
  const c = h.bucketCounts();
  assert.equal(c.reduce((a, b) => a + b, 0), values.length);
  assert.equal(h.count, values.length);
  assert.equal(h.sumUs, values.reduce((a, v) => a + Math.round(v * 1000), 0));
  assert.equal(c[bucketOf(1)], 3);
  assert.equal(c[bucketOf(4)], 1);
  assert.equal(c[bucketOf(10)], 3);
  assert.equal(c[bucketOf(50)], 2);
  assert.equal(c[bucketOf(100)], 1);
  assert.equal(c[bucketOf(300)], 1);
  assert.equal(c[bucketOf(1000)], 1);
  assert.equal(c[bucketOf(5000)], 1);
  assert.equal(c[bucketOf(20000)], 1);
  assert.equal(c[bucketOf(50000)], 1);
  assert.equal(c[INF], 2);
});

test('bucketCounts returns a copy', () => {
  const h = new LatencyHistogram();
  h.recordMs(3);
  const a = h.bucketCounts();
  a[0] = 99;
  assert.equal(h.bucketCounts()[0], 0);
  assert.equal(h.bucketCounts()[bucketOf(3)], 1);
});

test('percentiles stay within the histogram precision', () => {
  const h = new LatencyHistogram();
  for (let i = 1; i <= 1000; i++) h.recordMs(i);
  assert.ok(Math.abs(h.percentileMs(50) - 500) <= 5, String(h.percentileMs(50)));
  assert.ok(Math.abs(h.percentileMs(99) - 990) <= 10, String(h.percentileMs(99)));
});

test('exported distributions merge into exact percentiles of the whole', () => {
  const a = new LatencyHistogram();
  const b = new LatencyHistogram();
  // Worker a saw 900 fast responses (1 ms), worker b 100 slow ones (200 ms).
  for (let i = 0; i < 900; i++) a.recordMs(1);
  for (let i = 0; i < 100; i++) b.recordMs(200);
  const m = new MergedLatency();
  m.add(a.exportPairs());
  m.add(b.exportPairs());
  assert.ok(Math.abs(m.percentileMs(50) - 1) < 0.02, `p50 ${m.percentileMs(50)}`);
  assert.ok(Math.abs(m.percentileMs(90) - 1) < 0.02, `p90 ${m.percentileMs(90)}`);
  assert.ok(Math.abs(m.percentileMs(95) - 200) < 2.5, `p95 ${m.percentileMs(95)}`);
  assert.equal(new MergedLatency().percentileMs(99), 0);
});
