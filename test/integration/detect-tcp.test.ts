// Protocol detection and opaque TCP: non-HTTP bytes and TLS are forwarded as TCP, the HTTP/2
// preface is served as HTTP/2; a server-speaks-first protocol works after the detection deadline; opaque listeners and
// opaque ports skip detection; tcp_* metrics count it.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { admin, eventually, metricSum, type ProxyProcess, startProxy } from '../helpers/proxy-process';
import { close, freePortBelowEphemeral, listen } from '../helpers/upstream';

let proxy: ProxyProcess;
let dir: string;
let tcpEcho: net.Server;
let banner: net.Server;

/** Connects, optionally sends, and collects until `want` bytes arrived or the deadline. */
async function exchange(port: number, send: Buffer | null, want: number, timeoutMs = 3000): Promise<Buffer> {
  const s = net.connect(port, '127.0.0.1');
  const got: Buffer[] = [];
  s.on('data', (d) => got.push(d));
  s.on('error', () => {});
  await new Promise((r) => s.once('connect', r));
  if (send !== null) s.write(send);
  const deadline = Date.now() + timeoutMs;
  while (Buffer.concat(got).length < want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  s.destroy();
  return Buffer.concat(got);
}

before(async () => {
  tcpEcho = net.createServer((s) => {
    s.on('data', (d) => s.write(d));
    s.on('error', () => {});
  });
  // A server that speaks first (like SMTP or MySQL).
  banner = net.createServer((s) => {
    s.write('220 banner\r\n');
    s.on('data', (d) => s.write(d));
    s.on('error', () => {});
  });
  const echoPort = await listen(tcpEcho);
  const bannerPort = await listen(banner);
  // A fixed port for the opaque-ports listener, below the ephemeral range (so that no port-0 bind of
  // a test running at the same time can take it between this probe and the proxy's bind).
  const opaquePort = await freePortBelowEphemeral();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bowline-tcp-'));
  fs.writeFileSync(
    path.join(dir, 'c.yaml'),
    `proxy:
  opaquePorts: [${opaquePort}]
listeners:
  - { name: detect, address: 127.0.0.1:0, defaultService: echo, detectTimeoutMs: 300 }
  - { name: banner, address: 127.0.0.1:0, defaultService: banner, detectTimeoutMs: 300 }
  - { name: opaque, address: 127.0.0.1:0, protocol: opaque, defaultService: echo }
  - { name: byport, address: 127.0.0.1:${opaquePort}, defaultService: echo }
services:
  - { name: echo, endpoints: [{ address: 127.0.0.1:${echoPort} }] }
  - { name: banner, endpoints: [{ address: 127.0.0.1:${bannerPort} }] }
`,
  );
  proxy = await startProxy(['--config', path.join(dir, 'c.yaml'), '--workers', '1']);
});

after(async () => {
  await proxy?.stop();
  await close(tcpEcho);
  await close(banner);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('non-HTTP bytes on a detecting listener are forwarded as opaque TCP', async () => {
  const payload = Buffer.from('\x00\x01binary protocol hello\r\n\r\n');
  assert.deepEqual(await exchange(proxy.ports.detect, payload, payload.length), payload);
});

test('the HTTP/2 preface is recognised and served as HTTP/2: the proxy answers with its SETTINGS', async () => {
  const preface = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);
  const got = await exchange(proxy.ports.detect, preface, 9);
  assert.ok(got.length >= 9, `${got.length} bytes back`);
  assert.equal(got[3], 4, 'a SETTINGS frame');
  assert.equal(got.readUIntBE(5, 4), 0, 'on stream 0');
  assert.ok(!got.subarray(0, 24).equals(preface.subarray(0, 24)), 'not echoed by the TCP upstream');
});

test('a TLS ClientHello is forwarded opaquely', async () => {
  const hello = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x2b, 0x03, 0x03, ...Buffer.alloc(38, 7)]);
  assert.deepEqual(await exchange(proxy.ports.detect, hello, hello.length), hello);
});

test('a server-speaks-first protocol works once the detection deadline passes', async () => {
  const t0 = Date.now();
  const got = await exchange(proxy.ports.banner, null, 12, 3000);
  assert.equal(got.toString(), '220 banner\r\n');
  const took = Date.now() - t0;
  assert.ok(took >= 250 && took < 1500, `banner after ${took} ms`);
});

test('an opaque listener and an opaque port skip detection (HTTP bytes are not parsed)', async () => {
  // Not valid HTTP: a detecting listener would answer 400; opaque forwards it untouched.
  const bad = Buffer.from('GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n');
  assert.deepEqual(await exchange(proxy.ports.opaque, bad, bad.length), bad);
  assert.deepEqual(await exchange(proxy.ports.byport, bad, bad.length), bad);
});

test('tcp metrics count opaque connections and their bytes', async () => {
  // Earlier tests' connections must have closed, so that only this one moves the counters.
  const settled = async (): Promise<string> => {
    let text = '';
    await eventually(async () => {
      text = (await admin(proxy, '/metrics')).body;
      return metricSum(text, 'tcp_open_connections') === 0;
    }, 5000, 'all connections closed');
    return text;
  };
  const before = await settled();
  const payload = Buffer.alloc(10_000, 'z');
  await exchange(proxy.ports.opaque, payload, payload.length);
  const m = await settled();
  const d = (name: string, labels: Record<string, string>): number => metricSum(m, name, labels) - metricSum(before, name, labels);
  assert.equal(d('tcp_open_total', { peer: 'src' }), 1);
  assert.equal(d('tcp_open_total', { peer: 'dst' }), 1);
  assert.equal(d('tcp_close_total', { peer: 'src' }), 1);
  assert.equal(d('tcp_read_bytes_total', { peer: 'src' }), 10_000);
  assert.equal(d('tcp_write_bytes_total', { peer: 'src' }), 10_000);
  assert.equal(d('tcp_write_bytes_total', { peer: 'dst' }), 10_000);
});
