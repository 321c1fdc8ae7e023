// Retries through the real proxy: failed attempts go again to another endpoint with the request
// replayed byte for byte (bodies up to 64 KiB are buffered), only where the method or the policy
// makes that safe, and never beyond the retry budget, even in a full outage.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import { TempConfig } from '../helpers/config-file';
import { count, runRequests } from '../helpers/load';
import { admin, metricSum, type ProxyProcess, startProxy } from '../helpers/proxy-process';
import { close, listen, readBodyDigest } from '../helpers/upstream';

/** An upstream that answers `status` after reading the whole body, with the body's length and hash. */
async function hashServer(name: string, status: () => number): Promise<{ server: http.Server; port: number; seen: string[] }> {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    readBodyDigest(req, (n, sha256) => {
      const digest = `${req.method} ${n} ${sha256.slice(0, 16)}`;
      seen.push(digest);
      res.writeHead(status(), { 'x-upstream': name, 'content-type': 'text/plain' });
      res.end(digest);
    });
  });
  server.keepAliveTimeout = 30_000;
  return { server, port: await listen(server), seen };
}

let bad: Awaited<ReturnType<typeof hashServer>>;
let good: Awaited<ReturnType<typeof hashServer>>;
let badStatus = 503;
const servers: http.Server[] = [];

before(async () => {
  bad = await hashServer('bad', () => badStatus);
  good = await hashServer('good', () => 200);
  servers.push(bad.server, good.server);
});

after(async () => {
  for (const s of servers) await close(s);
});

/** A proxy with one service over `ports` and one route with `retry` (YAML flow mapping). */
async function proxyWith(ports: number[], retry: string, service = ''): Promise<{ p: ProxyProcess; cfg: TempConfig }> {
  const cfg = new TempConfig(`
listeners:
  - { name: out, address: 127.0.0.1:0, routes: [r] }
services:
  - name: svc
    endpoints: [${ports.map((p) => `{ address: 127.0.0.1:${p} }`).join(', ')}]
    balancer: round-robin
    failureAccrual: { mode: off }
${service}
routes:
  - name: r
    backendRefs: [{ name: svc }]
    retry: ${retry}
`);
  return { p: await startProxy(['--config', cfg.file, '--workers', '1']), cfg };
}

function post(port: number, body: Buffer, chunked = false): Promise<{ status: number; text: string; upstream: string }> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': body.length };
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('latin1');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, upstream: String(res.headers['x-upstream'] ?? '') }));
    });
    req.on('error', reject);
    if (chunked) {
      // Several chunks, so that the body arrives over more than one read.
      for (let i = 0; i < body.length; i += 8192) req.write(body.subarray(i, i + 8192));
      req.end();
    } else req.end(body);
  });
}

function digestOf(body: Buffer): string {
  return `POST ${body.length} ${createHash('sha256').update(body).digest('hex').slice(0, 16)}`;
}

test('a GET that gets 503 is retried on another endpoint: the client sees only 200s', { timeout: 30_000 }, async () => {
  badStatus = 503;
  const { p, cfg } = await proxyWith([bad.port, good.port], '{ on: [gateway-error], maxRetries: 2 }');
  try {
    const t = await runRequests(p.ports.out!, 100, { concurrency: 2 });
    assert.equal(count(t.statuses, 200), 100, t.failures.join('; '));
    const m = (await admin(p, '/metrics')).body;
    assert.ok(metricSum(m, 'retry_requests_total', { route: 'r' }) >= 40, 'about half the first attempts hit the 503 endpoint');
    // One request each in the route's metrics, whatever the attempts.
    assert.equal(metricSum(m, 'request_total', { route: 'r' }), 100);
  } finally {
    await p.stop();
    cfg.remove();
  }
});

test('a POST is not retried after it reached the upstream, unless the policy allows non-idempotent retries', { timeout: 30_000 }, async () => {
  badStatus = 503;
  const body = Buffer.alloc(40_000, 7);
  const strict = await proxyWith([bad.port, good.port], '{ on: [gateway-error], maxRetries: 2 }');
  try {
    const answers = await Promise.all(Array.from({ length: 10 }, () => post(strict.p.ports.out!, body)));
    assert.ok(answers.some((a) => a.status === 503), 'some POSTs were answered by the 503 endpoint and not retried');
  } finally {
    await strict.p.stop();
    strict.cfg.remove();
  }
  const lax = await proxyWith([bad.port, good.port], '{ on: [gateway-error], maxRetries: 2, nonIdempotent: true }');
  try {
    good.seen.length = 0;
    for (const chunked of [false, true]) {
      for (let i = 0; i < 6; i++) {
        const b = Buffer.from(`${i}-${chunked}-`.repeat(3000 + i * 100));
        const a = await post(lax.p.ports.out!, b, chunked);
        assert.equal(a.status, 200, a.text);
        // The replayed body arrived whole and unchanged (chunked framing included).
        assert.equal(a.text, digestOf(b));
      }
    }
    const m = (await admin(lax.p, '/metrics')).body;
    assert.ok(metricSum(m, 'retry_requests_total', { route: 'r' }) >= 3);
  } finally {
    await lax.p.stop();
    lax.cfg.remove();
  }
});

test('bodies larger than maxBodyBytes are not buffered, so not retried', { timeout: 30_000 }, async () => {
  badStatus = 503;
  const { p, cfg } = await proxyWith([bad.port], '{ on: [gateway-error], maxRetries: 2, nonIdempotent: true, maxBodyBytes: 1024 }');
  try {
    const before = bad.seen.length;
    const a = await post(p.ports.out!, Buffer.alloc(4096, 1));
    assert.equal(a.status, 503);
    assert.equal(bad.seen.length - before, 1, 'one attempt only');
    const small = await post(p.ports.out!, Buffer.alloc(512, 1));
    assert.equal(small.status, 503);
    assert.equal(bad.seen.length - before, 1 + 3, 'a small body is retried twice');
  } finally {
    await p.stop();
    cfg.remove();
  }
});

test('a refused connection is retried with the request body by the default policy', { timeout: 30_000 }, async () => {
  // A port with nothing listening: connections are refused.
  const dead = http.createServer();
  const deadPort = await listen(dead);
  await close(dead);
  const cfg = new TempConfig(`
listeners:
  - { name: out, address: 127.0.0.1:0, routes: [r] }
services:
  - name: svc
    endpoints: [{ address: 127.0.0.1:${deadPort} }, { address: 127.0.0.1:${good.port} }]
    balancer: round-robin
routes:
  - { name: r, backendRefs: [{ name: svc }] }
`);
  const p = await startProxy(['--config', cfg.file, '--workers', '1']);
  try {
    for (let i = 0; i < 6; i++) {
      const b = Buffer.alloc(20_000 + i, 65 + i);
      const a = await post(p.ports.out!, b);
      assert.equal(a.status, 200, a.text);
      assert.equal(a.text, digestOf(b));
    }
  } finally {
    await p.stop();
    cfg.remove();
  }
});

test('in a full outage the retry budget keeps the upstream load within 1.2x the requests', { timeout: 60_000 }, async () => {
  badStatus = 503;
  const other = await hashServer('bad2', () => 503);
  servers.push(other.server);
  // No floor (minPerSecond 0), so that the 20% ratio alone is measured; up to 3 retries each.
  const { p, cfg } = await proxyWith([bad.port, other.port], '{ on: [5xx], maxRetries: 3, backoff: { baseMs: 1, maxMs: 2 }, budget: { ratio: 0.2, minPerSecond: 0 } }');
  try {
    const before = bad.seen.length + other.seen.length;
    const n = 300;
    const t = await runRequests(p.ports.out!, n, { concurrency: 4 });
    assert.equal(count(t.statuses, 503), n);
    const attempts = bad.seen.length + other.seen.length - before;
    assert.ok(attempts <= n * 1.2 + 1, `upstream saw ${attempts} attempts for ${n} requests`);
    assert.ok(attempts >= n * 1.15, `the budget still allows ~20% retries: ${attempts}`);
    const m = (await admin(p, '/metrics')).body;
    assert.ok(metricSum(m, 'retry_budget_exhausted_total', { route: 'r' }) > 0);
  } finally {
    await p.stop();
    cfg.remove();
  }
});
