// Timeouts and the balancer queue through the real proxy: an expired attempt or exchange gets 504 and
// its upstream request is cancelled (the upstream sees the connection close); a per-attempt timeout
// is retried on another endpoint; a stalled stream is cut by the idle timeout; a full queue sheds
// with 503 and a request that waits too long fails fast with 504.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import { TempConfig } from '../helpers/config-file';
import { count, runRequests } from '../helpers/load';
import { admin, eventually, metricSum, type ProxyProcess, startProxy } from '../helpers/proxy-process';
import { close, listen } from '../helpers/upstream';

interface Upstream {
  server: http.Server;
  port: number;
  /** Requests whose response was cut off before it ended (the proxy cancelled them). */
  cancelled: number;
  received: number;
}

/** An upstream that waits `delayMs` before answering; with `stallAfterHead`, it sends the head and part of the body, then stalls. */
async function slowServer(name: string, delayMs: number, stallAfterHead = false): Promise<Upstream> {
  const u: Upstream = { server: http.createServer(), port: 0, cancelled: 0, received: 0 };
  u.server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    u.received++;
    res.on('close', () => {
      if (!res.writableFinished) u.cancelled++;
    });
    if (stallAfterHead) {
      res.writeHead(200, { 'content-length': '100', 'x-upstream': name });
      res.write('partial');
      return; // never finishes
    }
    const t = setTimeout(() => {
      res.writeHead(200, { 'x-upstream': name, 'content-type': 'text/plain' });
      res.end(name);
    }, delayMs);
    res.on('close', () => clearTimeout(t));
  });
  u.server.keepAliveTimeout = 30_000;
  u.port = await listen(u.server);
  return u;
}

let slow: Upstream;
let fast: Upstream;
let stall: Upstream;

before(async () => {
  slow = await slowServer('slow', 2000);
  fast = await slowServer('fast', 0);
  stall = await slowServer('stall', 0, true);
});

after(async () => {
  for (const u of [slow, fast, stall]) await close(u.server);
});

async function proxyFor(yaml: string): Promise<{ p: ProxyProcess; cfg: TempConfig }> {
  const cfg = new TempConfig(yaml);
  return { p: await startProxy(['--config', cfg.file, '--workers', '1']), cfg };
}

function get(port: number, path = '/'): Promise<{ status: number; error: string; body: string; ms: number; aborted: boolean }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (d: string) => (body += d));
      const done = (aborted: boolean): void =>
        resolve({ status: res.statusCode ?? 0, error: String(res.headers['l5d-proxy-error'] ?? ''), body, ms: Date.now() - t0, aborted });
      res.on('end', () => done(false));
      res.on('error', () => done(true));
      res.on('aborted', () => done(true));
    });
    req.on('error', () => resolve({ status: 0, error: 'socket', body: '', ms: Date.now() - t0, aborted: true }));
  });
}

test('a response timeout answers 504 and cancels the upstream request', { timeout: 30_000 }, async () => {
  const { p, cfg } = await proxyFor(`
listeners: [{ name: out, address: 127.0.0.1:0, routes: [r] }]
services: [{ name: svc, endpoints: [{ address: 127.0.0.1:${slow.port} }], retry: { maxRetries: 0 } }]
routes: [{ name: r, backendRefs: [{ name: svc }], responseTimeoutMs: 300 }]
`);
  try {
    const before = slow.cancelled;
    const r = await get(p.ports.out!);
    assert.equal(r.status, 504);
    assert.equal(r.error, 'response-timeout');
    assert.ok(r.ms >= 250 && r.ms < 1500, `answered after ${r.ms} ms`);
    // The upstream's request was cut off: its work is cancelled, not left to finish for nobody.
    await eventually(() => slow.cancelled > before, 3000, 'the upstream request cancelled');
  } finally {
    await p.stop();
    cfg.remove();
  }
});

test('the request timeout (timeoutMs) covers the whole exchange and cancels the upstream', { timeout: 30_000 }, async () => {
  const { p, cfg } = await proxyFor(`
listeners: [{ name: out, address: 127.0.0.1:0, routes: [r] }]
services: [{ name: svc, endpoints: [{ address: 127.0.0.1:${slow.port} }] }]
routes: [{ name: r, backendRefs: [{ name: svc }], timeoutMs: 400 }]
`);
  try {
    const before = slow.cancelled;
    const r = await get(p.ports.out!);
    assert.equal(r.status, 504);
    assert.equal(r.error, 'request-timeout');
    await eventually(() => slow.cancelled > before, 3000, 'the upstream request cancelled');
  } finally {
    await p.stop();
    cfg.remove();
  }
});

test('a per-attempt timeout is retried on another endpoint within the request deadline', { timeout: 30_000 }, async () => {
  const { p, cfg } = await proxyFor(`
listeners: [{ name: out, address: 127.0.0.1:0, routes: [r] }]
services:
  - name: svc
    endpoints: [{ address: 127.0.0.1:${slow.port} }, { address: 127.0.0.1:${fast.port} }]
    balancer: round-robin
routes:
  - name: r
    backendRefs: [{ name: svc }]
    timeoutMs: 3000
    responseTimeoutMs: 200
    retry: { on: [gateway-error], maxRetries: 1 }
`);
  try {
    const results = await Promise.all([get(p.ports.out!), get(p.ports.out!), get(p.ports.out!), get(p.ports.out!)]);
    for (const r of results) {
      assert.equal(r.status, 200, r.error);
      assert.equal(r.body, 'fast');
    }
    const m = (await admin(p, '/metrics')).body;
    assert.ok(metricSum(m, 'retry_requests_total', { route: 'r' }) >= 1);
  } finally {
    await p.stop();
    cfg.remove();
  }
});

test('the idle timeout cuts a response stream that stalls, and cancels the upstream', { timeout: 30_000 }, async () => {
  const { p, cfg } = await proxyFor(`
listeners: [{ name: out, address: 127.0.0.1:0, routes: [r] }]
services: [{ name: svc, endpoints: [{ address: 127.0.0.1:${stall.port} }], idleTimeoutMs: 300 }]
routes: [{ name: r, backendRefs: [{ name: svc }] }]
`);
  try {
    const before = stall.cancelled;
    const r = await get(p.ports.out!);
    assert.equal(r.status, 200);
    assert.ok(r.aborted, 'the client sees the response cut short');
    assert.equal(r.body, 'partial');
    assert.ok(r.ms < 2000, `cut after ${r.ms} ms`);
    await eventually(() => stall.cancelled > before, 3000, 'the upstream stream cancelled');
  } finally {
    await p.stop();
    cfg.remove();
  }
});

test('a full balancer queue sheds with 503, and a request that waits too long fails fast with 504', { timeout: 30_000 }, async () => {
  const shed = await proxyFor(`
listeners: [{ name: out, address: 127.0.0.1:0, routes: [r] }]
services:
  - name: svc
    endpoints: [{ address: 127.0.0.1:${slow.port} }]
    queue: { maxInFlight: 1, capacity: 1, failFastMs: 10000 }
routes: [{ name: r, backendRefs: [{ name: svc }] }]
`);
  try {
    const t = await runRequests(shed.p.ports.out!, 3, { concurrency: 3 });
    // One in flight, one waiting (then served), one shed.
    assert.equal(count(t.statuses, 200), 2, t.failures.join('; '));
    assert.equal(count(t.statuses, 503), 1);
    assert.match(t.failures.join(';'), /503 load-shed/);
    const m = (await admin(shed.p, '/metrics')).body;
    assert.equal(metricSum(m, 'balancer_queue_shed_total', { backend: 'svc' }), 1);
  } finally {
    await shed.p.stop();
    shed.cfg.remove();
  }

  const ff = await proxyFor(`
listeners: [{ name: out, address: 127.0.0.1:0, routes: [r] }]
services:
  - name: svc
    endpoints: [{ address: 127.0.0.1:${slow.port} }]
    queue: { maxInFlight: 1, capacity: 10, failFastMs: 300 }
routes: [{ name: r, backendRefs: [{ name: svc }] }]
`);
  try {
    const [first, second, third] = await Promise.all([get(ff.p.ports.out!), get(ff.p.ports.out!), get(ff.p.ports.out!)]);
    assert.equal(first!.status, 200);
    for (const r of [second!, third!]) {
      assert.equal(r.status, 504);
      assert.equal(r.error, 'fail-fast');
      assert.ok(r.ms < 1500, `failed after ${r.ms} ms`);
    }
    const m = (await admin(ff.p, '/metrics')).body;
    assert.ok(metricSum(m, 'balancer_queue_failfast_total', { backend: 'svc' }) >= 2);
    // A slot is free again: the service serves (and stops failing fast).
    assert.equal((await get(ff.p.ports.out!)).status, 200);
  } finally {
    await ff.p.stop();
    ff.cfg.remove();
  }
});
