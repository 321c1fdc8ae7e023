// Endpoint balancing through the real proxy: P2C over peak-EWMA (the default) steers traffic away
// from a slow endpoint; round-robin, chosen explicitly, does not.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import { type ProxyProcess, startProxy } from '../helpers/proxy-process';
import { close, listen } from '../helpers/upstream';

let fast: http.Server;
let slow: http.Server;
let fastPort = 0;
let slowPort = 0;

before(async () => {
  fast = http.createServer((_req, res) => res.end('fast'));
  slow = http.createServer((_req, res) => setTimeout(() => res.end('slow'), 40));
  fastPort = await listen(fast);
  slowPort = await listen(slow);
});

after(async () => {
  await close(fast);
  await close(slow);
});

async function shares(proxy: ProxyProcess, n: number): Promise<{ fast: number; slow: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const out = { fast: 0, slow: 0 };
  // 4 concurrent streams of requests, so that in-flight counts matter too.
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let i = 0; i < n / 4; i++) {
        const body = await new Promise<string>((resolve, reject) => {
          http
            .get({ host: '127.0.0.1', port: proxy.ports.proxy, path: '/', agent }, (res) => {
              let b = '';
              res.on('data', (d) => (b += d));
              res.on('end', () => resolve(b));
            })
            .on('error', reject);
        });
        out[body as 'fast' | 'slow']++;
      }
    }),
  );
  agent.destroy();
  return out;
}

test('p2c-ewma (default) sends most requests to the fast endpoint', { timeout: 60_000 }, async () => {
  const p = await startProxy(['--listen', '127.0.0.1:0', '--to', `127.0.0.1:${fastPort}`, '--to', `127.0.0.1:${slowPort}`, '--workers', '1']);
  try {
    const s = await shares(p, 200);
    assert.equal(s.fast + s.slow, 200);
    assert.ok(s.fast > 160, `fast endpoint got ${s.fast} of 200 (slow ${s.slow})`);
  } finally {
    await p.stop();
  }
});

test('round-robin splits evenly whatever the latency', { timeout: 60_000 }, async () => {
  const p = await startProxy(['--listen', '127.0.0.1:0', '--to', `127.0.0.1:${fastPort}`, '--to', `127.0.0.1:${slowPort}`, '--workers', '1', '--balancer', 'round-robin']);
  try {
    const s = await shares(p, 100);
    assert.ok(Math.abs(s.fast - s.slow) <= 4, `round-robin split ${s.fast}/${s.slow}`);
  } finally {
    await p.stop();
  }
});
