// Mutual TLS between two real Bowline proxies: the client side wraps traffic to a meshed endpoint in
// TLS 1.3 and checks the server's SPIFFE ID; the server side detects the ClientHello, terminates
// TLS, requires a client certificate from the mesh's anchors, and tells the app who called in
// l5d-client-id (a forged copy from outside never gets through). Plaintext still works inbound.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import type { Identity } from '../../xds/client/identity-client';
import { TempConfig } from '../helpers/config-file';
import { identityYaml, issueIdentities } from '../helpers/mesh-identity';
import { type ProxyProcess, startProxy } from '../helpers/proxy-process';
import { close, echoServer } from '../helpers/upstream';

let dir: string;
let app: Awaited<ReturnType<typeof echoServer>>;
const cleanup: (() => Promise<void> | void)[] = [];
const identityFiles = (name: string, id: Identity): string => identityYaml(dir, name, id);

let ids: Record<string, Identity>;
let strangers: Record<string, Identity>;
let serverProxy: ProxyProcess;

async function proxy(yaml: string): Promise<ProxyProcess> {
  const cfg = new TempConfig(yaml);
  const p = await startProxy(['--config', cfg.file, '--workers', '1']);
  cleanup.push(async () => {
    await p.stop();
    cfg.remove();
  });
  return p;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bowline-mtls-'));
  ids = await issueIdentities(dir, join(dir, 'ca'), ['web', 'api']);
  strangers = await issueIdentities(dir, join(dir, 'other-ca'), ['web']);
  app = await echoServer();
  serverProxy = await proxy(`
proxy:
${identityFiles('api', ids['api']!)}
listeners: [{ name: in, address: 127.0.0.1:0, direction: inbound, defaultService: app }]
services: [{ name: app, endpoints: [{ address: 127.0.0.1:${app.port} }] }]
`);
});

after(async () => {
  for (const c of cleanup.reverse()) await c();
  if (app) await close(app.server);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function clientProxy(expected: string, id: Identity = ids['web']!): Promise<ProxyProcess> {
  return proxy(`
proxy:
${identityFiles(`client-${Math.random().toString(36).slice(2)}`, id)}
listeners: [{ name: out, address: 127.0.0.1:0, defaultService: api }]
services:
  - name: api
    identity: ${expected}
    endpoints: [{ address: 127.0.0.1:${serverProxy.ports.in} }]
    retry: { maxRetries: 0 }
`);
}

async function get(port: number, headers: Record<string, string> = {}): Promise<{ status: number; body: string; error: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/x`, { headers, signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: await res.text(), error: res.headers.get('l5d-proxy-error') ?? '' };
}

test('proxy to proxy over mutual TLS: the app learns the caller, and a forged l5d-client-id is dropped', { timeout: 30_000 }, async () => {
  const c = await clientProxy('spiffe://mesh.test/ns/shop/sa/api');
  const r = await get(c.ports.out!, { 'l5d-client-id': 'spiffe://mesh.test/ns/shop/sa/admin' });
  assert.equal(r.status, 200, r.body);
  const seen = JSON.parse(r.body) as { headers: Record<string, string> };
  assert.equal(seen.headers['l5d-client-id'], 'spiffe://mesh.test/ns/shop/sa/web');
});

test('the client side refuses a server whose certificate names another identity (SAN mismatch)', { timeout: 30_000 }, async () => {
  const c = await clientProxy('spiffe://mesh.test/ns/shop/sa/billing');
  const r = await get(c.ports.out!);
  assert.equal(r.status, 502);
  assert.equal(r.error, 'connect-failed');
});

test('the server side refuses clients without a certificate, or with one from another CA', { timeout: 30_000 }, async () => {
  const attempt = (o: tls.ConnectionOptions): Promise<string> =>
    new Promise((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: serverProxy.ports.in!, ca: ids['api']!.trustBundlePem, checkServerIdentity: () => undefined, minVersion: 'TLSv1.3', ...o });
      let out = '';
      s.on('secureConnect', () => s.write('GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'));
      s.on('data', (d: Buffer) => (out += d.toString()));
      s.on('error', (e) => resolve(`error ${e.message}`));
      s.on('close', () => resolve(out === '' ? 'closed' : out.split('\r\n')[0]!));
    });
  assert.doesNotMatch(await attempt({}), /^HTTP\/1\.1 200/, 'no client certificate');
  assert.doesNotMatch(await attempt({ key: strangers['web']!.keyPem, cert: strangers['web']!.certChainPem }), /^HTTP\/1\.1 200/, 'another CA');
  assert.match(await attempt({ key: ids['web']!.keyPem, cert: ids['web']!.certChainPem }), /^HTTP\/1\.1 200/, 'a mesh certificate');
  // TLS 1.2 is refused outright.
  assert.match(await attempt({ key: ids['web']!.keyPem, cert: ids['web']!.certChainPem, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }), /^error|^closed/);
});

test('plaintext still reaches the inbound listener, without a client identity (and forged ones dropped)', { timeout: 30_000 }, async () => {
  const r = await get(serverProxy.ports.in!, { 'l5d-client-id': 'spiffe://mesh.test/ns/shop/sa/admin' });
  assert.equal(r.status, 200);
  const seen = JSON.parse(r.body) as { headers: Record<string, string> };
  assert.equal(seen.headers['l5d-client-id'], undefined);
});

test('a proxy without an identity does not reach a meshed endpoint in plaintext', { timeout: 30_000 }, async () => {
  const p = await proxy(`
listeners: [{ name: out, address: 127.0.0.1:0, defaultService: api }]
services: [{ name: api, identity: spiffe://mesh.test/ns/shop/sa/api, endpoints: [{ address: 127.0.0.1:${serverProxy.ports.in} }] }]
`);
  const r = await get(p.ports.out!);
  assert.equal(r.status, 502);
  assert.equal(r.error, 'no-identity');
});

test('the config dump names the identity and never shows the key', { timeout: 30_000 }, async () => {
  const { admin } = await import('../helpers/proxy-process');
  const dump = (await admin(serverProxy, '/config_dump')).body;
  assert.deepEqual((JSON.parse(dump) as { snapshot: { identity: unknown } }).snapshot.identity, { spiffeId: 'spiffe://mesh.test/ns/shop/sa/api' });
  assert.doesNotMatch(dump, /PRIVATE KEY|BEGIN CERTIFICATE/);
});

test('identity files rotated by another tool are picked up without an edit of the config', { timeout: 30_000 }, async () => {
  const { renameSync, writeFileSync } = await import('node:fs');
  const serial = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: serverProxy.ports.in!, ca: ids['api']!.trustBundlePem, key: ids['web']!.keyPem, cert: ids['web']!.certChainPem, checkServerIdentity: () => undefined, minVersion: 'TLSv1.3' });
      s.on('secureConnect', () => {
        resolve(s.getPeerCertificate().serialNumber);
        s.destroy();
      });
      s.on('error', reject);
    });
  const before = await serial();
  const fresh = (await issueIdentities(dir, join(dir, 'ca'), ['api']))['api']!;
  // Key first, then the chain, each replaced atomically, as cert-manager's or SPIRE's helpers do.
  for (const [file, text] of [['api.key', fresh.keyPem], ['api.crt', fresh.certChainPem]] as const) {
    writeFileSync(join(dir, `.${file}.tmp`), text);
    renameSync(join(dir, `.${file}.tmp`), join(dir, file));
  }
  let now = before;
  for (let i = 0; i < 100 && now === before; i++) {
    await new Promise((r) => setTimeout(r, 100));
    now = await serial();
  }
  assert.notEqual(now, before, 'the proxy serves the new certificate');
  const { X509Certificate } = await import('node:crypto');
  assert.equal(now.toLowerCase(), new X509Certificate(fresh.certChainPem).serialNumber.toLowerCase());
  assert.equal((await get(serverProxy.ports.in!)).status, 200);
});

test('a client that closes right after the handshake, having sent nothing, is closed too (regression: it was kept open)', { timeout: 30_000 }, async () => {
  const { admin, metricSum } = await import('../helpers/proxy-process');
  const open = async (): Promise<number> => metricSum((await admin(serverProxy, '/metrics')).body, 'tcp_open_connections', { direction: 'inbound', peer: 'src' });
  const base = await open();
  const s = tls.connect({ host: '127.0.0.1', port: serverProxy.ports.in!, ca: ids['api']!.trustBundlePem, key: ids['web']!.keyPem, cert: ids['web']!.certChainPem, checkServerIdentity: () => undefined, minVersion: 'TLSv1.3' });
  await new Promise<void>((res, rej) => {
    s.on('secureConnect', () => res());
    s.on('error', rej);
  });
  const closed = new Promise<void>((res) => s.on('close', () => res()));
  s.end();
  // The proxy closes its side at once (not after the 10 s detection timeout, and never leaves it half-open).
  await closed;
  let n = await open();
  for (let i = 0; i < 20 && n > base; i++) {
    await new Promise((r) => setTimeout(r, 100));
    n = await open();
  }
  assert.equal(n, base);
});

test('large bodies both ways through two proxies over mutual TLS arrive intact (read buffers are reused under TLS writes)', { timeout: 60_000 }, async () => {
  const http = await import('node:http');
  const { createHash, randomBytes } = await import('node:crypto');
  const { listen } = await import('../helpers/upstream');
  const payload = randomBytes(3 * 1024 * 1024 + 17);
  const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  // Downloads: the payload; uploads: answered with the digest of what arrived.
  const big = http.createServer((req, res) => {
    const h = createHash('sha256');
    req.on('data', (d: Buffer) => h.update(d));
    req.on('end', () => {
      if (req.method === 'POST') res.end(h.digest('hex'));
      else res.end(payload);
    });
  });
  const port = await listen(big);
  const server = await proxy(`
proxy:
${identityFiles('big-api', ids['api']!)}
listeners: [{ name: in, address: 127.0.0.1:0, direction: inbound, defaultService: app }]
services: [{ name: app, endpoints: [{ address: 127.0.0.1:${port} }] }]
`);
  const client = await proxy(`
proxy:
${identityFiles('big-web', ids['web']!)}
listeners: [{ name: out, address: 127.0.0.1:0, defaultService: api }]
services: [{ name: api, identity: spiffe://mesh.test/ns/shop/sa/api, endpoints: [{ address: 127.0.0.1:${server.ports.in} }] }]
`);
  try {
    const rounds = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const down = Buffer.from(await (await fetch(`http://127.0.0.1:${client.ports.out}/big`, { signal: AbortSignal.timeout(20_000) })).arrayBuffer());
        const up = await (await fetch(`http://127.0.0.1:${client.ports.out}/up`, { method: 'POST', body: payload, signal: AbortSignal.timeout(20_000) })).text();
        return { down: digest(down), up };
      }),
    );
    for (const r of rounds) assert.deepEqual(r, { down: digest(payload), up: digest(payload) });
  } finally {
    await close(big);
  }
});

test('a TLS socket adopted after its handshake reads into its own buffer, in order, bytes read before included', { timeout: 20_000 }, async () => {
  const { Inbound } = await import('../../engine/io/inbound');
  const { createHash, randomBytes } = await import('node:crypto');
  const payload = randomBytes(512 * 1024);
  const got: Buffer[] = [];
  let usesOwnBuffer = false;
  const done = new Promise<void>((resolve) => {
    const srv = tls.createServer({ key: ids['api']!.keyPem, cert: ids['api']!.certChainPem, minVersion: 'TLSv1.3' }, (t) => {
      // Let the first bytes land in Node's own buffer before the switch.
      setTimeout(() => {
        const inbound = Inbound.adoptReading(t);
        const k = Object.getOwnPropertySymbols(t).find((x) => x.description === 'kBuffer')!;
        usesOwnBuffer = Buffer.isBuffer((t as unknown as Record<symbol, unknown>)[k]);
        let n = 0;
        inbound.sink = (chunk) => {
          got.push(Buffer.from(chunk)); // chunks live only during the call
          n += chunk.length;
          if (n >= payload.length + 5) {
            t.destroy();
            srv.close();
            resolve();
          }
        };
      }, 100);
    });
    srv.listen(0, '127.0.0.1', () => {
      const c = tls.connect({ host: '127.0.0.1', port: (srv.address() as import('node:net').AddressInfo).port, ca: ids['api']!.trustBundlePem, checkServerIdentity: () => undefined }, () => {
        c.write('first');
        setTimeout(() => c.write(payload), 300);
      });
      c.on('error', () => {});
    });
  });
  await done;
  assert.ok(usesOwnBuffer, 'the socket reads into its own buffer');
  const all = Buffer.concat(got);
  assert.equal(all.subarray(0, 5).toString(), 'first');
  assert.equal(createHash('sha256').update(all.subarray(5)).digest('hex'), createHash('sha256').update(payload).digest('hex'));
});

test('big bodies over mutual TLS to a slow reader on either side arrive intact (decrypted reads never overwrite held bytes)', { timeout: 60_000 }, async () => {
  const http = await import('node:http');
  const net = await import('node:net');
  const { createHash, randomBytes } = await import('node:crypto');
  const { listen } = await import('../helpers/upstream');
  const payload = randomBytes(12 * 1024 * 1024 + 3);
  const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  // The app reads uploads slowly (so the server proxy's writes to it back up) and answers with the digest.
  const slowApp = http.createServer((req, res) => {
    if (req.method !== 'POST') return res.end(payload);
    const h = createHash('sha256');
    req.on('data', (d: Buffer) => {
      h.update(d);
      req.pause();
      setTimeout(() => req.resume(), 2);
    });
    req.on('end', () => res.end(h.digest('hex')));
  });
  const port = await listen(slowApp);
  const server = await proxy(`
proxy:
${identityFiles('slow-api', ids['api']!)}
listeners: [{ name: in, address: 127.0.0.1:0, direction: inbound, defaultService: app }]
services: [{ name: app, endpoints: [{ address: 127.0.0.1:${port} }] }]
`);
  const client = await proxy(`
proxy:
${identityFiles('slow-web', ids['web']!)}
listeners: [{ name: out, address: 127.0.0.1:0, defaultService: api }]
services: [{ name: api, identity: spiffe://mesh.test/ns/shop/sa/api, endpoints: [{ address: 127.0.0.1:${server.ports.in} }] }]
`);
  try {
    const up = await (await fetch(`http://127.0.0.1:${client.ports.out}/up`, { method: 'POST', body: payload, signal: AbortSignal.timeout(40_000) })).text();
    assert.equal(up, digest(payload), 'upload through a slow app');
    // Download to a client that reads slowly (so the client proxy's writes to it back up).
    const down = await new Promise<Buffer>((resolve, reject) => {
      const s = net.connect(client.ports.out!, '127.0.0.1', () => s.write('GET /big HTTP/1.1\r\nhost: api\r\nconnection: close\r\n\r\n'));
      const parts: Buffer[] = [];
      s.on('data', (d: Buffer) => {
        parts.push(d);
        s.pause();
        setTimeout(() => s.resume(), 5);
      });
      s.on('end', () => resolve(Buffer.concat(parts)));
      s.on('error', reject);
    });
    const body = down.subarray(down.indexOf('\r\n\r\n') + 4);
    assert.equal(body.length, payload.length);
    assert.equal(digest(body), digest(payload), 'download to a slow client');
  } finally {
    await close(slowApp);
  }
});
