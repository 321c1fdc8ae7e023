// The admin port: /ready, /live, /config_dump (the version in force and every worker's acknowledged
// version, bound listener addresses), /metrics' content type, and that the crash hook is off
// without BOWLINE_TEST_HOOKS. Run with 1 and 2 workers.
//
// "/ready 503 before the config is applied" is not observable from outside: the admin listener is
// bound (and its port printed) only after every worker acknowledged the initial config, so the first
// answer a client can get is already 200 (a probe before that fails to connect, which Kubernetes
// treats the same as 503). The test checks that: the first answers are 200 with every ack in place.
// 503 is observable while a worker is missing (worker-crash.test.ts) and while draining
// (graceful-drain.test.ts).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { configYaml, TempConfig } from '../helpers/config-file';
import { HttpConn } from '../helpers/http-conn';
import { admin, eventually, startProxy, type ProxyProcess } from '../helpers/proxy-process';
import { allAcked, configDump, configInfoVersion, scrape } from '../helpers/admin-probe';
import { scriptedUpstream, type ScriptedUpstream } from '../helpers/scripted-upstream';

for (const workers of [1, 2]) {
  describe(`admin endpoints (--workers ${workers})`, { timeout: 60_000 }, () => {
    let up: ScriptedUpstream;
    let cfg: TempConfig;
    let proxy: ProxyProcess;
    const yaml = (prefix: string): string =>
      configYaml({
        listeners: [{ name: 'main', routes: ['r'] }],
        services: [{ name: 'web', ports: [up.port] }],
        routes: [{ name: 'r', backend: 'web', pathPrefix: prefix }],
      });

    before(async () => {
      up = await scriptedUpstream('up');
      cfg = new TempConfig(yaml('/'));
      proxy = await startProxy(['--workers', String(workers), '--config', cfg.file]);
    });

    after(async () => {
      const code = await proxy?.stop();
      await up?.close();
      cfg?.remove();
      assert.equal(code, 0, proxy?.stderr());
    });

    it('is ready with the config acked by every worker from its first answer', async () => {
      // No waiting: these are the first requests after the proxy printed its admin port.
      const [ready, live, dump] = await Promise.all([admin(proxy, '/ready'), admin(proxy, '/live'), configDump(proxy)]);
      assert.equal(ready.status, 200, ready.body);
      assert.equal(live.status, 200);
      assert.equal(dump.version, 'file-1');
      assert.equal(dump.workers.length, workers);
      for (const w of dump.workers) {
        assert.equal(w.running, true, `worker ${w.index} running`);
        assert.equal(w.ackedVersion, 'file-1', `worker ${w.index} acked file-1`);
        assert.equal(w.restarts, 0);
      }
      assert.deepEqual(dump.listeners, [{ name: 'main', host: '127.0.0.1', port: proxy.ports.main }]);
      const c = await HttpConn.connect(proxy.ports.main);
      try {
        assert.equal((await c.request('/')).status, 200);
      } finally {
        c.close();
      }
    });

    it('shows a reloaded version acked by every worker', async () => {
      cfg.replace(yaml('/v2'));
      await eventually(async () => allAcked(await configDump(proxy), 'file-2', workers), 10_000, 'file-2 acked by every worker');
      assert.equal(configInfoVersion(await scrape(proxy)), 'file-2');
      assert.equal((await admin(proxy, '/ready')).status, 200);
      const c = await HttpConn.connect(proxy.ports.main);
      try {
        assert.equal((await c.request('/v2/x')).status, 200);
        assert.equal((await c.request('/other')).status, 404, 'the old catch-all route is gone');
      } finally {
        c.close();
      }
    });

    it('stays ready while reloads are applied', async () => {
      // /ready says whether the proxy serves, not whether a reload is still being acknowledged:
      // flapping to 503 on every config push would take the pod out of its Service.
      const seen: number[] = [];
      let sampling = true;
      const sampler = (async () => {
        while (sampling) seen.push((await admin(proxy, '/ready')).status);
      })();
      try {
        for (let i = 3; i <= 7; i++) {
          cfg.replace(yaml(`/v${i}`));
          await eventually(async () => allAcked(await configDump(proxy), `file-${i}`, workers), 10_000, `file-${i} acked by every worker`);
        }
      } finally {
        sampling = false;
        await sampler;
      }
      assert.ok(seen.length > 0);
      assert.deepEqual([...new Set(seen)], [200], `/ready answers during reloads: ${seen.length} samples`);
    });

    it('serves metrics as Prometheus text and keeps the crash hook off', async () => {
      const res = await fetch(`http://127.0.0.1:${proxy.adminPort}/metrics`, { signal: AbortSignal.timeout(5000) });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      const text = await res.text();
      assert.match(text, /^# HELP request_total /m);
      assert.match(text, new RegExp(`^workers_running ${workers}$`, 'm'));
      const hook = await admin(proxy, '/debug/crash?worker=0', 'POST');
      assert.ok(hook.status === 404 || hook.status === 405, `no crash hook without BOWLINE_TEST_HOOKS=1 (got ${hook.status})`);
      assert.equal((await admin(proxy, '/nope')).status, 404);
      assert.equal((await configDump(proxy)).workers.every((w) => w.running), true);
    });
  });
}
