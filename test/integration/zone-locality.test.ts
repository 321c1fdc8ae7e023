// Zone-local routing (HAZL) through the real proxy, with real upstreams in three zones: traffic stays
// in the proxy's zone at nominal load, spills over while the local zone is overloaded and comes back,
// fails over when the local zone dies and returns when it recovers; zone traffic and cost are counted.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { type FaultFleet, startFaultUpstreams } from '../../perf/reliability/fault-upstream';
import { sleep } from '../helpers/admin-probe';
import { TempConfig } from '../helpers/config-file';
import { count, runRequests } from '../helpers/load';
import { admin, eventually, metricSum, type ProxyProcess, startProxy } from '../helpers/proxy-process';

let fleet: FaultFleet;
let cfg: TempConfig;
let proxy: ProxyProcess;

before(async () => {
  fleet = await startFaultUpstreams([
    { name: 'a1', zone: 'zone-a' },
    { name: 'a2', zone: 'zone-a' },
    { name: 'b1', zone: 'zone-b' },
    { name: 'b2', zone: 'zone-b' },
    { name: 'c1', zone: 'zone-c' },
    { name: 'c2', zone: 'zone-c' },
  ]);
  const eps = fleet.upstreams.map((u) => `      - { address: 127.0.0.1:${u.port}, zone: ${u.zone} }`).join('\n');
  cfg = new TempConfig(`
proxy: { zone: zone-a }
listeners:
  - { name: out, address: 127.0.0.1:0, routes: [r] }
services:
  - name: svc
    endpoints:
${eps}
    zoneLocality: { loadWindowMs: 100 }
routes:
  - { name: r, backendRefs: [{ name: svc }] }
`);
  proxy = await startProxy(['--config', cfg.file, '--workers', '1']);
});

after(async () => {
  await proxy?.stop();
  await fleet?.close();
  cfg?.remove();
});

test('at nominal load every request stays in the local zone', { timeout: 30_000 }, async () => {
  const t = await runRequests(proxy.ports.out!, 300, { concurrency: 2 });
  assert.equal(count(t.statuses, 200), 300, t.failures.join('; '));
  assert.equal(count(t.byZone, 'zone-a'), 300, `by zone: ${JSON.stringify([...t.byZone])}`);
  // Both local endpoints share the work.
  assert.ok(count(t.byUpstream, 'a1') > 50 && count(t.byUpstream, 'a2') > 50, JSON.stringify([...t.byUpstream]));
  const m = (await admin(proxy, '/metrics')).body;
  assert.ok(metricSum(m, 'zone_requests_total', { src_zone: 'zone-a', dst_zone: 'zone-a' }) >= 300);
  assert.equal(metricSum(m, 'zone_requests_total', { dst_zone: 'zone-b' }), 0);
  assert.equal(metricSum(m, 'balancer_zones_spilled', { backend: 'svc' }), 0);
});

test('an overloaded local zone spills to another zone, and traffic comes back when load drops', { timeout: 60_000 }, async () => {
  // Local endpoints slow down: at 12 concurrent requests each has ~6 in flight, above the 2.0 watermark.
  fleet.get('a1').setFaults({ delayMs: 150 });
  fleet.get('a2').setFaults({ delayMs: 150 });
  const before = (await admin(proxy, '/metrics')).body;
  const costBefore = metricSum(before, 'zone_cross_transfer_cost_usd_total');
  const loaded = await runRequests(proxy.ports.out!, 240, { concurrency: 12 });
  assert.equal(count(loaded.statuses, 200), 240, loaded.failures.join('; '));
  const away = 240 - count(loaded.byZone, 'zone-a');
  assert.ok(away > 60, `requests served outside zone-a under overload: ${away} (${JSON.stringify([...loaded.byZone])})`);
  const m = (await admin(proxy, '/metrics')).body;
  assert.ok(metricSum(m, 'zone_requests_total', { src_zone: 'zone-a', dst_zone: 'zone-b' }) > 0);
  // Cross-zone bytes have a price.
  assert.ok(metricSum(m, 'zone_cross_transfer_cost_usd_total') > costBefore);
  assert.ok(metricSum(m, 'zone_bytes_total', { dst_zone: 'zone-b', direction: 'response' }) > 0);

  // Load drops and the zone recovers: after the averaging window everything is local again.
  fleet.get('a1').clearFaults();
  fleet.get('a2').clearFaults();
  await sleep(300);
  await runRequests(proxy.ports.out!, 5, { concurrency: 1 });
  const calm = await runRequests(proxy.ports.out!, 200, { concurrency: 1 });
  assert.equal(count(calm.byZone, 'zone-a'), 200, `after the overload: ${JSON.stringify([...calm.byZone])}`);
});

test('a dead local zone fails over at once, and traffic returns after it recovers', { timeout: 60_000 }, async () => {
  await fleet.get('a1').down();
  await fleet.get('a2').down();
  try {
    const t = await runRequests(proxy.ports.out!, 300, { concurrency: 2 });
    // A refused connection takes its endpoint out at once and is retried on another (the default
    // retry policy covers connection failures): the client sees no error at all.
    const failed = 300 - count(t.statuses, 200);
    assert.equal(failed, 0, `failed during failover: ${failed} (${t.failures.join('; ')})`);
    assert.equal(count(t.byZone, 'zone-a'), 0);
    const m = (await admin(proxy, '/metrics')).body;
    assert.ok(metricSum(m, 'balancer_ejections_total', { backend: 'svc' }) >= 2);
    assert.ok(metricSum(m, 'retry_requests_total', { backend: 'svc' }) > 0);
  } finally {
    await fleet.get('a1').up();
    await fleet.get('a2').up();
  }
  // Ejections end after 1-1.5 s; a probe each brings the endpoints back, and HAZL returns to zone-a.
  await eventually(
    async () => {
      const t = await runRequests(proxy.ports.out!, 40, { concurrency: 1 });
      return count(t.byZone, 'zone-a') === 40;
    },
    8000,
    'traffic back in zone-a',
  );
  // Each endpoint comes back on its own probe, once its own backoff is over.
  await eventually(
    async () => {
      await runRequests(proxy.ports.out!, 10, { concurrency: 1 });
      return metricSum((await admin(proxy, '/metrics')).body, 'balancer_restorations_total', { backend: 'svc' }) >= 2;
    },
    8000,
    'both local endpoints restored',
  );
});

test('the one-line mode: --to HOST:PORT@ZONE and --zone keep traffic home; BOWLINE_ZONE works too', { timeout: 30_000 }, async () => {
  fleet.clearFaults();
  const to = fleet.upstreams.flatMap((u) => ['--to', `127.0.0.1:${u.port}@${u.zone}`]);
  const byFlag = await startProxy(['--listen', '127.0.0.1:0', ...to, '--zone', 'zone-b', '--workers', '1']);
  try {
    const t = await runRequests(byFlag.ports.proxy!, 100, { concurrency: 2 });
    assert.equal(count(t.byZone, 'zone-b'), 100, JSON.stringify([...t.byZone]));
  } finally {
    await byFlag.stop();
  }
  const byEnv = await startProxy(['--listen', '127.0.0.1:0', ...to, '--workers', '1'], { env: { BOWLINE_ZONE: 'zone-c' } });
  try {
    const t = await runRequests(byEnv.ports.proxy!, 100, { concurrency: 2 });
    assert.equal(count(t.byZone, 'zone-c'), 100, JSON.stringify([...t.byZone]));
  } finally {
    await byEnv.stop();
  }
});
