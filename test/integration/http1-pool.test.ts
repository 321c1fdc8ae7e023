// The per-endpoint upstream connection pool: reuse, idle timeout, the idle cap, and the keep-alive
// race (the server closes a pooled connection just as a request is sent on it).

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { eventually, type ProxyProcess, startProxy } from '../helpers/proxy-process';
import { parseResponses, rawRequest } from '../helpers/raw-client';
import { close, listen } from '../helpers/upstream';

let proxy: ProxyProcess;
let dir: string;
let racy: net.Server;
let counting: net.Server;
let racyConnections = 0;
let openUpstream = 0;
let maxOpenUpstream = 0;

before(async () => {
  // Answers the first request on each connection (keep-alive), then drops the connection without a
  // response when a second request arrives on it: what a server does that closed an idle connection
  // at the moment the proxy reused it.
  racy = net.createServer((s) => {
    racyConnections++;
    let served = 0;
    s.on('data', (d) => {
      if (!d.includes('\r\n\r\n')) return;
      if (served++ === 0) s.write(`HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-conn: ${racyConnections}\r\n\r\nok`);
      else s.destroy();
    });
    s.on('error', () => {});
  });
  // Keep-alive server that counts its open connections.
  counting = net.createServer((s) => {
    openUpstream++;
    maxOpenUpstream = Math.max(maxOpenUpstream, openUpstream);
    s.on('close', () => openUpstream--);
    // Slow enough that concurrent requests need concurrent connections.
    s.on('data', () => setTimeout(() => s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'), 100));
    s.on('error', () => {});
  });
  const racyPort = await listen(racy);
  const countingPort = await listen(counting);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bowline-pool-'));
  fs.writeFileSync(
    path.join(dir, 'c.yaml'),
    `listeners:
  - { name: racy, address: 127.0.0.1:0, defaultService: racy }
  - { name: counting, address: 127.0.0.1:0, defaultService: counting }
services:
  - { name: racy, endpoints: [{ address: 127.0.0.1:${racyPort} }] }
  - { name: counting, endpoints: [{ address: 127.0.0.1:${countingPort} }], pool: { maxIdlePerEndpoint: 2, idleTimeoutMs: 400 } }
`,
  );
  proxy = await startProxy(['--config', path.join(dir, 'c.yaml'), '--workers', '1']);
});

after(async () => {
  await proxy?.stop();
  await close(racy);
  await close(counting);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a GET on a pooled connection the server just closed is replayed once on a new one', async () => {
  const first = await rawRequest(proxy.ports.racy, 'GET /1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
  assert.equal(parseResponses(first.data)[0].status, 200);
  const second = await rawRequest(proxy.ports.racy, 'GET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
  const [res] = parseResponses(second.data);
  assert.equal(res.status, 200, second.data.toString());
  assert.equal(res.headers['x-conn'], '2', 'served on a fresh connection');
});

test('a POST with a body is not replayed: 502', async () => {
  // Warm one pooled connection, then POST on it.
  await rawRequest(proxy.ports.racy, 'GET /warm HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
  const r = await rawRequest(proxy.ports.racy, 'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc');
  const [res] = parseResponses(r.data);
  assert.equal(res.status, 502);
  assert.equal(res.headers['l5d-proxy-error'], 'upstream-reset');
});

test('idle pooled connections above the cap are closed, and the rest after the idle timeout', async () => {
  // 5 concurrent requests open 5 upstream connections; only 2 may stay idle.
  const clients = await Promise.all(
    Array.from({ length: 5 }, () => rawRequest(proxy.ports.counting, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')),
  );
  for (const c of clients) assert.equal(parseResponses(c.data)[0].status, 200);
  assert.equal(maxOpenUpstream, 5, 'five concurrent upstream connections');
  await eventually(() => openUpstream <= 2, 2000, 'idle cap of 2');
  await eventually(() => openUpstream === 0, 3000, 'idle timeout');
});
