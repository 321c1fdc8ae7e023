// Failure accrual and the failure penalty through the real proxy: an endpoint that keeps failing is
// ejected after 7 failures in a row and comes back after a successful probe; an endpoint that sheds
// load with fast 503s gets little traffic from P2C (it counts as slow), unlike with round-robin.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { type FaultFleet, startFaultUpstreams } from '../../perf/reliability/fault-upstream';
import { TempConfig } from '../helpers/config-file';
import { count, runRequests } from '../helpers/load';
import { admin, eventually, metricSum, type ProxyProcess, startProxy } from '../helpers/proxy-process';

let fleet: FaultFleet;

before(async () => {
  fleet = await startFaultUpstreams([
    { name: 'sick', zone: '' },
    { name: 'ok1', zone: '' },
    { name: 'ok2', zone: '' },
  ]);
});

after(async () => {
  await fleet?.close();
});

async function proxyFor(service: string): Promise<{ p: ProxyProcess; cfg: TempConfig }> {
  const eps = fleet.upstreams.map((u) => `{ address: 127.0.0.1:${u.port} }`).join(', ');
  const cfg = new TempConfig(`
listeners: [{ name: out, address: 127.0.0.1:0, routes: [r] }]
services:
  - name: svc
    endpoints: [${eps}]
    retry: { maxRetries: 0 }
${service}
routes: [{ name: r, backendRefs: [{ name: svc }] }]
`);
  return { p: await startProxy(['--config', cfg.file, '--workers', '1']), cfg };
}

test('7 failures in a row eject an endpoint; a probe brings it back once it recovers', { timeout: 30_000 }, async () => {
  fleet.clearFaults();
  fleet.get('sick').setFaults({ status: 500, errorRate: 1 });
  const { p, cfg } = await proxyFor('    balancer: round-robin\n    failureAccrual: { minBackoffMs: 500, maxBackoffMs: 2000 }');
  try {
    const first = await runRequests(p.ports.out!, 60, { concurrency: 1 });
    // Round-robin sends every third request to it until the 7th failure in a row.
    assert.equal(count(first.statuses, 500), 7, JSON.stringify([...first.statuses]));
    const later = await runRequests(p.ports.out!, 60, { concurrency: 1 });
    assert.equal(count(later.statuses, 200) + count(later.statuses, 500), 60);
    // While ejected it gets nothing; each probe after the backoff (0.5-0.75 s, then doubling) is one request.
    assert.ok(count(later.byUpstream, 'sick') <= 2, `sick endpoint got ${count(later.byUpstream, 'sick')}`);
    let m = (await admin(p, '/metrics')).body;
    assert.ok(metricSum(m, 'balancer_ejections_total', { backend: 'svc' }) >= 1);
    assert.equal(metricSum(m, 'balancer_endpoints', { backend: 'svc', state: 'ejected' }), 1);

    fleet.get('sick').clearFaults();
    await eventually(
      async () => {
        await runRequests(p.ports.out!, 10, { concurrency: 1 });
        return metricSum((await admin(p, '/metrics')).body, 'balancer_restorations_total', { backend: 'svc' }) >= 1;
      },
      10_000,
      'the endpoint restored by a probe',
    );
    const back = await runRequests(p.ports.out!, 30, { concurrency: 1 });
    assert.equal(count(back.byUpstream, 'sick'), 10, 'round-robin again: every third request');
    m = (await admin(p, '/metrics')).body;
    assert.equal(metricSum(m, 'balancer_endpoints', { backend: 'svc', state: 'ejected' }), 0);
  } finally {
    await p.stop();
    cfg.remove();
  }
});

test('the panic threshold never ejects more than maxEjectionPercent of the endpoints', { timeout: 30_000 }, async () => {
  fleet.clearFaults();
  for (const u of fleet.upstreams) u.setFaults({ status: 500, errorRate: 1 });
  const { p, cfg } = await proxyFor('    balancer: round-robin\n    failureAccrual: { maxEjectionPercent: 34 }');
  try {
    const t = await runRequests(p.ports.out!, 90, { concurrency: 1 });
    assert.equal(count(t.statuses, 500), 90);
    const m = (await admin(p, '/metrics')).body;
    // floor(3 x 34%) = 1: two endpoints stay in rotation however badly they fail.
    assert.equal(metricSum(m, 'balancer_endpoints', { backend: 'svc', state: 'ejected' }), 1);
    assert.equal(metricSum(m, 'balancer_endpoints', { backend: 'svc', state: 'ready' }), 2);
  } finally {
    await p.stop();
    cfg.remove();
    fleet.clearFaults();
  }
});

test('an endpoint that sheds with fast 503s gets little traffic from P2C-EWMA, unlike round-robin', { timeout: 30_000 }, async () => {
  fleet.clearFaults();
  for (const u of fleet.upstreams) u.setFaults({ delayMs: 3 });
  fleet.get('sick').setFaults({ status: 503, errorRate: 1, retryAfter: '2', delayMs: 0 });
  const off = '    failureAccrual: { mode: off }';
  const p2c = await proxyFor(off);
  try {
    const t = await runRequests(p2c.p.ports.out!, 300, { concurrency: 2 });
    const shed = count(t.statuses, 503);
    assert.ok(shed < 15, `P2C sent ${shed} of 300 requests to the shedding endpoint`);
  } finally {
    await p2c.p.stop();
    p2c.cfg.remove();
  }
  const rr = await proxyFor(`${off}\n    balancer: round-robin`);
  try {
    const t = await runRequests(rr.p.ports.out!, 300, { concurrency: 2 });
    assert.equal(count(t.statuses, 503), 100, 'round-robin ignores it: a third of the requests');
  } finally {
    await rr.p.stop();
    rr.cfg.remove();
    fleet.clearFaults();
  }
});
