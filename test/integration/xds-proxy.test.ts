// Bowline's proxy fed by Bowline's control plane over ADS, both real processes: routes, clusters and
// endpoints change live (state of the world and delta) without a failed request; the proxy keeps
// serving when the control plane goes away, and catches up when it comes back.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type FaultFleet, startFaultUpstreams } from '../../perf/reliability/fault-upstream';
import { sleep } from '../helpers/admin-probe';
import { TempConfig } from '../helpers/config-file';
import { count, runRequests } from '../helpers/load';
import { startControl } from '../helpers/control-process';
import { eventually, type ProxyProcess, startProxy } from '../helpers/proxy-process';

let fleet: FaultFleet;
let mesh: TempConfig;

function meshYaml(o: { webEndpoints: string[]; apiRoute: boolean }): string {
  const ep = (names: string[]): string => names.map((n) => `{ address: 127.0.0.1:${fleet.get(n).port}, zone: ${fleet.get(n).zone} }`).join(', ');
  return `
listeners:
  - { name: out, address: 127.0.0.1:0, routes: [${o.apiRoute ? 'api, ' : ''}web] }
services:
  - { name: web, endpoints: [${ep(o.webEndpoints)}] }
  - { name: api, endpoints: [${ep(['api1'])}] }
routes:
${o.apiRoute ? '  - { name: api, matches: [{ path: { value: /api } }], backendRefs: [{ name: api }] }\n' : ''}  - { name: web, backendRefs: [{ name: web }] }
`;
}

function bootstrap(dir: string, port: number, delta: boolean, zone = 'zone-a'): string {
  const file = join(dir, `bootstrap-${delta ? 'delta' : 'sotw'}.yaml`);
  writeFileSync(
    file,
    `
node: { id: proxy-${delta ? 'delta' : 'sotw'}, cluster: test, locality: { zone: ${zone} } }
dynamic_resources:
  ads_config:
    api_type: ${delta ? 'DELTA_GRPC' : 'GRPC'}
    transport_api_version: V3
    grpc_services: [{ envoy_grpc: { cluster_name: xds } }]
  lds_config: { ads: {} }
  cds_config: { ads: {} }
static_resources:
  clusters:
    - name: xds
      type: STATIC
      connect_timeout: 1s
      load_assignment:
        cluster_name: xds
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${port} } } } }] }]
`,
  );
  return file;
}

before(async () => {
  fleet = await startFaultUpstreams([
    { name: 'web1', zone: 'zone-a' },
    { name: 'web2', zone: 'zone-a' },
    { name: 'web3', zone: 'zone-b' },
    { name: 'api1', zone: 'zone-a' },
  ]);
  mesh = new TempConfig(meshYaml({ webEndpoints: ['web1'], apiRoute: false }));
});

after(async () => {
  await fleet?.close();
  mesh?.remove();
});

for (const delta of [false, true]) {
  test(`${delta ? 'delta' : 'state-of-the-world'} ADS: the proxy serves the mesh and follows live changes without a failed request`, { timeout: 60_000 }, async () => {
    mesh.replace(meshYaml({ webEndpoints: ['web1'], apiRoute: false }));
    const cp = await startControl(mesh.file);
    let proxy: ProxyProcess | undefined;
    try {
      proxy = await startProxy(['--bootstrap', bootstrap(mesh.dir, cp.port, delta), '--workers', '2'], { timeoutMs: 20_000 });
      const port = proxy.ports.out!;
      const first = await runRequests(port, 20);
      assert.equal(count(first.statuses, 200), 20, first.failures.join('; '));
      assert.deepEqual([...first.byUpstream.keys()], ['web1']);

      // Load runs through every change below; none of its requests may fail.
      let running = true;
      let total = 0;
      const bad: string[] = [];
      const loop = (async () => {
        while (running) {
          const t = await runRequests(port, 10, { concurrency: 2 });
          total += 10;
          for (const [status, n] of t.statuses) if (status !== 200) bad.push(`${n}x ${status}`);
          if (t.errors > 0) bad.push(`${t.errors} errors`);
        }
      })();

      // EDS: endpoints added (one in another zone: HAZL keeps traffic home).
      mesh.replace(meshYaml({ webEndpoints: ['web1', 'web2', 'web3'], apiRoute: false }));
      await eventually(async () => (await runRequests(port, 20)).byUpstream.has('web2'), 10_000, 'web2 in rotation');
      // RDS/LDS: a new route to another service.
      mesh.replace(meshYaml({ webEndpoints: ['web1', 'web2', 'web3'], apiRoute: true }));
      await eventually(async () => count((await runRequests(port, 5, { path: '/api/x' })).byUpstream, 'api1') === 5, 10_000, 'the api route');
      // EDS: an endpoint removed.
      mesh.replace(meshYaml({ webEndpoints: ['web2'], apiRoute: true }));
      await eventually(async () => {
        const t = await runRequests(port, 20);
        return count(t.byUpstream, 'web2') === 20;
      }, 10_000, 'only web2');
      running = false;
      await loop;
      assert.deepEqual(bad, [], `failed requests during live changes (of ${total})`);
      assert.ok(total >= 20, `requests during the changes: ${total}`);
    } finally {
      await proxy?.stop();
      await cp.stop();
    }
  });
}

test('a control plane that goes away does not stop traffic; the proxy catches up when it is back', { timeout: 60_000 }, async () => {
  mesh.replace(meshYaml({ webEndpoints: ['web1'], apiRoute: false }));
  let cp = await startControl(mesh.file);
  const port0 = cp.port;
  const proxy = await startProxy(['--bootstrap', bootstrap(mesh.dir, port0, false), '--workers', '1'], { timeoutMs: 20_000 });
  try {
    const port = proxy.ports.out!;
    assert.equal(count((await runRequests(port, 10)).statuses, 200), 10);
    await cp.stop();
    await sleep(300);
    const during = await runRequests(port, 50, { concurrency: 2 });
    assert.equal(count(during.statuses, 200), 50, 'the config in force keeps serving');
    assert.match(proxy.stderr(), /xDS stream lost/);
    // Back on the same port, with a change made while it was away.
    mesh.replace(meshYaml({ webEndpoints: ['web2'], apiRoute: false }));
    cp = await startControl(mesh.file, port0);
    await eventually(async () => count((await runRequests(port, 10)).byUpstream, 'web2') === 10, 20_000, 'the change after reconnecting');
  } finally {
    await proxy.stop();
    await cp.stop();
  }
});
