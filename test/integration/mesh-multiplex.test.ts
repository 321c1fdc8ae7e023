// Proxy-to-proxy multiplexing between two real Bowline proxies, the default for a meshed service:
// HTTP/1.1 requests from many client connections travel as streams of one HTTP/2 connection inside
// mutual TLS (ALPN h2) and come out as HTTP/1.1 at the far end, their version carried in
// l5d-orig-proto and removed there (the app's service is `auto`: without the header it would get
// HTTP/2); bodies, chunked framing and the caller's identity pass; `protocol: http1` keeps HTTP/1.1.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Identity } from '../../xds/client/identity-client';
import { TempConfig } from '../helpers/config-file';
import { identityYaml, issueIdentities } from '../helpers/mesh-identity';
import { admin, metricSum, type ProxyProcess, startProxy } from '../helpers/proxy-process';
import { close, listen, readBodyDigest } from '../helpers/upstream';

let dir: string;
let ids: Record<string, Identity>;
let app: { server: http.Server; port: number; seen: { version: string; headers: http.IncomingHttpHeaders; url: string }[] };
let server: ProxyProcess;
let client: ProxyProcess;
const cfgs: TempConfig[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bowline-mux-'));
  ids = await issueIdentities(dir, join(dir, 'ca'), ['web', 'api']);
  const seen: { version: string; headers: http.IncomingHttpHeaders; url: string }[] = [];
  const srv = http.createServer((req, res) => {
    seen.push({ version: req.httpVersion, headers: req.headers, url: String(req.url) });
    readBodyDigest(req, (n, sha256) => {
      const body = `${req.method} ${req.url} ${n} ${sha256.slice(0, 16)} ${req.headers['l5d-client-id'] ?? ''}`;
      if (req.url!.startsWith('/h1/')) {
        // Slow enough that the requests of one test overlap (each holds its connection).
        setTimeout(() => res.end(body), 100);
      } else if (req.url === '/chunked') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write(body);
        setTimeout(() => res.end(' (end)'), 10);
      } else {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      }
    });
  });
  srv.keepAliveTimeout = 30_000;
  app = { server: srv, port: await listen(srv), seen };
  const sc = new TempConfig(`
proxy:
${identityYaml(dir, 'api', ids['api']!)}
listeners: [{ name: in, address: 127.0.0.1:0, direction: inbound, defaultService: app }]
services: [{ name: app, endpoints: [{ address: 127.0.0.1:${app.port} }] }]
`);
  cfgs.push(sc);
  server = await startProxy(['--config', sc.file, '--workers', '1']);
  const cc = new TempConfig(`
proxy:
${identityYaml(dir, 'web', ids['web']!)}
listeners: [{ name: out, address: 127.0.0.1:0, defaultService: api }]
services:
  - name: api
    identity: spiffe://mesh.test/ns/shop/sa/api
    endpoints: [{ address: 127.0.0.1:${server.ports['in']} }]
`);
  cfgs.push(cc);
  client = await startProxy(['--config', cc.file, '--workers', '1']);
});

after(async () => {
  await client?.stop();
  await server?.stop();
  for (const c of cfgs) c.remove();
  if (app) await close(app.server);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function request(port: number, path: string, body?: Buffer, chunked = false): Promise<{ status: number; text: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = body === undefined ? {} : chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': body.length };
    const req = http.request({ host: '127.0.0.1', port, path, method: body === undefined ? 'GET' : 'POST', headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('latin1');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, headers: res.headers }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    if (body !== undefined && chunked) {
      req.write(body.subarray(0, 1000));
      req.end(body.subarray(1000));
    } else req.end(body);
  });
}

test('100 HTTP/1.1 requests on 100 client connections share one mesh connection and reach the app as HTTP/1.1', { timeout: 60_000 }, async () => {
  const port = client.ports['out']!;
  const before = metricSum((await admin(server, '/metrics')).body, 'tcp_open_total', { direction: 'inbound', peer: 'src' });
  const rs = await Promise.all(Array.from({ length: 100 }, (_, i) => request(port, `/r/${i}`)));
  for (let i = 0; i < rs.length; i++) {
    assert.equal(rs[i]!.status, 200);
    assert.match(rs[i]!.text, new RegExp(`^GET /r/${i} 0 \\S+ spiffe://mesh.test/ns/shop/sa/web$`));
  }
  const after = metricSum((await admin(server, '/metrics')).body, 'tcp_open_total', { direction: 'inbound', peer: 'src' });
  assert.ok(after - before <= 1, `the server side accepted ${after - before} connections for 100 requests`);
  const last = app.seen.at(-1)!;
  assert.equal(last.version, '1.1');
  assert.equal(last.headers['l5d-orig-proto'], undefined, 'the carrier header stops at the far end');
  assert.equal(last.headers['l5d-client-id'], 'spiffe://mesh.test/ns/shop/sa/web');
});

test('bodies by length and chunked go up whole; a chunked answer comes back whole', { timeout: 30_000 }, async () => {
  const port = client.ports['out']!;
  const body = Buffer.alloc(300_000);
  for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
  const digest = createHash('sha256').update(body).digest('hex').slice(0, 16);
  const byLength = await request(port, '/len', body);
  assert.equal(byLength.text, `POST /len ${body.length} ${digest} spiffe://mesh.test/ns/shop/sa/web`);
  const chunked = await request(port, '/chunked', body, true);
  assert.equal(chunked.text, `POST /chunked ${body.length} ${digest} spiffe://mesh.test/ns/shop/sa/web (end)`);
});

test('protocol: http1 on the meshed service keeps HTTP/1.1 on the mesh hop: one TLS connection per client connection', { timeout: 30_000 }, async () => {
  const cc = new TempConfig(`
proxy:
${identityYaml(dir, 'web2', ids['web']!)}
listeners: [{ name: out, address: 127.0.0.1:0, defaultService: api }]
services:
  - name: api
    identity: spiffe://mesh.test/ns/shop/sa/api
    protocol: http1
    endpoints: [{ address: 127.0.0.1:${server.ports['in']} }]
`);
  cfgs.push(cc);
  const c1 = await startProxy(['--config', cc.file, '--workers', '1']);
  try {
    const before = metricSum((await admin(server, '/metrics')).body, 'tcp_open_total', { direction: 'inbound', peer: 'src' });
    const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => request(c1.ports['out']!, `/h1/${i}`)));
    assert.ok(rs.every((r) => r.status === 200));
    const after = metricSum((await admin(server, '/metrics')).body, 'tcp_open_total', { direction: 'inbound', peer: 'src' });
    assert.equal(after - before, 10, 'ten client connections, ten mesh connections');
    assert.equal(app.seen.at(-1)!.headers['l5d-orig-proto'], undefined);
  } finally {
    await c1.stop();
  }
});
