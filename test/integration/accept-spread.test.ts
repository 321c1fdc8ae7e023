// Accept balancing across worker threads: a burst of 50 keep-alive connections opened at once (the
// way `wrk -c50` opens them) must end up spread over the two workers, neither holding more than 60%,
// burst after burst; and the same under a real `wrk` run when wrk is installed.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as net from 'node:net';
import { HttpConn } from '../helpers/http-conn';
import { eventually, startProxy, type ProxyProcess } from '../helpers/proxy-process';
import { scrape, sleep, workerConnections } from '../helpers/admin-probe';
import { scriptedUpstream, type ScriptedUpstream } from '../helpers/scripted-upstream';

const CONNECTIONS = 50;
const MAX_SHARE = 0.6;
const BURSTS = 5;

const hasWrk = spawnSync('wrk', ['--version']).error === undefined;

describe('accept spread over 2 workers', { timeout: 60_000 }, () => {
  let up: ScriptedUpstream;
  let proxy: ProxyProcess;
  let port: number;

  before(async () => {
    up = await scriptedUpstream('up');
    proxy = await startProxy(['--workers', '2', '--listen', '127.0.0.1:0', '--to', `127.0.0.1:${up.port}`, '--drain-grace-ms', '2000']);
    port = proxy.ports.proxy;
  });

  after(async () => {
    const code = await proxy?.stop();
    await up?.close();
    assert.equal(code, 0, proxy?.stderr());
  });

  it(`spreads ${BURSTS} bursts of ${CONNECTIONS} concurrent keep-alive connections`, async () => {
    for (let burst = 1; burst <= BURSTS; burst++) {
      // All connections at once, then each sends requests in a loop until stopped.
      const conns = await Promise.all(Array.from({ length: CONNECTIONS }, () => HttpConn.connect(port)));
      let stop = false;
      const served = new Array<number>(CONNECTIONS).fill(0);
      const loops = conns.map(async (c, i) => {
        while (!stop) {
          const r = await c.request('/');
          assert.equal(r.status, 200);
          served[i]++;
        }
      });
      try {
        // Every connection has been answered, so every one of them was accepted by some worker.
        await eventually(() => served.every((n) => n > 0), 10_000, 'a response on every connection');
        const text = await scrape(proxy);
        const byWorker = workerConnections(text);
        const counts = [byWorker.get(0) ?? -1, byWorker.get(1) ?? -1];
        assert.equal(counts[0] + counts[1], CONNECTIONS, `burst ${burst}: worker_open_connections ${counts} should add up to ${CONNECTIONS}`);
        for (const n of counts) {
          assert.ok(n <= CONNECTIONS * MAX_SHARE, `burst ${burst}: split ${counts[0]}/${counts[1]}: one worker holds more than ${MAX_SHARE * 100}%`);
        }
      } finally {
        stop = true;
        await Promise.allSettled(loops);
        for (const c of conns) c.close();
      }
      await eventually(
        async () => [...workerConnections(await scrape(proxy)).values()].every((n) => n === 0),
        5000,
        `burst ${burst}: all connections closed on both workers`,
      );
    }
  });

  it('spreads a real wrk -t1 -c50 -d2s run', { skip: hasWrk ? false : 'wrk is not on PATH' }, async (t) => {
    // Other agents may run load at the same time: wait (bounded) for their wrk to end.
    const othersRunning = (): boolean => spawnSync('pgrep', ['-x', 'wrk']).status === 0;
    const deadline = Date.now() + 15_000;
    while (othersRunning() && Date.now() < deadline) await sleep(250);
    if (othersRunning()) {
      t.skip('another wrk is running');
      return;
    }
    const wrk = spawn('wrk', ['-t1', `-c${CONNECTIONS}`, '-d2s', `http://127.0.0.1:${port}/`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    wrk.stdout.on('data', (d: Buffer) => (out += d.toString()));
    wrk.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => wrk.once('exit', (code) => resolve(code)));
    const kill = setTimeout(() => wrk.kill('SIGKILL'), 6000);
    try {
      const samples: number[][] = [];
      await sleep(700);
      for (let i = 0; i < 3; i++) {
        const w = workerConnections(await scrape(proxy));
        samples.push([w.get(0) ?? 0, w.get(1) ?? 0]);
        await sleep(250);
      }
      const code = await exited;
      assert.equal(code, 0, out);
      assert.match(out, /Requests\/sec/, out);
      assert.doesNotMatch(out, /Non-2xx/, out);
      for (const [a, b] of samples) {
        const total = a + b;
        assert.ok(total >= CONNECTIONS * 0.9, `wrk holds ${CONNECTIONS} connections, metrics show ${a}+${b}; samples ${JSON.stringify(samples)}`);
        assert.ok(Math.max(a, b) <= total * MAX_SHARE, `split ${a}/${b} during wrk: one worker holds more than ${MAX_SHARE * 100}%`);
      }
    } finally {
      clearTimeout(kill);
      if (wrk.exitCode === null) wrk.kill('SIGKILL');
    }
  });
  // Regression: EOF during protocol detection used to hold the connection (and then open an upstream
  // one) until detectTimeoutMs. wrk opens such a probe connection before every run; so do TCP health checks.
  it('closes a connection that ends before sending a byte', async () => {
    const s = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('error', reject);
    });
    s.end();
    const closed = new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 2000);
      s.once('close', () => {
        clearTimeout(t);
        resolve(true);
      });
    });
    try {
      assert.ok(await closed, 'the proxy closes its side within 2 s');
      await eventually(
        async () => [...workerConnections(await scrape(proxy)).values()].every((n) => n === 0),
        1000,
        'worker_open_connections back to 0',
      );
    } finally {
      s.destroy();
    }
  });
});
