// HTTP/1.1 through the real proxy process: keep-alive, chunked bodies, pipelining, hop-by-hop
// headers, Upgrade and CONNECT tunnels, h2c upgrades never passed on, and responses that Node's
// own HTTP client reads back correctly.

import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { type ProxyProcess, startProxy } from '../helpers/proxy-process';
import { parseResponses, rawRequest, statusCodes } from '../helpers/raw-client';
import { close, echoServer, listen, rawServer } from '../helpers/upstream';

let proxy: ProxyProcess;
let echo: Awaited<ReturnType<typeof echoServer>>;
let echoConnections = 0;
let upgradeServer: http.Server;
let connectServer: Awaited<ReturnType<typeof rawServer>>;
let dir: string;

function request(port: number, opts: http.RequestOptions & { body?: Buffer | string }, agent?: http.Agent): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, agent: agent ?? false, ...opts }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('request timed out')));
    req.end(opts.body);
  });
}

before(async () => {
  echo = await echoServer();
  echo.server.on('connection', () => echoConnections++);
  // Upstream for Upgrade: answers 101 and then echoes bytes back upper-cased.
  upgradeServer = http.createServer((_req, res) => res.end('no upgrade'));
  upgradeServer.on('upgrade', (req, socket: net.Socket, head: Buffer) => {
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${req.headers.upgrade}\r\nConnection: Upgrade\r\n\r\n`);
    if (head.length) socket.write(head.toString().toUpperCase());
    socket.on('data', (d) => socket.write(d.toString().toUpperCase()));
    socket.on('end', () => socket.end());
    socket.on('error', () => {});
  });
  const upPort = await listen(upgradeServer);
  // Upstream for CONNECT: answers 200 and echoes.
  connectServer = await rawServer((s, data) => {
    const text = data.toString('latin1');
    if (text.startsWith('CONNECT ')) {
      s.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      const rest = data.subarray(data.indexOf('\r\n\r\n') + 4);
      if (rest.length) s.write(rest);
      s.removeAllListeners('data');
      s.on('data', (d) => s.write(d));
    } else {
      s.end('HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n');
    }
  });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bowline-h1-'));
  const cfg = `
listeners:
  - { name: main, address: 127.0.0.1:0, routes: [echo] }
  - { name: upgrade, address: 127.0.0.1:0, defaultService: upgrade }
  - { name: connect, address: 127.0.0.1:0, defaultService: connect }
services:
  - { name: echo, endpoints: [{ address: 127.0.0.1:${echo.port} }] }
  - { name: upgrade, endpoints: [{ address: 127.0.0.1:${upPort} }] }
  - { name: connect, endpoints: [{ address: 127.0.0.1:${connectServer.port} }] }
routes:
  - name: echo
    backendRefs: [{ name: echo }]
`;
  fs.writeFileSync(path.join(dir, 'bowline.yaml'), cfg);
  proxy = await startProxy(['--config', path.join(dir, 'bowline.yaml'), '--workers', '1']);
});

after(async () => {
  await proxy?.stop();
  await close(echo.server);
  await close(upgradeServer);
  await close(connectServer.server);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('HTTP/1.1 forwarding', () => {
  test('keep-alive on both sides: sequential requests reuse one upstream connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const before = echoConnections;
    for (let i = 0; i < 20; i++) {
      const r = await request(proxy.ports.main, { path: `/ka/${i}` }, agent);
      assert.equal(r.status, 200);
      assert.equal(JSON.parse(r.body.toString()).url, `/ka/${i}`);
    }
    agent.destroy();
    assert.ok(echoConnections - before <= 1, `upstream connections opened: ${echoConnections - before}`);
  });

  test('request bodies: content-length and chunked (with extensions and trailers) arrive whole', async () => {
    const body = Buffer.alloc(300_000, 'x');
    const r1 = await request(proxy.ports.main, { method: 'POST', path: '/cl', headers: { 'content-length': body.length }, body });
    assert.equal(JSON.parse(r1.body.toString()).bodyLength, body.length);
    const chunked =
      'POST /chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
      '5;name=value\r\nhello\r\n6;q="quoted;str"\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n';
    const raw = await rawRequest(proxy.ports.main, chunked);
    const [res] = parseResponses(raw.data);
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body.toString()).bodyLength, 11);
  });

  test('chunked responses pass through unchanged and Node reads them', async () => {
    const server = http.createServer((_req, res) => {
      res.write('part-1;');
      setTimeout(() => res.end('part-2'), 20);
    });
    const port = await listen(server);
    fs.writeFileSync(
      path.join(dir, 'chunked.yaml'),
      `listeners: [{ name: l, address: 127.0.0.1:0, defaultService: s }]\nservices: [{ name: s, endpoints: [{ address: 127.0.0.1:${port} }] }]\n`,
    );
    const p = await startProxy(['--config', path.join(dir, 'chunked.yaml'), '--workers', '1']);
    try {
      const r = await request(p.ports.l, { path: '/' });
      assert.equal(r.headers['transfer-encoding'], 'chunked');
      assert.equal(r.body.toString(), 'part-1;part-2');
    } finally {
      await p.stop();
      await close(server);
    }
  });

  test('pipelined requests are answered in order, including one with a body', async () => {
    const reqs =
      'GET /p/1 HTTP/1.1\r\nHost: a\r\n\r\n' +
      'POST /p/2 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody' +
      'GET /p/3 HTTP/1.1\r\nHost: a\r\n\r\n' +
      'POST /p/4 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n' +
      'GET /p/5 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n';
    const raw = await rawRequest(proxy.ports.main, reqs);
    assert.ok(raw.closed, 'closed after Connection: close');
    const urls = [...raw.data.toString().matchAll(/"url":"([^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(urls, ['/p/1', '/p/2', '/p/3', '/p/4', '/p/5']);
    assert.deepEqual(statusCodes(raw.data), [200, 200, 200, 200, 200]);
    const lengths = [...raw.data.toString().matchAll(/"bodyLength":(\d+)/g)].map((m) => Number(m[1]));
    assert.deepEqual(lengths, [0, 4, 0, 3, 0]);
  });

  test('a client that half-closes after pipelining gets every response, then the close', async () => {
    const s = net.connect(proxy.ports.main, '127.0.0.1');
    const got: Buffer[] = [];
    s.on('data', (d) => got.push(d));
    const closed = new Promise((r) => s.once('close', r));
    await new Promise((r) => s.once('connect', r));
    s.end('GET /hc/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /hc/2 HTTP/1.1\r\nHost: a\r\n\r\nGET /hc/3 HTTP/1.1\r\nHost: a\r\n\r\n');
    await Promise.race([closed, new Promise((r) => setTimeout(r, 3000))]);
    const urls = parseResponses(Buffer.concat(got)).map((r) => JSON.parse(r.body.toString()).url);
    assert.deepEqual(urls, ['/hc/1', '/hc/2', '/hc/3']);
    assert.ok(s.destroyed || s.readableEnded, 'closed by the proxy');
    s.destroy();
  });

  test('pipelined requests split across many small writes still come back in order', async () => {
    const one = (i: number): string => `GET /s/${i} HTTP/1.1\r\nHost: a\r\n${i === 9 ? 'Connection: close\r\n' : ''}\r\n`;
    const all = Buffer.from(Array.from({ length: 10 }, (_, i) => one(i)).join(''));
    const parts: Buffer[] = [];
    for (let i = 0; i < all.length; i += 7) parts.push(all.subarray(i, i + 7));
    const raw = await rawRequest(proxy.ports.main, parts, 5000, 1);
    const urls = [...raw.data.toString().matchAll(/"url":"([^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(urls, Array.from({ length: 10 }, (_, i) => `/s/${i}`));
  });

  test('hop-by-hop headers, and the ones Connection names, are not forwarded', async () => {
    const raw = await rawRequest(
      proxy.ports.main,
      'GET /hop HTTP/1.1\r\nHost: a\r\nConnection: X-Secret, keep-alive\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\n' +
        'Proxy-Connection: keep-alive\r\nTE: trailers\r\nX-Kept: yes\r\n\r\nGET /end HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    );
    const h = JSON.parse(parseResponses(raw.data)[0].body.toString()).headers;
    for (const name of ['x-secret', 'keep-alive', 'proxy-connection', 'te']) assert.equal(h[name], undefined, `${name} forwarded`);
    assert.equal(h['x-kept'], 'yes');
  });

  test('HTTP/1.0 client: keep-alive when asked, close otherwise', async () => {
    const ka = await rawRequest(proxy.ports.main, 'GET /10 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n', 800);
    assert.match(ka.data.toString(), /^HTTP\/1\.1 200/);
    assert.match(ka.data.toString(), /connection: keep-alive/i);
    assert.equal(ka.closed, false);
    const close10 = await rawRequest(proxy.ports.main, 'GET /10 HTTP/1.0\r\n\r\n');
    assert.match(close10.data.toString(), /^HTTP\/1\.1 200/);
    assert.ok(close10.closed);
  });

  test('Upgrade: h2c is never passed on; the request is served as HTTP/1.1', async () => {
    const raw = await rawRequest(
      proxy.ports.main,
      'GET /h2c HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n',
    );
    assert.deepEqual(statusCodes(raw.data), [200]);
    const h = JSON.parse(parseResponses(raw.data)[0].body.toString()).headers;
    assert.equal(h.upgrade, undefined);
    assert.equal(h['http2-settings'], undefined);
    assert.doesNotMatch(String(h.connection ?? ''), /upgrade/i);
  });
});

describe('tunnels', () => {
  test('Upgrade (WebSocket-style) becomes a two-way tunnel after 101', async () => {
    const s = net.connect(proxy.ports.upgrade, '127.0.0.1');
    const got: Buffer[] = [];
    s.on('data', (d) => got.push(d));
    await new Promise((r) => s.once('connect', r));
    s.write('GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n');
    const deadline = Date.now() + 3000;
    while (!Buffer.concat(got).includes('\r\n\r\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.match(Buffer.concat(got).toString(), /^HTTP\/1\.1 101/);
    assert.match(Buffer.concat(got).toString(), /upgrade: websocket/i);
    got.length = 0;
    s.write('ping-1 ');
    s.write('ping-2');
    while (Buffer.concat(got).toString() !== 'PING-1 PING-2' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(Buffer.concat(got).toString(), 'PING-1 PING-2');
    s.destroy();
  });

  test('CONNECT is forwarded and tunnelled after 2xx', async () => {
    const s = net.connect(proxy.ports.connect, '127.0.0.1');
    const got: Buffer[] = [];
    s.on('data', (d) => got.push(d));
    await new Promise((r) => s.once('connect', r));
    s.write('CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n');
    const deadline = Date.now() + 3000;
    while (!Buffer.concat(got).includes('\r\n\r\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.match(Buffer.concat(got).toString(), /^HTTP\/1\.1 200/);
    got.length = 0;
    const payload = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]);
    s.write(payload);
    while (Buffer.concat(got).length < payload.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(Buffer.concat(got), payload);
    s.destroy();
  });
});

describe('responses', () => {
  test('response fields named by Connection (and Keep-Alive) are not forwarded to the client', async () => {
    const up = await rawServer((s) =>
      s.write('HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: secret\r\nX-Keep: yes\r\ncontent-length: 2\r\n\r\nok'),
    );
    fs.writeFileSync(
      path.join(dir, 'resp.yaml'),
      `listeners: [{ name: l, address: 127.0.0.1:0, defaultService: s }]\nservices: [{ name: s, endpoints: [{ address: 127.0.0.1:${up.port} }] }]\n`,
    );
    const p = await startProxy(['--config', path.join(dir, 'resp.yaml'), '--workers', '1']);
    try {
      const raw = await rawRequest(p.ports.l, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
      const [res] = parseResponses(raw.data);
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'ok');
      assert.equal(res.headers['x-keep'], 'yes');
      assert.equal(res.headers['x-hop'], undefined);
      assert.equal(res.headers['keep-alive'], undefined);
    } finally {
      await p.stop();
      await close(up.server);
    }
  });
});
