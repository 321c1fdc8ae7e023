// Certificate rotation while traffic flows, with real processes: `bowline control --ca-dir` issues
// 3-second leaves, a proxy renews its own about every 2 s and calls itself over mutual TLS, and
// `bowline ca rotate-issuer` replaces the issuer in the CA's directory mid-load. The control plane
// picks the new issuer up; the proxy's next certificate carries it; fresh mTLS connections from
// outside see it; and no request fails, neither through the proxy nor on fresh handshakes. Also:
// the mesh file's authorization policy reaches the proxy over xDS and applies live.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { promisify } from 'node:util';
import type { Identity } from '../../xds/client/identity-client';
import { signToken } from '../../xds/server/ca/token-verifier';
import { TempConfig } from '../helpers/config-file';
import { type Control, startControl, writeBootstrap } from '../helpers/control-process';
import { runRequests } from '../helpers/load';
import { issueIdentities } from '../helpers/mesh-identity';
import { admin, BOWLINE_BIN, eventually, type ProxyProcess, startProxy } from '../helpers/proxy-process';
import { close, echoServer } from '../helpers/upstream';

const WEB = 'spiffe://mesh.test/ns/shop/sa/web';
let dir: string;
let mesh: TempConfig;
let cp: Control;
let proxy: ProxyProcess;
let app: Awaited<ReturnType<typeof echoServer>>;
let inPort: number;
let probe: Identity;

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return p;
}

function meshYaml(policy: string): string {
  return `
listeners:
  - { name: out, address: 127.0.0.1:0, routes: [r] }
  - { name: in, address: 127.0.0.1:${inPort}, direction: inbound, defaultService: app }
services:
  - { name: self, identity: "${WEB}", endpoints: [{ address: 127.0.0.1:${inPort} }], retry: { maxRetries: 0 } }
  - { name: app, endpoints: [{ address: 127.0.0.1:${app.port} }] }
routes: [{ name: r, backendRefs: [{ name: self }] }]
${policy}`;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bowline-rotation-'));
  app = await echoServer();
  inPort = await freePort();
  // One proxy calls itself: outbound "out" -> meshed service "self" -> its own inbound "in" -> app.
  mesh = new TempConfig(meshYaml(''));
  const secret = join(dir, 'token-secret');
  writeFileSync(secret, Buffer.alloc(48, 7));
  const caDir = join(dir, 'ca');
  cp = await startControl(mesh.file, 0, ['--ca-dir', caDir, '--generate-ca', '--trust-domain', 'mesh.test', '--leaf-ttl-s', '3', '--token-secret', secret]);
  // A client from outside, with a (long-lived) certificate from the same CA.
  probe = (await issueIdentities(dir, caDir, ['ops/probe']))['ops/probe']!;
  const tokenFile = join(dir, 'web.token');
  writeFileSync(tokenFile, signToken(readFileSync(secret), { namespace: 'shop', serviceAccount: 'web' }, 600));
  const bootstrap = writeBootstrap(join(dir, 'bootstrap.yaml'), cp.port);
  proxy = await startProxy(['--bootstrap', bootstrap, '--identity-token', tokenFile, '--workers', '1'], { timeoutMs: 20_000 });
});

after(async () => {
  await proxy?.stop();
  await cp?.stop();
  if (app) await close(app.server);
  mesh?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A fresh mutual TLS connection to the inbound listener and one request; the status and the serving certificate's issuer. */
function probeOnce(): Promise<{ status: string; issuerSerial: string }> {
  return new Promise((resolve) => {
    const s = tls.connect({
      host: '127.0.0.1',
      port: inPort,
      cert: probe.certChainPem,
      key: probe.keyPem,
      ca: probe.trustBundlePem,
      minVersion: 'TLSv1.3',
      checkServerIdentity: (_h, cert) => (cert.subjectaltname === `URI:${WEB}` ? undefined : new Error(`server is ${cert.subjectaltname}`)),
    });
    let out = '';
    let issuerSerial = '';
    s.setTimeout(5000, () => s.destroy(new Error('timeout')));
    s.on('secureConnect', () => {
      issuerSerial = s.getPeerCertificate(true).issuerCertificate?.serialNumber ?? '';
      s.write('GET /probe HTTP/1.1\r\nhost: self\r\nconnection: close\r\n\r\n');
    });
    s.on('data', (d: Buffer) => (out += d.toString('latin1')));
    s.on('error', (e) => resolve({ status: `error ${e.message}`, issuerSerial }));
    s.on('close', () => resolve({ status: out.split('\r\n')[0] ?? '', issuerSerial }));
  });
}

const renewals = async (): Promise<number> => (JSON.parse((await admin(proxy, '/config_dump')).body) as { source: { identity: { renewals: { issued: number } } } }).source.identity.renewals.issued;

test('leaf renewals and an issuer rotation under load: no request fails, fresh handshakes see the new issuer', { timeout: 90_000 }, async () => {
  await eventually(async () => (await admin(proxy, '/ready')).status === 200, 15_000, 'proxy ready (has its certificate)');
  await eventually(async () => (await probeOnce()).status.startsWith('HTTP/1.1 200'), 10_000, 'inbound mTLS serving');
  const oldIssuer = (await probeOnce()).issuerSerial;
  const renewalsBefore = await renewals();

  let stop = false;
  const proxied = { ok: 0, failed: [] as string[] };
  const probes = { ok: 0, failed: [] as string[], issuers: new Set<string>() };
  const proxyLoad = (async () => {
    while (!stop) {
      const t = await runRequests(proxy.ports.out!, 50, { concurrency: 4 });
      proxied.ok += t.statuses.get(200) ?? 0;
      proxied.failed.push(...[...t.statuses].filter(([s]) => s !== 200).map(([s, n]) => `${n}x ${s}`), ...(t.errors > 0 ? [`${t.errors} errors`] : []), ...t.failures.slice(0, 2));
    }
  })();
  const probeLoad = (async () => {
    while (!stop) {
      const r = await probeOnce();
      if (r.status.startsWith('HTTP/1.1 200')) probes.ok++;
      else probes.failed.push(r.status);
      probes.issuers.add(r.issuerSerial);
    }
  })();

  await new Promise((r) => setTimeout(r, 1500));
  const { stdout } = await promisify(execFile)(process.execPath, [BOWLINE_BIN, 'ca', 'rotate-issuer', '--ca-dir', join(dir, 'ca'), '--trust-domain', 'mesh.test']);
  const newIssuer = (JSON.parse(stdout) as { issuer: { serial: string } }).issuer.serial;
  assert.notEqual(newIssuer.toLowerCase(), oldIssuer.toLowerCase());
  try {
    await eventually(() => [...probes.issuers].some((s) => s.toLowerCase() === newIssuer.toLowerCase()), 15_000, 'the proxy serving a certificate from the new issuer');
    // And on, under load, across at least one more renewal.
    await eventually(async () => (await renewals()) >= renewalsBefore + 2, 15_000, 'two renewals under load');
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    stop = true;
    await Promise.all([proxyLoad, probeLoad]);
  }
  assert.match(cp.out(), /CA issuer reloaded/);
  assert.deepEqual(proxied.failed, [], 'requests through the proxy');
  assert.deepEqual(probes.failed, [], 'fresh mTLS handshakes');
  assert.ok(proxied.ok > 100 && probes.ok > 20, `proxied ${proxied.ok}, probes ${probes.ok}`);
});

test('an authorization policy in the mesh file reaches the proxy over xDS and applies live', { timeout: 30_000 }, async () => {
  mesh.replace(
    meshYaml(`
policy:
  servers: [{ name: in, listener: in }]
  authorizationPolicies:
    - { name: web-only, targetRef: { kind: Server, name: in }, meshTLS: { identities: ["${WEB}"] } }
`),
  );
  await eventually(async () => (await probeOnce()).status === 'HTTP/1.1 403 Forbidden', 10_000, 'the probe identity denied');
  const t = await runRequests(proxy.ports.out!, 20, { concurrency: 2 });
  assert.equal(t.statuses.get(200), 20, 'the web identity is still allowed');
  mesh.replace(meshYaml(''));
  await eventually(async () => (await probeOnce()).status.startsWith('HTTP/1.1 200'), 10_000, 'policy removed');
});
