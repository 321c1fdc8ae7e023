// Inbound authorization between real proxies over mutual TLS: a Server is denied unless an
// AuthorizationPolicy lets the caller in by its mesh identity or its network; a route's own policy
// covers every spelling of its paths; ports without a Server follow the default policy; opaque TCP
// connections that are denied are closed; audit mode lets through but counts; changes apply live.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Identity } from '../../xds/client/identity-client';
import { scrape } from '../helpers/admin-probe';
import { TempConfig } from '../helpers/config-file';
import { identityYaml, issueIdentities } from '../helpers/mesh-identity';
import { eventually, metricSum, type ProxyProcess, startProxy } from '../helpers/proxy-process';
import { parseResponses, rawRequest } from '../helpers/raw-client';
import { close, echoServer, listen } from '../helpers/upstream';

const WEB = 'spiffe://mesh.test/ns/shop/sa/web';
let dir: string;
let app: Awaited<ReturnType<typeof echoServer>>;
let tcpApp: { server: net.Server; port: number };
let ids: Record<string, Identity>;
let serverCfg: TempConfig;
let server: ProxyProcess;
const clients: Record<string, ProxyProcess> = {};
const cleanup: (() => Promise<void> | void)[] = [];

const POLICY = `
policy:
  defaultPolicy: deny
  servers:
    - { name: api-http, listener: in }
    - { name: api-tcp, listener: tcpin }
  authorizationPolicies:
    - name: shop-calls-api
      targetRef: { kind: Server, name: api-http }
      meshTLS: { identities: ["${WEB}", "spiffe://mesh.test/ns/ops/sa/*"] }
    - name: ops-only-admin
      targetRef: { kind: HTTPRoute, name: admin }
      meshTLS: { identities: ["spiffe://mesh.test/ns/ops/sa/*"] }
    - name: local-probes
      targetRef: { kind: HTTPRoute, name: health }
      network: { networks: [{ cidr: 127.0.0.0/8 }] }
    - name: web-tcp
      targetRef: { kind: Server, name: api-tcp }
      meshTLS: { identities: ["${WEB}"] }
`;

function serverYaml(policy: string): string {
  return `
proxy:
${identityYaml(dir, 'api', ids['api']!)}
${policy}
listeners:
  - { name: in, address: 127.0.0.1:0, direction: inbound, routes: [admin, health, app] }
  - { name: tcpin, address: 127.0.0.1:0, direction: inbound, protocol: opaque, defaultService: tcpapp }
  - { name: other, address: 127.0.0.1:0, direction: inbound, defaultService: app }
services:
  - { name: app, endpoints: [{ address: 127.0.0.1:${app.port} }] }
  - { name: tcpapp, endpoints: [{ address: 127.0.0.1:${tcpApp.port} }] }
routes:
  - { name: admin, matches: [{ path: { type: PathPrefix, value: /admin } }], backendRefs: [{ name: app }] }
  - { name: health, matches: [{ path: { type: Exact, value: /healthz } }], backendRefs: [{ name: app }] }
  - { name: app, backendRefs: [{ name: app }] }
`;
}

async function proxy(cfg: TempConfig): Promise<ProxyProcess> {
  const p = await startProxy(['--config', cfg.file, '--workers', '1']);
  cleanup.push(async () => {
    await p.stop();
    cfg.remove();
  });
  return p;
}

/** A proxy with the identity `sa`, whose outbound listeners reach the server proxy over mesh TLS. */
async function clientProxy(sa: string): Promise<ProxyProcess> {
  const api = 'spiffe://mesh.test/ns/shop/sa/api';
  return proxy(
    new TempConfig(`
proxy:
${identityYaml(dir, `client-${sa.replace('/', '-')}`, ids[sa]!)}
listeners:
  - { name: out, address: 127.0.0.1:0, defaultService: api }
  - { name: other, address: 127.0.0.1:0, defaultService: other }
  - { name: tcpout, address: 127.0.0.1:0, protocol: opaque, defaultService: apitcp }
services:
  - { name: api, identity: "${api}", endpoints: [{ address: 127.0.0.1:${server.ports.in} }], retry: { maxRetries: 0 } }
  - { name: other, identity: "${api}", endpoints: [{ address: 127.0.0.1:${server.ports.other} }], retry: { maxRetries: 0 } }
  - { name: apitcp, identity: "${api}", endpoints: [{ address: 127.0.0.1:${server.ports.tcpin} }] }
`),
  );
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bowline-authz-'));
  ids = await issueIdentities(dir, join(dir, 'ca'), ['web', 'api', 'ops/admin']);
  app = await echoServer();
  tcpApp = { server: net.createServer((s) => s.on('error', () => {}).pipe(s)), port: 0 };
  tcpApp.port = await listen(tcpApp.server);
  serverCfg = new TempConfig(serverYaml(POLICY));
  server = await proxy(serverCfg);
  for (const sa of ['web', 'api', 'ops/admin']) clients[sa] = await clientProxy(sa);
});

after(async () => {
  for (const c of cleanup.reverse()) await c();
  if (app) await close(app.server);
  if (tcpApp) await close(tcpApp.server);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** One request with this exact request-target; the status, the proxy error and the path the app saw. */
async function call(port: number, target: string, headers = ''): Promise<{ status: number; error: string; path: string; head: string }> {
  const ex = await rawRequest(port, `GET ${target} HTTP/1.1\r\nhost: api\r\n${headers}connection: close\r\n\r\n`, 5000);
  const [r] = parseResponses(ex.data);
  assert.ok(r !== undefined, `no response to ${target}: ${ex.data.toString()}`);
  const head = ex.data.toString('latin1', 0, ex.data.indexOf('\r\n\r\n'));
  const error = /\r\nl5d-proxy-error: ([^\r]*)/i.exec(head)?.[1] ?? '';
  const path = r.status === 200 ? (JSON.parse(r.body.toString()) as { url: string }).url : '';
  return { status: r.status, error, path, head };
}

const port = (who: string, listener = 'out'): number => clients[who]!.ports[listener]!;

test('an allowed identity passes, another valid identity gets 403, and the counts carry the policy names', { timeout: 30_000 }, async () => {
  const ok = await call(port('web'), '/orders');
  assert.equal(ok.status, 200);
  assert.equal(ok.path, '/orders');
  const denied = await call(port('api'), '/orders');
  assert.equal(denied.status, 403);
  assert.equal(denied.error, 'unauthorized');
  const m = await scrape(server);
  assert.ok(metricSum(m, 'inbound_http_authz_allow_total', { srv_name: 'api-http', authz_name: 'shop-calls-api', client_id: WEB }) >= 1, m);
  assert.ok(metricSum(m, 'inbound_http_authz_deny_total', { srv_name: 'api-http', mode: 'enforce', client_id: 'spiffe://mesh.test/ns/shop/sa/api' }) >= 1);
  // The golden signals of inbound traffic carry the caller's identity, as Linkerd's do.
  assert.ok(metricSum(m, 'request_total', { direction: 'inbound', client_id: WEB, route: 'app' }) >= 1, m);
  assert.ok(metricSum(m, 'response_total', { direction: 'inbound', client_id: WEB, status_code: '200' }) >= 1);
  // The denied request never reached the app.
  assert.equal(app.requests.filter((h) => h['l5d-client-id'] === 'spiffe://mesh.test/ns/shop/sa/api').length, 0);
});

test('without mesh TLS there is no identity: a Server that wants one answers 403; a network policy lets probes in', { timeout: 30_000 }, async () => {
  assert.equal((await call(server.ports.in!, '/orders')).status, 403);
  // A forged identity header changes nothing: the proxy only trusts the TLS handshake.
  assert.equal((await call(server.ports.in!, '/orders', `l5d-client-id: ${WEB}\r\n`)).status, 403);
  assert.equal((await call(server.ports.in!, '/healthz')).status, 200);
});

test('a route policy covers every spelling of its paths: normalisation bypasses are refused', { timeout: 30_000 }, async () => {
  const attempts = ['/admin', '/admin/users', '/%61dmin', '/%61%64%6d%69%6e/users', '//admin', '/./admin', '/x/../admin', '/ADMIN', '/Admin/', '/admin;x=1', '/%2fadmin', '/public/..%2fadmin', 'http://api/admin'];
  for (const target of attempts) {
    const r = await call(port('web'), target);
    assert.equal(r.status, 403, `${target} from web: ${r.head}`);
  }
  const ops = await call(port('ops/admin'), '/%61dmin/users');
  assert.equal(ops.status, 200);
  assert.equal(ops.path, '/%61dmin/users', 'the request goes on as the client wrote it');
  // The route's own policy decides: web is allowed on the Server, but not on /admin.
  assert.equal((await call(port('web'), '/administrator')).status, 200);
});

test('a gRPC request that is denied gets PERMISSION_DENIED, not a bare 403', { timeout: 30_000 }, async () => {
  const ex = await rawRequest(port('api'), 'POST /shop.Api/Get HTTP/1.1\r\nhost: api\r\ncontent-type: application/grpc\r\nte: trailers\r\ncontent-length: 0\r\nconnection: close\r\n\r\n', 5000);
  const head = ex.data.toString('latin1');
  assert.match(head, /^HTTP\/1\.1 200 /);
  assert.match(head, /\r\ngrpc-status: 7\r\n/);
});

/** Opens a TCP connection, sends a line and returns what comes back before close or timeout. */
function tcpEcho(p: number): Promise<{ echoed: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(p, '127.0.0.1');
    let echoed = '';
    const done = (closed: boolean): void => {
      clearTimeout(t);
      s.destroy();
      resolve({ echoed, closed });
    };
    const t = setTimeout(() => done(false), 3000);
    s.on('connect', () => s.write('ping\n'));
    s.on('data', (d: Buffer) => {
      echoed += d.toString();
      if (echoed.includes('\n')) done(false);
    });
    s.on('error', () => {});
    s.on('close', () => done(true));
  });
}

test('opaque TCP: an allowed identity gets through, a denied one has its connection closed', { timeout: 30_000 }, async () => {
  assert.deepEqual(await tcpEcho(port('web', 'tcpout')), { echoed: 'ping\n', closed: false });
  const denied = await tcpEcho(port('api', 'tcpout'));
  assert.equal(denied.echoed, '');
  assert.equal(denied.closed, true);
  // Plaintext straight to the port: no identity, closed too.
  assert.equal((await tcpEcho(server.ports.tcpin!)).echoed, '');
  const m = await scrape(server);
  assert.ok(metricSum(m, 'inbound_tcp_authz_allow_total', { srv_name: 'api-tcp', authz_name: 'web-tcp' }) >= 1, m);
  assert.ok(metricSum(m, 'inbound_tcp_authz_deny_total', { srv_name: 'api-tcp' }) >= 2);
  // TCP series of connections over mesh TLS carry the client's identity too.
  assert.ok(metricSum(m, 'tcp_open_total', { direction: 'inbound', peer: 'src', client_id: WEB }) >= 1, m);
  assert.ok(metricSum(m, 'tcp_close_total', { direction: 'inbound', peer: 'src', client_id: 'spiffe://mesh.test/ns/shop/sa/api' }) >= 1);
});

test('ports without a Server follow the default policy', { timeout: 30_000 }, async () => {
  const r = await call(port('web', 'other'), '/x');
  assert.equal(r.status, 403);
  const m = await scrape(server);
  assert.ok(metricSum(m, 'inbound_http_authz_deny_total', { srv_name: '', authz_name: 'deny' }) >= 1);
});

test('policy changes apply live: all-authenticated default, then audit mode lets denied calls through and counts them', { timeout: 60_000 }, async () => {
  serverCfg.replace(serverYaml(POLICY.replace('defaultPolicy: deny', 'defaultPolicy: all-authenticated')));
  await eventually(async () => (await call(port('web', 'other'), '/x')).status === 200, 10_000, 'default policy all-authenticated applied');
  assert.equal((await call(server.ports.other!, '/x')).status, 403, 'no identity, still denied');

  serverCfg.replace(serverYaml(POLICY.replace('defaultPolicy: deny', 'defaultPolicy: deny\n  audit: true')));
  await eventually(async () => (await call(port('api'), '/orders')).status === 200, 10_000, 'audit mode applied');
  const before = metricSum(await scrape(server), 'inbound_http_authz_deny_total', { mode: 'audit' });
  assert.equal((await call(port('api'), '/admin')).status, 200);
  assert.ok(metricSum(await scrape(server), 'inbound_http_authz_deny_total', { mode: 'audit' }) > before);
  // Logged too (at most ten decisions a second are, so a flood cannot flood the log).
  const audited = (): boolean =>
    server
      .stderr()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .some((e) => /^(worker \d+: )?authorization audit: would deny, allowed$/.test(String(e['msg'])) && e['protocol'] === 'http' && e['target'] === '/admin' && e['clientId'] === 'spiffe://mesh.test/ns/shop/sa/api' && e['server'] === 'api-http' && e['client'] === '127.0.0.1');
  await eventually(async () => (await call(port('api'), '/admin')).status === 200 && audited(), 5000, 'audited request logged, with its fields');

  serverCfg.replace(serverYaml(POLICY));
  await eventually(async () => (await call(port('api'), '/orders')).status === 403, 10_000, 'enforcing again');
});
