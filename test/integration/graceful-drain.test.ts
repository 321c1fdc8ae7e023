// SIGTERM drains: the proxy stops accepting at once (new connections are refused), idle keep-alive
// connections are closed, requests in flight finish with their real response and `connection:
// close`, and the process exits 0 within the grace period. A request that outlives a short
// --drain-grace-ms is cut and the process still exits promptly. Run with 1 and 2 workers.

import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HttpConn, probeConnect, type HttpResponse } from '../helpers/http-conn';
import { admin, eventually, startProxy, type ProxyProcess } from '../helpers/proxy-process';
import { sleep } from '../helpers/admin-probe';
import { scriptedUpstream, type ScriptedUpstream } from '../helpers/scripted-upstream';

const IN_FLIGHT = 3;

for (const workers of [1, 2]) {
  describe(`graceful drain (--workers ${workers})`, { timeout: 60_000 }, () => {
    let up: ScriptedUpstream | undefined;
    let proxy: ProxyProcess | undefined;
    const conns: HttpConn[] = [];

    afterEach(async () => {
      for (const c of conns.splice(0)) c.close();
      if (proxy !== undefined && proxy.child.exitCode === null) await proxy.stop(5000);
      await up?.close();
      proxy = undefined;
      up = undefined;
    });

    const start = async (graceMs: number): Promise<{ proxy: ProxyProcess; up: ScriptedUpstream }> => {
      up = await scriptedUpstream('slow');
      proxy = await startProxy([
        '--workers', String(workers),
        '--listen', '127.0.0.1:0',
        '--to', `127.0.0.1:${up.port}`,
        '--drain-grace-ms', String(graceMs),
      ]);
      return { proxy, up };
    };

    it('finishes in-flight requests, refuses new connections, exits 0 within the grace', async () => {
      const GRACE_MS = 5000;
      const { proxy, up } = await start(GRACE_MS);
      const port = proxy.ports.proxy;

      // An idle keep-alive connection, and requests in flight on the slow upstream.
      const idle = await HttpConn.connect(port);
      conns.push(idle);
      assert.equal((await idle.request('/warm')).status, 200);
      const busy = await Promise.all(Array.from({ length: IN_FLIGHT }, () => HttpConn.connect(port)));
      conns.push(...busy);
      const results = busy.map((c) =>
        c.request('/hold', { timeoutMs: 10_000 }).then(
          (r): HttpResponse | Error => r,
          (e: Error) => e,
        ),
      );
      await eventually(() => up.held === IN_FLIGHT, 5000, 'the requests to reach the upstream');
      const heldAt = Date.now();

      const sentAt = Date.now();
      proxy.child.kill('SIGTERM');
      await eventually(() => /SIGTERM: draining/.test(proxy.stderr()), 3000, 'the drain to start');

      // New connections are refused once the drain started (bounded: the workers take the
      // message within a few ms).
      await eventually(async () => (await probeConnect(port, 500)) === 'refused', 2000, 'new connections to be refused');
      for (let i = 0; i < 3; i++) assert.equal(await probeConnect(port, 500), 'refused', 'every later attempt is refused');

      // The admin port stays up while draining: not ready, still live.
      assert.equal((await admin(proxy, '/ready')).status, 503);
      assert.equal((await admin(proxy, '/live')).status, 200);
      // The idle keep-alive connection is closed by the proxy.
      assert.ok(await idle.waitClosed(2000), 'idle keep-alive connection closed on drain');
      assert.equal(proxy.child.exitCode, null, 'still running while requests are in flight');

      // The upstream answers after about a second: every in-flight request gets its response.
      await sleep(Math.max(0, heldAt + 1000 - Date.now()));
      up.release();
      for (const r of await Promise.all(results)) {
        assert.ok(!(r instanceof Error), `in-flight request failed: ${(r as Error).message}`);
        assert.equal(r.status, 200);
        assert.equal(r.headers['x-upstream'], 'slow');
        assert.match(r.headers['connection'] ?? '', /close/i);
      }
      const code = await Promise.race([proxy.exited, sleep(GRACE_MS + 1000).then(() => 'timeout' as const)]);
      assert.equal(code, 0, proxy.stderr());
      assert.ok(Date.now() - sentAt < GRACE_MS, `exited ${Date.now() - sentAt} ms after SIGTERM, grace ${GRACE_MS} ms`);
    });

    it('cuts a request that outlives a short grace and still exits promptly', async () => {
      const GRACE_MS = 400;
      const { proxy, up } = await start(GRACE_MS);
      const c = await HttpConn.connect(proxy.ports.proxy);
      conns.push(c);
      const result = c.request('/hold', { timeoutMs: 10_000 }).then(
        (r): HttpResponse | Error => r,
        (e: Error) => e,
      );
      await eventually(() => up.held === 1, 5000, 'the request to reach the upstream');
      const sentAt = Date.now();
      proxy.child.kill('SIGTERM');
      const code = await Promise.race([proxy.exited, sleep(GRACE_MS + 3000).then(() => 'timeout' as const)]);
      const tookMs = Date.now() - sentAt;
      assert.equal(code, 0, proxy.stderr());
      assert.ok(tookMs >= GRACE_MS - 50, `the request was given the grace period (exited after ${tookMs} ms)`);
      assert.ok(tookMs < GRACE_MS + 2000, `exited ${tookMs} ms after SIGTERM with a ${GRACE_MS} ms grace`);
      const r = await result;
      assert.ok(r instanceof Error, `the request was cut, got ${JSON.stringify(r)}`);
      assert.ok(await c.waitClosed(1000), 'the client connection is closed');
      up.release();
    });
    // Regression: a connection still in protocol detection (connected, nothing sent yet) used to hold
    // the process for the whole grace period instead of being closed like an idle keep-alive one.
    it('does not wait for a connection that has sent nothing', async () => {
      const GRACE_MS = 2500;
      const { proxy } = await start(GRACE_MS);
      const c = await HttpConn.connect(proxy.ports.proxy);
      conns.push(c);
      await sleep(100);
      const sentAt = Date.now();
      proxy.child.kill('SIGTERM');
      const code = await Promise.race([proxy.exited, sleep(GRACE_MS + 3000).then(() => 'timeout' as const)]);
      assert.equal(code, 0);
      assert.ok(Date.now() - sentAt < 1000, `exited ${Date.now() - sentAt} ms after SIGTERM (grace ${GRACE_MS} ms)`);
      assert.ok(await c.waitClosed(1000));
    });
  });
}
