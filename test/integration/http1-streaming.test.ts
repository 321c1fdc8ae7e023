// Large bodies stream through with bounded memory in both directions, and back-pressure holds when
// the client reads slowly. Memory is the proxy process's peak RSS (VmHWM), read from /proc.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { type ProxyProcess, startProxy } from '../helpers/proxy-process';
import { close, listen } from '../helpers/upstream';

const GiB = 1024 * 1024 * 1024;
const CHUNK = Buffer.alloc(256 * 1024, 'b');
let proxy: ProxyProcess;
let upstream: http.Server;

function peakRssMiB(pid: number): number {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+)/.exec(s)![1]) / 1024;
}

before(async () => {
  upstream = http.createServer((req, res) => {
    if (req.method === 'POST') {
      let n = 0;
      req.on('data', (d: Buffer) => (n += d.length));
      req.on('end', () => res.end(String(n)));
      return;
    }
    if (req.url!.startsWith('/pattern/')) {
      // GET /pattern/N streams N bytes of a known pattern (byte i = i mod 251) in odd-sized writes,
      // chunked, so that a byte moved, repeated or overwritten anywhere shows.
      const total = Number(req.url!.split('/')[2]);
      res.writeHead(200);
      let sent = 0;
      const pump = (): void => {
        while (sent < total) {
          const n = Math.min(1000 + ((sent * 7) % 30_000), total - sent);
          const b = Buffer.allocUnsafe(n);
          for (let i = 0; i < n; i++) b[i] = (sent + i) % 251;
          sent += n;
          if (!res.write(b)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    // GET /bytes/N streams N bytes with back-pressure.
    const total = Number(req.url!.split('/')[2]);
    res.writeHead(200, { 'content-length': total });
    let sent = 0;
    const pump = (): void => {
      while (sent < total) {
        const n = Math.min(CHUNK.length, total - sent);
        sent += n;
        if (!res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
  });
  const port = await listen(upstream);
  proxy = await startProxy(['--listen', '127.0.0.1:0', '--to', `127.0.0.1:${port}`, '--workers', '1']);
});

after(async () => {
  await proxy?.stop();
  await close(upstream);
});

/** POSTs 1 GiB (content-length framed, or chunked when `chunked`) with back-pressure; returns what the upstream counted. */
function upload(chunked: boolean): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const headers = chunked ? {} : { 'content-length': GiB };
    const req = http.request({ host: '127.0.0.1', port: proxy.ports.proxy, method: 'POST', path: '/up', headers }, (res) => {
      let b = '';
      res.on('data', (d) => (b += d));
      res.on('end', () => resolve(b));
    });
    req.on('error', reject);
    let sent = 0;
    const pump = (): void => {
      while (sent < GiB) {
        sent += CHUNK.length;
        if (!req.write(CHUNK)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

test('1 GiB upload (content-length) passes whole with bounded proxy memory', { timeout: 120_000 }, async () => {
  const base = peakRssMiB(proxy.child.pid!);
  assert.equal(Number(await upload(false)), GiB);
  const peak = peakRssMiB(proxy.child.pid!);
  assert.ok(peak - base < 64, `proxy peak RSS grew by ${(peak - base).toFixed(1)} MiB (base ${base.toFixed(1)})`);
});

test('1 GiB chunked upload passes whole', { timeout: 120_000 }, async () => {
  assert.equal(Number(await upload(true)), GiB);
});

test('1 GiB download passes whole with bounded proxy memory', { timeout: 120_000 }, async () => {
  const base = peakRssMiB(proxy.child.pid!);
  const n = await new Promise<number>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: proxy.ports.proxy, path: `/bytes/${GiB}` }, (res) => {
      let total = 0;
      res.on('data', (d: Buffer) => (total += d.length));
      res.on('end', () => resolve(total));
      res.on('error', reject);
    }).on('error', reject);
  });
  assert.equal(n, GiB);
  const peak = peakRssMiB(proxy.child.pid!);
  assert.ok(peak - base < 64, `proxy peak RSS grew by ${(peak - base).toFixed(1)} MiB`);
});

test('a client that stops reading holds the upstream back (no buffering in the proxy)', { timeout: 60_000 }, async () => {
  const before = peakRssMiB(proxy.child.pid!);
  const s = net.connect(proxy.ports.proxy, '127.0.0.1');
  await new Promise((r) => s.once('connect', r));
  s.write(`GET /bytes/${512 * 1024 * 1024} HTTP/1.1\r\nHost: a\r\n\r\n`);
  s.pause();
  // Give the upstream plenty of time to push if nothing held it back.
  await new Promise((r) => setTimeout(r, 1500));
  const during = peakRssMiB(proxy.child.pid!);
  assert.ok(during - before < 32, `proxy buffered ${(during - before).toFixed(1)} MiB for a paused client`);
  // Then read it all: nothing was lost.
  let total = 0;
  s.on('data', (d: Buffer) => (total += d.length));
  s.resume();
  const expected = 512 * 1024 * 1024;
  const deadline = Date.now() + 50_000;
  while (Date.now() < deadline) {
    const headEnd = total;
    if (headEnd >= expected) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  s.destroy();
  assert.ok(total >= expected, `received ${total}`);
});

test('a download read in fits and starts arrives byte for byte (no read buffer reused too early)', { timeout: 60_000 }, async () => {
  const total = 48 * 1024 * 1024;
  const bad = await new Promise<string>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: proxy.ports.proxy, path: `/pattern/${total}` }, (res) => {
      let pos = 0;
      let reads = 0;
      res.on('data', (d: Buffer) => {
        for (let i = 0; i < d.length; i++) {
          if (d[i] !== (pos + i) % 251) {
            res.destroy();
            resolve(`byte ${pos + i} is ${d[i]}, expected ${(pos + i) % 251}`);
            return;
          }
        }
        pos += d.length;
        // Stall now and then, so that the proxy's writes to us go partial and wait.
        if (++reads % 40 === 0) {
          res.pause();
          setTimeout(() => res.resume(), 30);
        }
      });
      res.on('end', () => resolve(pos === total ? '' : `got ${pos} of ${total} bytes`));
      res.on('error', reject);
    }).on('error', reject);
  });
  assert.equal(bad, '');
});
