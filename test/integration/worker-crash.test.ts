// A worker thread that dies of an uncaught error is restarted while the other keeps serving: clients
// in a steady request loop see at most the request that was on the dead worker fail, never one on a
// connection made after the crash; worker_restarts_total counts it, both workers run and ack the
// config again, the restarted one accepts its share, and /ready comes back to 200.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HttpConn } from '../helpers/http-conn';
import { admin, eventually, metricSum, startProxy, type ProxyProcess } from '../helpers/proxy-process';
import { allAcked, configDump, scrape, sleep, workerConnections } from '../helpers/admin-probe';
import { scriptedUpstream, type ScriptedUpstream } from '../helpers/scripted-upstream';

const CLIENTS = 6;

interface Failure {
  client: number;
  connOpenedAtMs: number;
  atMs: number;
  error: string;
}

describe('worker crash and restart (2 workers)', { timeout: 60_000 }, () => {
  let up: ScriptedUpstream;
  let proxy: ProxyProcess;
  let proxyStartedAt = 0;

  before(async () => {
    up = await scriptedUpstream('up');
    proxy = await startProxy(['--workers', '2', '--listen', '127.0.0.1:0', '--to', `127.0.0.1:${up.port}`], {
      env: { BOWLINE_TEST_HOOKS: '1' },
    });
    proxyStartedAt = Date.now();
  });

  after(async () => {
    const code = await proxy?.stop();
    await up?.close();
    assert.equal(code, 0, proxy?.stderr());
  });

  it('keeps serving while worker 0 is restarted', async () => {
    const port = proxy.ports.proxy;
    const failures: Failure[] = [];
    const successes: number[] = [];
    let stop = false;
    let reconnectErrors = 0;

    // Each client keeps one keep-alive connection and requests in a loop; a failed request
    // discards its connection and the client reconnects.
    const loops = Array.from({ length: CLIENTS }, async (_, client) => {
      let conn: HttpConn | null = null;
      while (!stop) {
        if (conn === null || conn.closed) {
          try {
            conn = await HttpConn.connect(port);
          } catch {
            reconnectErrors++;
            await sleep(10);
            continue;
          }
        }
        try {
          const r = await conn.request('/', { timeoutMs: 5000 });
          assert.equal(r.status, 200, r.body);
          successes.push(Date.now());
        } catch (e) {
          failures.push({ client, connOpenedAtMs: conn.openedAtMs, atMs: Date.now(), error: (e as Error).message });
          conn.close();
          conn = null;
        }
      }
      conn?.close();
    });

    try {
      await eventually(() => successes.length >= 50, 5000, 'the request loops to run');
      // The test means something only when the worker to crash holds some of the connections.
      const before = workerConnections(await scrape(proxy));
      assert.ok((before.get(0) ?? 0) > 0 && (before.get(1) ?? 0) > 0, `both workers hold connections: ${[...before]}`);
      assert.equal(failures.length, 0, JSON.stringify(failures));
      // A worker that ran for a while is restarted at once (a quick one after a back-off): take
      // the usual path.
      await sleep(Math.max(0, proxyStartedAt + 1200 - Date.now()));

      // /ready while the worker is down and until its successor acked the config: sampled often.
      const readySeen = new Set<number>();
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          readySeen.add((await admin(proxy, '/ready')).status);
          await sleep(5);
        }
      })();

      const crash = await admin(proxy, '/debug/crash?worker=0', 'POST');
      assert.equal(crash.status, 202, crash.body);
      await eventually(() => /worker 0 exited/.test(proxy.stderr()), 5000, 'worker 0 to exit');
      const exitedAt = Date.now();
      const servedAtExit = successes.length;

      // Requests keep succeeding on worker 1 while worker 0 is down or starting.
      await eventually(() => successes.length >= servedAtExit + 20, 5000, 'requests to keep succeeding after the crash');

      await eventually(
        async () => {
          const text = await scrape(proxy);
          return metricSum(text, 'worker_restarts_total') === 1 && metricSum(text, 'workers_running') === 2;
        },
        10_000,
        'worker_restarts_total 1 and two workers answering the scrape',
      );
      await eventually(async () => allAcked(await configDump(proxy), 'cli-1', 2), 10_000, 'both workers running with the config acked');
      await eventually(async () => (await admin(proxy, '/ready')).status === 200, 5000, '/ready 200');
      sampling = false;
      await sampler;
      assert.ok(readySeen.has(503), `/ready was 503 while a worker was missing (seen: ${[...readySeen]})`);
      const dump = await configDump(proxy);
      assert.deepEqual(
        dump.workers.map((w) => [w.index, w.running, w.restarts]),
        [
          [0, true, 1],
          [1, true, 0],
        ],
      );

      // The restarted worker accepts its share of new connections.
      const fresh = await Promise.all(Array.from({ length: 8 }, () => HttpConn.connect(port)));
      try {
        for (const c of fresh) assert.equal((await c.request('/')).status, 200);
        const w = workerConnections(await scrape(proxy));
        assert.ok((w.get(0) ?? 0) > 0, `restarted worker 0 accepts connections: ${[...w]}`);
      } finally {
        for (const c of fresh) c.close();
      }

      const servedAtReady = successes.length;
      await eventually(() => successes.length >= servedAtReady + 50, 5000, 'requests after the restart');

      stop = true;
      await Promise.all(loops);

      // Only requests that were on the dead worker may fail: at most one per client connection
      // open at the crash, and none on a connection opened after the worker was gone.
      assert.ok(failures.length <= CLIENTS, `at most one failure per client: ${JSON.stringify(failures)}`);
      for (const f of failures) {
        assert.ok(f.connOpenedAtMs <= exitedAt, `a connection opened after the crash failed: ${JSON.stringify(f)}`);
      }
      assert.equal(reconnectErrors, 0, 'no new connection was refused');
      const text = await scrape(proxy);
      assert.equal(metricSum(text, 'worker_restarts_total'), 1);
    } finally {
      stop = true;
      await Promise.allSettled(loops);
    }
  });
});
