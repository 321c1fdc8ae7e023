// Config file reloads on a running proxy: a route moved from upstream A to B applies to the next
// request on an open keep-alive connection while the request in flight finishes on A; an invalid
// file is refused (B keeps serving, config_reload_total{result="rejected"} counts it, stderr names
// the file and the field, config_info keeps its version); a listener added by a reload accepts and
// a removed one stops. Run with 1 and 2 workers.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { configYaml, TempConfig, type TestListener } from '../helpers/config-file';
import { HttpConn, probeConnect } from '../helpers/http-conn';
import { eventually, metricSum, startProxy, type ProxyProcess } from '../helpers/proxy-process';
import { allAcked, configDump, configInfoVersion, scrape } from '../helpers/admin-probe';
import { scriptedUpstream, type ScriptedUpstream } from '../helpers/scripted-upstream';

for (const workers of [1, 2]) {
  describe(`hot reload (--workers ${workers})`, { timeout: 60_000 }, () => {
    let a: ScriptedUpstream;
    let b: ScriptedUpstream;
    let cfg: TempConfig;
    let proxy: ProxyProcess;

    const yaml = (backend: 'a' | 'b', extra: TestListener[] = []): string =>
      configYaml({
        listeners: [{ name: 'main', routes: ['r'] }, ...extra],
        services: [
          { name: 'a', ports: [a.port] },
          { name: 'b', ports: [b.port] },
        ],
        routes: [{ name: 'r', backend }],
      });

    /** Waits until `version` is in force on every worker, and checks the reload counters. */
    const reloaded = async (version: string, applied: number, rejected: number): Promise<void> => {
      await eventually(async () => allAcked(await configDump(proxy), version, workers), 10_000, `config ${version} acked by every worker`);
      const text = await scrape(proxy);
      assert.equal(configInfoVersion(text), version);
      assert.equal(metricSum(text, 'config_reload_total', { result: 'applied' }), applied);
      assert.equal(metricSum(text, 'config_reload_total', { result: 'rejected' }), rejected);
    };

    before(async () => {
      a = await scriptedUpstream('A');
      b = await scriptedUpstream('B');
      cfg = new TempConfig(yaml('a'));
      proxy = await startProxy(['--workers', String(workers), '--config', cfg.file]);
    });

    after(async () => {
      const code = await proxy?.stop();
      await a?.close();
      await b?.close();
      cfg?.remove();
      assert.equal(code, 0, proxy?.stderr());
    });

    it('applies good reloads to open connections and refuses a bad one', async () => {
      const main = proxy.ports.main;
      await reloaded('file-1', 0, 0);
      const conn = await HttpConn.connect(main);
      try {
        const first = await conn.request('/first');
        assert.equal(first.headers['x-upstream'], 'A');

        // A request in flight on A, on the keep-alive connection, while the route moves to B.
        const inFlight = conn.request('/hold', { timeoutMs: 15_000 });
        await eventually(() => a.held === 1, 5000, 'the request to reach A');
        cfg.replace(yaml('b'));
        await reloaded('file-2', 1, 0);
        a.release();
        const r1 = await inFlight;
        assert.equal(r1.status, 200);
        assert.equal(r1.headers['x-upstream'], 'A', 'the request in flight finishes on the upstream it started on');
        const r2 = await conn.request('/next');
        assert.equal(r2.headers['x-upstream'], 'B', 'the next request on the same connection follows the new route');
        assert.equal(conn.closed, false);

        // An invalid file: refused, named with its field, the config in force stays.
        cfg.replace(yaml('b').replace(`127.0.0.1:${b.port}`, 'nowhere'));
        await eventually(
          async () => metricSum(await scrape(proxy), 'config_reload_total', { result: 'rejected' }) === 1,
          10_000,
          'the invalid file to be rejected',
        );
        await reloaded('file-2', 1, 1);
        const rejection = proxy.stderr().split('\n').find((l) => l.includes('rejected')) ?? '';
        assert.ok(rejection.includes(cfg.file), `stderr names the file: ${rejection}`);
        assert.ok(rejection.includes('services[1].endpoints[0].address'), `stderr names the field: ${rejection}`);
        const r3 = await conn.request('/after-invalid');
        assert.equal(r3.headers['x-upstream'], 'B');

        // A listener added by a reload starts accepting (on its own port, though it asks for port 0 too).
        cfg.replace(yaml('b', [{ name: 'extra', routes: ['r'] }]));
        await reloaded('file-3', 2, 1);
        const extraPort = (await configDump(proxy)).listeners?.find((l) => l.name === 'extra')?.port;
        assert.ok(extraPort !== undefined && extraPort > 0, '/config_dump gives the bound port of the new listener');
        assert.notEqual(extraPort, main);
        const viaExtra = await HttpConn.connect(extraPort);
        try {
          const r4 = await viaExtra.request('/via-extra');
          assert.equal(r4.status, 200);
          assert.equal(r4.headers['x-upstream'], 'B');
        } finally {
          viaExtra.close();
        }
        assert.equal(await probeConnect(main), 'served', 'the main listener still answers');

        // Removed again: its port stops accepting; main and the open connection carry on.
        cfg.replace(yaml('b'));
        await reloaded('file-4', 3, 1);
        await eventually(async () => (await probeConnect(extraPort, 500)) === 'refused', 5000, 'the removed listener to refuse connections');
        const r5 = await conn.request('/last');
        assert.equal(r5.headers['x-upstream'], 'B');
        assert.equal(conn.closed, false, 'the keep-alive connection survived every reload');
        assert.equal(await probeConnect(main), 'served');
      } finally {
        conn.close();
      }
    });
    // Regression: connections of a listener removed by a reload used to go on serving with its old
    // routes; they drain now (close after the exchange in flight).
    it('drains connections of a removed listener instead of serving them with the old routes', async () => {
      cfg.replace(yaml('b', [{ name: 'gone', routes: ['r'] }]));
      await reloaded('file-5', 4, 1);
      const gonePort = (await configDump(proxy)).listeners?.find((l) => l.name === 'gone')?.port;
      assert.ok(gonePort !== undefined);
      const c = await HttpConn.connect(gonePort);
      try {
        assert.equal((await c.request('/before')).headers['x-upstream'], 'B');
        cfg.replace(yaml('a'));
        await reloaded('file-6', 5, 1);
        const r = await c.request('/after').catch((e: Error) => e);
        if (!(r instanceof Error)) {
          assert.notEqual(r.headers['x-upstream'], 'B', 'not routed by the removed config');
          assert.ok(c.closing, 'the connection is closed after this response');
        }
      } finally {
        c.close();
      }
    });
  });
}
