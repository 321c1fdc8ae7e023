// The Prometheus rendering of named counters and gauges merged across workers: one HELP/TYPE per
// family from the names table, counters summed, load gauges averaged, tiny costs kept exact.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import type { WorkerMetricsSnapshot } from '../../../engine';
import { MetricsRegistry } from '../../../engine/metrics/registry';
import { ZoneTraffic } from '../../../engine/metrics/zone-traffic';
import { renderMetrics } from '../../../workers/metrics-render';

const INFO = { configVersion: 'v1', reloads: { applied: 1, rejected: 0 }, workerRestarts: 0, startTimeSeconds: 1 };

function worker(id: number, fill: (m: MetricsRegistry) => void, load: number): WorkerMetricsSnapshot {
  const m = new MetricsRegistry();
  fill(m);
  return m.snapshot(id, 0.5, 0, 'v1', undefined, [
    { name: 'balancer_zone_load', labels: { backend: 'svc' }, value: load },
    { name: 'balancer_endpoints', labels: { backend: 'svc', state: 'ready' }, value: 3 },
  ]);
}

test('named counters are summed across workers, with their family described once', () => {
  const text = renderMetrics(
    [
      worker(0, (m) => (m.counter('retry_requests_total', { route: 'r', backend: '' }).value += 3), 1.0),
      worker(1, (m) => (m.counter('retry_requests_total', { route: 'r', backend: '' }).value += 4), 3.0),
    ],
    INFO,
  );
  assert.match(text, /^retry_requests_total\{route="r",backend=""\} 7$/m);
  assert.equal(text.match(/# TYPE retry_requests_total counter/g)?.length, 1);
  assert.match(text, /# HELP retry_requests_total Retries sent/);
  // Endpoint counts add up over workers; the zone load is an average.
  assert.match(text, /^balancer_endpoints\{backend="svc",state="ready"\} 6$/m);
  assert.match(text, /^balancer_zone_load\{backend="svc"\} 2$/m);
  assert.match(text, /# TYPE balancer_zone_load gauge/);
});

test('the cross-zone cost counts only bytes between two known, different zones, at full precision', () => {
  const text = renderMetrics(
    [
      worker(
        0,
        (m) => {
          new ZoneTraffic(m, 'a', 'b', 0.01).record(1000, 500); // 1500 bytes at 0.01 USD/GB
          new ZoneTraffic(m, 'a', 'a', 0.01).record(1e6, 1e6);
          new ZoneTraffic(m, '', 'b', 0.01).record(1e6, 1e6);
        },
        0,
      ),
    ],
    INFO,
  );
  assert.match(text, /^zone_cross_transfer_cost_usd_total\{src_zone="a",dst_zone="b"\} 1\.5e-8$/m);
  assert.doesNotMatch(text, /zone_cross_transfer_cost_usd_total\{src_zone="a",dst_zone="a"\}/);
  assert.doesNotMatch(text, /zone_cross_transfer_cost_usd_total\{src_zone="",/);
  assert.match(text, /^zone_bytes_total\{src_zone="a",dst_zone="b",direction="request"\} 1000$/m);
  assert.match(text, /^zone_bytes_total\{src_zone="a",dst_zone="b",direction="response"\} 500$/m);
});
