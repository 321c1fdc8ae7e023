// A proxy fed by the control plane gets its workload certificate from it (both real processes):
// `bowline token` mints a token, `bowline control --ca-dir` issues, `bowline proxy --identity-token`
// is ready only once it holds a certificate, and shows the identity (never the key) in its dump.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TempConfig } from '../helpers/config-file';
import { type Control, startControl, writeBootstrap } from '../helpers/control-process';
import { admin, BOWLINE_BIN, eventually, startProxy } from '../helpers/proxy-process';

let mesh: TempConfig;
let cp: Control;

function bootstrap(port: number): string {
  return writeBootstrap(join(mesh.dir, 'bootstrap.yaml'), port, { zone: 'z1' });
}

before(async () => {
  mesh = new TempConfig(`
listeners: [{ name: out, address: 127.0.0.1:0, routes: [r] }]
services: [{ name: web, endpoints: [{ address: 127.0.0.1:9, zone: z1 }] }]
routes: [{ name: r, backendRefs: [{ name: web }] }]
`);
  writeFileSync(join(mesh.dir, 'token-secret'), Buffer.alloc(48, 3));
  cp = await startControl(mesh.file, 0, ['--ca-dir', join(mesh.dir, 'ca'), '--generate-ca', '--trust-domain', 'mesh.test', '--token-secret', join(mesh.dir, 'token-secret')]);
});

after(async () => {
  await cp?.stop();
  mesh?.remove();
});

function token(sa: string, secret = 'token-secret'): string {
  const f = join(mesh.dir, `${sa}-${secret}.token`);
  writeFileSync(f, execFileSync(process.execPath, [BOWLINE_BIN, 'token', '--secret', join(mesh.dir, secret), '--namespace', 'shop', '--service-account', sa]));
  return f;
}

test('the proxy becomes ready once it holds a certificate for its workload identity', { timeout: 30_000 }, async () => {
  assert.match(cp.out(), /issuing certificates for mesh\.test/);
  const p = await startProxy(['--bootstrap', bootstrap(cp.port), '--identity-token', token('web'), '--workers', '1'], { timeoutMs: 20_000 });
  try {
    await eventually(async () => (await admin(p, '/ready')).status === 200, 10_000, 'ready');
    const dump = JSON.parse((await admin(p, '/config_dump')).body) as { source: { identity: { spiffeId: string; validUntil: string } } };
    assert.equal(dump.source.identity.spiffeId, 'spiffe://mesh.test/ns/shop/sa/web');
    assert.ok(Date.parse(dump.source.identity.validUntil) > Date.now() + 23 * 3600 * 1000, 'a 24 h certificate');
    assert.doesNotMatch(JSON.stringify(dump), /PRIVATE KEY/);
    const m = await (await fetch(`http://127.0.0.1:${cp.adminPort}/metrics`)).text();
    assert.match(m, /^identity_certificates_issued_total [1-9]/m);
  } finally {
    await p.stop();
  }
});

test('with a token the control plane refuses, the proxy serves its config but never turns ready', { timeout: 30_000 }, async () => {
  writeFileSync(join(mesh.dir, 'wrong-secret'), Buffer.alloc(48, 4));
  const p = await startProxy(['--bootstrap', bootstrap(cp.port), '--identity-token', token('web', 'wrong-secret'), '--workers', '1'], { timeoutMs: 20_000 });
  try {
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await admin(p, '/ready')).status, 503);
    assert.match(p.stderr(), /identity certificate request failed/);
    const m = await (await fetch(`http://127.0.0.1:${cp.adminPort}/metrics`)).text();
    assert.match(m, /identity_certificates_refused_total\{reason="token"\} [1-9]/);
  } finally {
    await p.stop();
  }
});

test('over xDS: the proxy gets its certificate from the control plane, speaks mutual TLS to a meshed endpoint, and renews without losing a request', { timeout: 60_000 }, async () => {
  const { echoServer, close } = await import('../helpers/upstream');
  const { IdentityClient } = await import('../../xds/client/identity-client');
  const { startProxy: start } = await import('../helpers/proxy-process');
  const { runRequests, count } = await import('../helpers/load');
  // A control plane whose leaves live 4 s: the client proxy renews about every 3 s under load.
  const cp2 = await startControl(mesh.file, 0, ['--ca-dir', join(mesh.dir, 'ca2'), '--generate-ca', '--trust-domain', 'mesh.test', '--leaf-ttl-s', '4', '--token-secret', join(mesh.dir, 'token-secret')]);
  const app = await echoServer();
  // The server side: a proxy with an identity from the same CA, from files (a longer-lived one).
  const ic = new IdentityClient({ server: `127.0.0.1:${cp2.port}`, tokenFile: token('api') });
  const apiId = await ic.start();
  ic.stop();
  for (const [f, v] of [['api.crt', apiId.certChainPem], ['api.key', apiId.keyPem], ['api-bundle.crt', apiId.trustBundlePem]] as const) writeFileSync(join(mesh.dir, f), v);
  const serverCfg = join(mesh.dir, 'server.yaml');
  writeFileSync(
    serverCfg,
    `proxy:
  identity: { certificateChainFile: ${join(mesh.dir, 'api.crt')}, privateKeyFile: ${join(mesh.dir, 'api.key')}, trustBundleFile: ${join(mesh.dir, 'api-bundle.crt')} }
listeners: [{ name: in, address: 127.0.0.1:0, direction: inbound, defaultService: app }]
services: [{ name: app, endpoints: [{ address: 127.0.0.1:${app.port} }] }]
`,
  );
  const serverProxy = await start(['--config', serverCfg, '--workers', '1']);
  // The mesh names the server side as a meshed endpoint.
  mesh.replace(`
listeners: [{ name: out, address: 127.0.0.1:0, routes: [r] }]
services: [{ name: api, identity: "spiffe://mesh.test/ns/shop/sa/api", endpoints: [{ address: 127.0.0.1:${serverProxy.ports.in}, zone: z1 }] }]
routes: [{ name: r, backendRefs: [{ name: api }] }]
`);
  await new Promise((r) => setTimeout(r, 500));
  const client = await start(['--bootstrap', bootstrap(cp2.port), '--identity-token', token('web'), '--workers', '1'], { timeoutMs: 20_000 });
  try {
    await eventually(async () => (await admin(client, '/ready')).status === 200, 10_000, 'client ready');
    await eventually(async () => {
      const t = await runRequests(client.ports.out!, 1);
      return count(t.statuses, 200) === 1;
    }, 10_000, 'traffic through mutual TLS');
    const seen = await fetch(`http://127.0.0.1:${client.ports.out}/who`).then((r) => r.json() as Promise<{ headers: Record<string, string> }>);
    assert.equal(seen.headers['l5d-client-id'], 'spiffe://mesh.test/ns/shop/sa/web');
    // Load across at least two renewals: no request may fail.
    const before = (JSON.parse((await admin(client, '/config_dump')).body) as { source: { identity: { renewals: { issued: number } } } }).source.identity.renewals.issued;
    const t = await runRequests(client.ports.out!, 400, { concurrency: 4 });
    let after = before;
    await eventually(async () => {
      after = (JSON.parse((await admin(client, '/config_dump')).body) as { source: { identity: { renewals: { issued: number } } } }).source.identity.renewals.issued;
      return after >= before + 1;
    }, 10_000, 'a renewal');
    const t2 = await runRequests(client.ports.out!, 400, { concurrency: 4 });
    assert.equal(count(t.statuses, 200) + count(t2.statuses, 200), 800, `${t.failures.join('; ')} ${t2.failures.join('; ')}`);
    assert.ok(after > before, `renewed ${after - before} times during the load`);
  } finally {
    await client.stop();
    await serverProxy.stop();
    await cp2.stop();
    await close(app.server);
  }
});
