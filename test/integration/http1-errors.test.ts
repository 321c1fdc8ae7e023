// Bad input and failing upstreams through the real proxy: request smuggling vectors get 400, heads
// too large 431, slow heads 408; connect failures 502, no endpoints 503, timeouts 504; a malformed
// upstream response 502 and never forwarded; an upstream dying mid-body aborts the client at once.
// None of it disturbs other traffic on the same proxy.

import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { admin, metricSum, type ProxyProcess, startProxy } from '../helpers/proxy-process';
import { parseResponses, rawRequest } from '../helpers/raw-client';
import { close, echoServer, freePortBelowEphemeral, rawServer } from '../helpers/upstream';

let proxy: ProxyProcess;
let echo: Awaited<ReturnType<typeof echoServer>>;
const servers: net.Server[] = [];
let dir: string;
let deadPort: number;
let echoSeen = 0;

before(async () => {
  echo = await echoServer();
  echo.server.on('request', () => echoSeen++);
  // Below the ephemeral range: no server of a test running in parallel can take it meanwhile.
  deadPort = await freePortBelowEphemeral();
  // Never answers: for timeouts.
  const silent = await rawServer(() => {});
  // Answers with a malformed status line.
  const malformed = await rawServer((s) => s.end('HTTP/1.1 2OO OK\r\ncontent-length: 2\r\n\r\nok'));
  // Smuggles: a response with both content-length and transfer-encoding.
  const clte = await rawServer((s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n'));
  // Promises 100000 bytes, sends 10, then dies.
  const dies = await rawServer((s) => {
    s.write('HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n0123456789');
    setTimeout(() => s.destroy(), 50);
  });
  // Resets before any response byte.
  const resets = await rawServer((s) => s.resetAndDestroy());
  servers.push(silent.server, malformed.server, clte.server, dies.server, resets.server);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bowline-err-'));
  const svc = (name: string, port: number): string => `  - { name: ${name}, endpoints: [{ address: 127.0.0.1:${port} }], connectTimeoutMs: 500 }\n`;
  const lst = (name: string, service: string): string => `  - { name: ${name}, address: 127.0.0.1:0, defaultService: ${service} }\n`;
  const cfg =
    'proxy:\n  http: { maxHeadBytes: 8192, headTimeoutMs: 800 }\n' +
    'listeners:\n' +
    '  - { name: main, address: 127.0.0.1:0, routes: [echo] }\n' +
    '  - { name: timeout, address: 127.0.0.1:0, routes: [slow] }\n' +
    lst('dead', 'dead') + lst('empty', 'empty') + lst('malformed', 'malformed') + lst('clte', 'clte') + lst('dies', 'dies') + lst('resets', 'resets') +
    'services:\n' +
    svc('echo', echo.port) + svc('dead', deadPort) + svc('silent', silent.port) + svc('malformed', malformed.port) +
    svc('clte', clte.port) + svc('dies', dies.port) + svc('resets', resets.port) +
    '  - { name: empty, endpoints: [] }\n' +
    'routes:\n' +
    '  - { name: echo, backendRefs: [{ name: echo }] }\n' +
    '  - { name: slow, timeoutMs: 300, backendRefs: [{ name: silent }] }\n';
  fs.writeFileSync(path.join(dir, 'bowline.yaml'), cfg);
  proxy = await startProxy(['--config', path.join(dir, 'bowline.yaml'), '--workers', '1']);
});

after(async () => {
  await proxy?.stop();
  await close(echo.server);
  for (const s of servers) await close(s);
  fs.rmSync(dir, { recursive: true, force: true });
});

async function refused(payload: string | Buffer, status: number, error: string): Promise<void> {
  // Body framing errors are found after the head went upstream; head errors never leave the proxy.
  const headError = !error.startsWith('bad-chunk');
  const before = echoSeen;
  const raw = await rawRequest(proxy.ports.main, payload);
  const [res] = parseResponses(raw.data);
  assert.equal(res?.status, status, `${JSON.stringify(payload.toString().slice(0, 80))} -> ${raw.data.toString().slice(0, 200)}`);
  assert.equal(res.headers['l5d-proxy-error'], error);
  assert.ok(raw.closed, 'connection closed after a refusal');
  if (headError) assert.equal(echoSeen, before, 'nothing reached the upstream');
}

describe('request smuggling and malformed requests', () => {
  const H = 'Host: a\r\n';
  const cases: [string, string, number, string][] = [
    ['CL with TE', `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400, 'content-length-with-transfer-encoding'],
    ['TE with CL', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`, 400, 'content-length-with-transfer-encoding'],
    ['differing duplicate CL', `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`, 400, 'duplicate-content-length'],
    ['CL list', `POST / HTTP/1.1\r\n${H}Content-Length: 5, 5\r\n\r\nhello`, 400, 'bad-content-length'],
    ['negative CL', `POST / HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`, 400, 'bad-content-length'],
    ['TE not final chunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n`, 400, 'bad-transfer-encoding'],
    ['TE identity', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: identity\r\n\r\n`, 400, 'bad-transfer-encoding'],
    ['TE chunked twice', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400, 'bad-transfer-encoding'],
    ['TE in HTTP/1.0', `POST / HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400, 'bad-transfer-encoding'],
    ['TE with tab obfuscation', `POST / HTTP/1.1\r\n${H}Transfer-Encoding:\tchunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n`, 400, 'bad-transfer-encoding'],
    ['bad chunk size', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`, 400, 'bad-chunk-size'],
    ['chunk size with trailing space', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n`, 400, 'bad-chunk-size'],
    ['bad chunk extension', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;a\x01b\r\nhello\r\n0\r\n\r\n`, 400, 'bad-chunk-extension'],
    ['chunk data overrun', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n`, 400, 'bad-chunk-framing'],
    ['bare CR in header', `GET / HTTP/1.1\r\n${H}X-A: b\rc\r\n\r\n`, 400, 'bare-cr'],
    ['bare LF line ending', `GET / HTTP/1.1\n${H}\r\n`, 400, 'bare-lf'],
    ['NUL in header value', `GET / HTTP/1.1\r\n${H}X-A: b\x00c\r\n\r\n`, 400, 'bad-header-value'],
    ['CTL in header name', `GET / HTTP/1.1\r\n${H}X\x01A: b\r\n\r\n`, 400, 'bad-header-name'],
    ['CTL in target', `GET /\x7f HTTP/1.1\r\n${H}\r\n`, 400, 'bad-request-line'],
    ['obs-fold', `GET / HTTP/1.1\r\n${H}X-A: b\r\n c\r\n\r\n`, 400, 'obs-fold'],
    ['whitespace before colon', `GET / HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\n\r\n`, 400, 'whitespace-before-colon'],
    ['missing Host', 'GET / HTTP/1.1\r\nX-A: b\r\n\r\n', 400, 'missing-host'],
    ['duplicate Host', `GET / HTTP/1.1\r\n${H}Host: b\r\n\r\n`, 400, 'duplicate-host'],
    ['bad version', `GET / HTTP/1.x\r\n${H}\r\n`, 400, 'bad-version'],
    ['HTTP/2.0 request line', `GET / HTTP/2.0\r\n${H}\r\n`, 505, 'version-not-supported'],
    ['double space in request line', `GET  / HTTP/1.1\r\n${H}\r\n`, 400, 'bad-request-line'],
  ];
  for (const [name, payload, status, error] of cases) {
    test(`${name} -> ${status} ${error}`, () => refused(payload, status, error));
  }

  test('oversized head -> 431', () => refused(`GET / HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(10_000)}\r\n\r\n`, 431, 'head-too-large'));
  test('too many headers -> 431', () => refused(`GET / HTTP/1.1\r\n${H}${'X-A: b\r\n'.repeat(200)}\r\n`, 431, 'too-many-headers'));

  test('identical duplicate content-length is folded into one', async () => {
    const raw = await rawRequest(proxy.ports.main, 'POST /dup HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello');
    const [res] = parseResponses(raw.data);
    assert.equal(res.status, 200);
    const seen = JSON.parse(res.body.toString());
    assert.equal(seen.bodyLength, 5);
    assert.equal(seen.headers['content-length'], '5');
  });

  test('a slow head (slowloris) gets 408 and the connection is closed', async () => {
    const parts = ['GET / HTTP/1.1\r\n', 'Host: a\r\n', 'X-1: a\r\n', 'X-2: a\r\n', 'X-3: a\r\n', 'X-4: a\r\n', 'X-5: a\r\n'];
    const t0 = Date.now();
    const raw = await rawRequest(proxy.ports.main, parts, 5000, 300);
    const [res] = parseResponses(raw.data);
    assert.equal(res.status, 408);
    assert.ok(raw.closed);
    assert.ok(Date.now() - t0 < 2500, `took ${Date.now() - t0} ms`);
  });

  test('an idle connection with a partial request line is also timed out', async () => {
    const raw = await rawRequest(proxy.ports.main, 'GET /', 3000);
    assert.ok(raw.closed);
    assert.equal(parseResponses(raw.data)[0].status, 408);
  });
});

describe('upstream failures', () => {
  async function get(port: number): Promise<{ status: number; error: string | undefined; closed: boolean }> {
    const raw = await rawRequest(port, 'GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 4000);
    const [res] = parseResponses(raw.data);
    return { status: res?.status ?? 0, error: res?.headers['l5d-proxy-error'], closed: raw.closed };
  }

  test('connect refused -> 502 connect-failed', async () => {
    assert.deepEqual(await get(proxy.ports.dead), { status: 502, error: 'connect-failed', closed: true });
  });

  test('no endpoints -> 503 no-endpoints', async () => {
    assert.deepEqual(await get(proxy.ports.empty), { status: 503, error: 'no-endpoints', closed: true });
  });

  test('route timeout -> 504 request-timeout', async () => {
    const t0 = Date.now();
    assert.deepEqual(await get(proxy.ports.timeout), { status: 504, error: 'request-timeout', closed: true });
    assert.ok(Date.now() - t0 < 1500);
  });

  test('malformed upstream status line -> 502, never forwarded', async () => {
    const raw = await rawRequest(proxy.ports.malformed, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    assert.doesNotMatch(raw.data.toString(), /2OO/);
    const [res] = parseResponses(raw.data);
    assert.equal(res.status, 502);
    assert.equal(res.headers['l5d-proxy-error'], 'bad-upstream-response');
  });

  test('upstream response with both content-length and transfer-encoding -> 502', async () => {
    const res = await get(proxy.ports.clte);
    assert.equal(res.status, 502);
  });

  test('upstream reset before responding -> 502 upstream-reset', async () => {
    const res = await get(proxy.ports.resets);
    assert.equal(res.status, 502);
    assert.equal(res.error, 'upstream-reset');
  });

  test('upstream dying mid-body aborts the client connection at once', async () => {
    const t0 = Date.now();
    const raw = await rawRequest(proxy.ports.dies, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n', 3000);
    assert.ok(raw.closed, 'client connection closed');
    assert.ok(Date.now() - t0 < 1000, `closed after ${Date.now() - t0} ms`);
    const text = raw.data.toString();
    assert.match(text, /^HTTP\/1\.1 200/);
    assert.ok(raw.data.length < 200, 'only what the upstream sent');
  });

  test('failures are counted as failures with their cause; other traffic was unaffected', async () => {
    const r = await rawRequest(proxy.ports.main, 'GET /still-fine HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    assert.equal(parseResponses(r.data)[0].status, 200);
    const m = (await admin(proxy, '/metrics')).body;
    assert.ok(metricSum(m, 'response_total', { status_code: '502', classification: 'failure' }) >= 4);
    assert.ok(metricSum(m, 'response_total', { status_code: '503', classification: 'failure' }) >= 1);
    assert.ok(metricSum(m, 'response_total', { status_code: '504', classification: 'failure' }) >= 1);
    assert.ok(metricSum(m, 'response_errors_total', { error: 'connect-failed' }) >= 1);
    assert.ok(metricSum(m, 'http_protocol_errors_total', { error: 'content-length-with-transfer-encoding' }) >= 2);
    assert.equal(metricSum(m, 'inflight_requests'), 0);
  });
});
