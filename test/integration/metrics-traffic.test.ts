// Metrics after known traffic through 2 workers: requests with known outcomes (200 and 404 from the
// upstream, 503 from a service with no endpoints) on a known number of client connections must show
// up exactly in the merged request/response/latency counters, the TCP counters of both peers and the
// byte counters (checked against the bytes the clients and the upstream saw), with nothing left in flight.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { configYaml, TempConfig } from '../helpers/config-file';
import { HttpConn } from '../helpers/http-conn';
import { eventually, metricSum, parseMetrics, startProxy, type ProxyProcess } from '../helpers/proxy-process';
import { scrape, workerConnections } from '../helpers/admin-probe';
import { scriptedUpstream, type ScriptedUpstream } from '../helpers/scripted-upstream';

const KEEP_ALIVE = 8;
const OK = 20;
const NOT_FOUND = 7;
const UNAVAILABLE = 5;
const CONNECTIONS = KEEP_ALIVE + UNAVAILABLE;

describe('metrics after known traffic (2 workers)', { timeout: 60_000 }, () => {
  let up: ScriptedUpstream;
  let cfg: TempConfig;
  let proxy: ProxyProcess;

  before(async () => {
    up = await scriptedUpstream('up');
    cfg = new TempConfig(
      configYaml({
        listeners: [{ name: 'main', routes: ['none', 'all'] }],
        services: [
          { name: 'web', ports: [up.port] },
          { name: 'empty', ports: [] },
        ],
        routes: [
          { name: 'none', backend: 'empty', pathPrefix: '/none' },
          { name: 'all', backend: 'web' },
        ],
      }),
    );
    proxy = await startProxy(['--workers', '2', '--config', cfg.file]);
  });

  after(async () => {
    const code = await proxy?.stop();
    await up?.close();
    cfg?.remove();
    assert.equal(code, 0, proxy?.stderr());
  });

  it('counts requests, responses, latency, connections and bytes exactly', async () => {
    // Connections opened together are spread over both workers, so the counters are merged.
    const conns = await Promise.all(Array.from({ length: KEEP_ALIVE }, () => HttpConn.connect(proxy.ports.main)));
    const plan: [string, number][] = [
      ...Array.from({ length: OK }, (_, i): [string, number] => [`/ok/${i}`, 200]),
      ...Array.from({ length: NOT_FOUND }, (_, i): [string, number] => [`/status/404?i=${i}`, 404]),
    ];
    try {
      // Request i goes on connection i % KEEP_ALIVE; each connection sends its share in order.
      await Promise.all(
        conns.map(async (c, ci) => {
          for (let i = ci; i < plan.length; i += KEEP_ALIVE) {
            const [path, status] = plan[i];
            const r = await c.request(path, { host: 'svc.test' });
            assert.equal(r.status, status, `${path}: ${r.body}`);
          }
        }),
      );
      // Each 503 is the first request of its connection (see the next test for why).
      const single = await Promise.all(Array.from({ length: UNAVAILABLE }, () => HttpConn.connect(proxy.ports.main)));
      conns.push(...single);
      await Promise.all(
        single.map(async (c, i) => {
          const r = await c.request(`/none/${i}`, { host: 'svc.test' });
          assert.equal(r.status, 503, r.body);
          assert.equal(r.headers['l5d-proxy-error'], 'no-endpoints');
        }),
      );
      const during = await scrape(proxy);
      const w = workerConnections(during);
      assert.ok((w.get(0) ?? 0) > 0 && (w.get(1) ?? 0) > 0, `both workers carried connections: ${[...w]}`);
      assert.equal((w.get(0) ?? 0) + (w.get(1) ?? 0), CONNECTIONS);
      assert.equal(metricSum(during, 'tcp_open_connections', { peer: 'src' }), CONNECTIONS);
    } finally {
      for (const c of conns) c.close();
    }
    await eventually(
      async () => metricSum(await scrape(proxy), 'tcp_close_total', { peer: 'src' }) === CONNECTIONS,
      5000,
      'the proxy to count the client connections closed',
    );
    const text = await scrape(proxy);
    const samples = parseMetrics(text);
    const sum = (name: string, labels: Record<string, string> = {}): number => metricSum(text, name, labels);

    // Requests and responses.
    const total = OK + NOT_FOUND + UNAVAILABLE;
    assert.equal(sum('request_total'), total);
    assert.equal(sum('request_total', { route: 'all', backend: 'web' }), OK + NOT_FOUND);
    assert.equal(sum('request_total', { route: 'none', backend: 'empty' }), UNAVAILABLE);
    assert.equal(sum('request_total', { authority: 'svc.test' }), total);
    assert.equal(sum('response_total'), total);
    assert.equal(sum('response_total', { status_code: '200', classification: 'success' }), OK);
    assert.equal(sum('response_total', { status_code: '404', classification: 'success' }), NOT_FOUND);
    assert.equal(sum('response_total', { status_code: '503', classification: 'failure' }), UNAVAILABLE);
    assert.equal(sum('response_total', { classification: 'failure' }), UNAVAILABLE);
    assert.equal(sum('response_errors_total', { status_code: '503', error: 'no-endpoints' }), UNAVAILABLE);

    // Latency histogram: per status, _count and the +Inf bucket equal the responses, buckets are
    // cumulative, and the sum is plausible for a local upstream.
    for (const [status, n] of [['200', OK], ['404', NOT_FOUND], ['503', UNAVAILABLE]] as const) {
      assert.equal(sum('response_latency_ms_count', { status_code: status }), n, `latency count for ${status}`);
      assert.equal(sum('response_latency_ms_bucket', { status_code: status, le: '+Inf' }), n, `+Inf bucket for ${status}`);
      const buckets = samples
        .filter((s) => s.name === 'response_latency_ms_bucket' && s.labels.status_code === status)
        .map((s) => s.value);
      for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i] >= buckets[i - 1], `buckets of ${status} are cumulative`);
      const ms = sum('response_latency_ms_sum', { status_code: status });
      assert.ok(ms > 0 && ms < n * 5000, `latency sum of ${status}: ${ms} ms`);
      // Percentiles from the hdr histograms merged across both workers: ordered, and inside the
      // range the buckets allow.
      const q = (x: string): number => sum('response_latency_percentile_ms', { status_code: status, quantile: x });
      assert.ok(q('0.5') > 0 && q('0.5') <= q('0.9') && q('0.9') <= q('0.99') && q('0.99') <= q('0.999'), `percentiles of ${status}`);
      assert.ok(q('0.999') <= ms, `p99.9 of ${status} within the sum`);
    }
    assert.equal(sum('inflight_requests'), 0);

    // Client side (peer="src"): exactly our connections and our bytes.
    const sentByClients = conns.reduce((a, c) => a + c.bytesSent, 0);
    const receivedByClients = conns.reduce((a, c) => a + c.bytesReceived, 0);
    assert.equal(sum('tcp_open_total', { peer: 'src' }), CONNECTIONS);
    assert.equal(sum('tcp_close_total', { peer: 'src' }), CONNECTIONS);
    assert.equal(sum('tcp_open_connections', { peer: 'src' }), 0);
    assert.equal(sum('tcp_read_bytes_total', { peer: 'src' }), sentByClients, 'bytes read from clients');
    assert.equal(sum('tcp_write_bytes_total', { peer: 'src' }), receivedByClients, 'bytes written to clients');

    // Upstream side (peer="dst"): pooled connections, at least one per worker that forwarded, at
    // most one per forwarded request; byte counts match what the upstream saw.
    const dstOpened = sum('tcp_open_total', { peer: 'dst' });
    assert.equal(dstOpened, up.connections, 'dst connections opened = connections the upstream accepted');
    assert.ok(dstOpened >= 1 && dstOpened <= OK + NOT_FOUND, `dst connections opened: ${dstOpened}`);
    assert.equal(sum('tcp_close_total', { peer: 'dst' }) + sum('tcp_open_connections', { peer: 'dst' }), dstOpened);
    const upBytes = up.bytes();
    assert.equal(sum('tcp_write_bytes_total', { peer: 'dst' }), upBytes.read, 'bytes written to the upstream');
    assert.equal(sum('tcp_read_bytes_total', { peer: 'dst' }), upBytes.written, 'bytes read from the upstream');
    // Heads are forwarded with hop-by-hop fields rewritten, so the two sides differ a little.
    const near = (x: number, y: number): boolean => x > y / 2 && x < y * 2;
    assert.ok(near(upBytes.read, sentByClients), `request bytes: upstream read ${upBytes.read}, clients sent ${sentByClients}`);
    assert.ok(near(upBytes.written, receivedByClients), `response bytes: upstream wrote ${upBytes.written}, clients read ${receivedByClients}`);
    assert.equal(up.requests.length, OK + NOT_FOUND, 'the 503s never reached the upstream');

    // Per-worker gauges are present for both workers.
    const elu = samples.filter((s) => s.name === 'worker_event_loop_utilization').map((s) => s.labels.worker).sort();
    assert.deepEqual(elu, ['0', '1']);
  });

  // Regression: a local reply before dispatch (no endpoints, no route) used to be recorded on the
  // response series of the previous exchange of the same connection.
  it('counts a local 503 after a forwarded request on the same connection in its own series', async () => {
    const before = await scrape(proxy);
    const c = await HttpConn.connect(proxy.ports.main);
    try {
      assert.equal((await c.request('/ok/again', { host: 'svc.test' })).status, 200);
      assert.equal((await c.request('/none/again', { host: 'svc.test' })).status, 503);
    } finally {
      c.close();
    }
    const after = await scrape(proxy);
    const delta = (name: string, labels: Record<string, string>): number => metricSum(after, name, labels) - metricSum(before, name, labels);
    assert.equal(delta('response_total', { route: 'all', status_code: '200', classification: 'success' }), 1);
    assert.equal(delta('response_total', { route: 'all', classification: 'failure' }), 0, 'the 503 is not charged to the previous route');
    assert.equal(delta('response_total', { route: 'none', status_code: '503', classification: 'failure' }), 1);
    assert.equal(delta('response_latency_ms_count', { route: 'none', status_code: '503' }), 1);
  });
});
