// HTTP/2 abuse against the real proxy, each attack written with raw frames (test/fixtures/h2-abuse.py,
// on python3-h2's hyperframe and hpack): Rapid Reset, CONTINUATION floods, HPACK bombs, SETTINGS
// floods and zero-window stalls end in GOAWAY or RST_STREAM with bounded memory, and the proxy goes
// on serving others; requests HTTP/2 forbids are refused on their stream and never reach an HTTP/1
// upstream.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { TempConfig } from '../helpers/config-file';
import { closeSession, h2connect, h2request, type H2Server, h2server } from '../helpers/h2';
import { type ProxyProcess, startProxy } from '../helpers/proxy-process';
import { close, listen } from '../helpers/upstream';

const SCRIPT = path.resolve(__dirname, '../../../test/fixtures/h2-abuse.py');
/** Debian's python3 (where python3-h2 installs), not another one earlier on PATH. */
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
/** .ci/run installs python3-h2; without it these tests fail rather than pass unseen. */
const HAVE_H2 = spawnSync(PYTHON, ['-c', 'import hyperframe, hpack'], { stdio: 'ignore' }).status === 0;

interface Outcome {
  goaway: number | null;
  rst: number[];
  rstCount: number;
  heads: number;
  data: number;
  closed: boolean;
  [k: string]: unknown;
}

function abuse(scenario: string, port: number, p = '/'): Promise<Outcome> {
  if (!HAVE_H2) return Promise.reject(new Error(`${PYTHON} cannot import hyperframe and hpack: apt-get install python3-h2`));
  return new Promise((resolve, reject) => {
    const c = spawn(PYTHON, [SCRIPT, scenario, String(port), p]);
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    const t = setTimeout(() => c.kill('SIGKILL'), 40_000);
    c.on('close', (code) => {
      clearTimeout(t);
      if (code !== 0) reject(new Error(`h2-abuse.py ${scenario} exited ${code}: ${err}`));
      else resolve(JSON.parse(out) as Outcome);
    });
  });
}

let up: H2Server;
let h1: { server: http.Server; port: number; urls: string[]; heads: http.IncomingHttpHeaders[] };
let proxy: ProxyProcess;
let cfg: TempConfig;

function rssMiB(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${proxy.child.pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

/** The proxy still answers a normal request on a fresh connection. */
async function stillServes(): Promise<void> {
  const s = await h2connect(proxy.ports['main']!);
  try {
    const r = await h2request(s, { ':path': '/after' });
    assert.equal(r.status, 200);
  } finally {
    await closeSession(s);
  }
}

before(async () => {
  up = await h2server((stream, headers) => {
    if (String(headers[':path']).startsWith('/big')) {
      stream.respond({ ':status': 200 });
      const block = Buffer.alloc(64 * 1024, 'z');
      const pump = (): void => {
        for (let i = 0; i < 2048; i++) if (!stream.write(block)) return void stream.once('drain', pump);
        stream.end();
      };
      pump();
      return;
    }
    stream.respond({ ':status': 200 });
    stream.end('ok');
  });
  const urls: string[] = [];
  const heads: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    urls.push(String(req.url));
    heads.push(req.headers);
    res.end('h1');
  });
  h1 = { server, port: await listen(server), urls, heads };
  cfg = new TempConfig(`
proxy: { http: { keepAliveTimeoutMs: 1000 } }
listeners:
  - { name: main, address: 127.0.0.1:0, routes: [h1, h2] }
services:
  - { name: h2, endpoints: [{ address: 127.0.0.1:${up.port} }] }
  - { name: h1, protocol: http1, endpoints: [{ address: 127.0.0.1:${h1.port} }] }
routes:
  - { name: h1, matches: [{ path: { type: PathPrefix, value: /h1 } }], backendRefs: [{ name: h1 }] }
  - { name: h2, backendRefs: [{ name: h2 }] }
`);
  proxy = await startProxy(['--config', cfg.file, '--workers', '1']);
});

after(async () => {
  await proxy?.stop();
  cfg?.remove();
  await up?.close();
  if (h1 !== undefined) await close(h1.server);
});

test('Rapid Reset: streams opened and reset at once end in GOAWAY; the upstream is spared most of them', { timeout: 60_000 }, async () => {
  const before = up.requests.length;
  const rss0 = rssMiB();
  const r = await abuse('rapid-reset', proxy.ports['main']!);
  assert.ok(r.goaway !== null || r.closed, JSON.stringify(r));
  const opened = Number(r['streamsOpened']);
  const reached = up.requests.length - before;
  assert.ok(reached < opened / 2, `${reached} of ${opened} reset streams reached the upstream`);
  assert.ok(rssMiB() - rss0 < 64, `RSS grew ${rssMiB() - rss0} MiB`);
  await stillServes();
});

test('CONTINUATION flood: a header block that never ends is cut off with GOAWAY long before 20 MB', { timeout: 60_000 }, async () => {
  const rss0 = rssMiB();
  const r = await abuse('continuation-flood', proxy.ports['main']!);
  assert.ok(r.goaway !== null || r.closed, JSON.stringify(r));
  assert.ok(Number(r['continuationBytes']) < 4 * 1024 * 1024, JSON.stringify(r));
  assert.ok(rssMiB() - rss0 < 64);
  await stillServes();
});

test('HPACK bomb: 16 MB of decoded fields from a few KB are refused, and nothing reaches the upstream', { timeout: 60_000 }, async () => {
  const before = up.requests.length;
  const r = await abuse('hpack-bomb', proxy.ports['main']!, '/bomb');
  assert.ok(r.goaway !== null || r.rstCount > 0 || r.closed, JSON.stringify(r));
  assert.equal(r.heads, 0, 'no answer: the request was never served');
  assert.equal(up.requests.length, before);
  await stillServes();
});

test('SETTINGS flood: thousands of SETTINGS whose ACKs are never read end in GOAWAY or a closed connection', { timeout: 60_000 }, async () => {
  const rss0 = rssMiB();
  const r = await abuse('settings-flood', proxy.ports['main']!);
  assert.ok(r.goaway !== null || r.closed, JSON.stringify(r));
  assert.ok(rssMiB() - rss0 < 64);
  await stillServes();
});

test('zero window: a client that never opens its window has its stream reset after the idle limit; the upstream is held back meanwhile', { timeout: 60_000 }, async () => {
  const r = await abuse('zero-window', proxy.ports['main']!, '/big');
  assert.ok(r.rst.length > 0 || r.goaway !== null, JSON.stringify(r));
  assert.equal(r.data, 0, 'nothing could be sent through a zero window');
  const waited = Number(r['waitedMs']);
  assert.ok(waited >= 900 && waited < 10_000, `reset after ${waited} ms (keep-alive timeout 1 s)`);
  await stillServes();
});

test('requests HTTP/2 forbids are refused on their own stream and never forwarded to an HTTP/1 upstream', { timeout: 60_000 }, async () => {
  const before = h1.urls.length;
  const heads = h1.heads.length;
  const r = await abuse('malformed', proxy.ports['main']!, '/h1/bad');
  assert.equal(r['goodAnswered'], true, JSON.stringify(r));
  assert.deepEqual(r.rst, [1], 'PROTOCOL_ERROR');
  // Uppercase name, connection, te: gzip, CR LF in a value, transfer-encoding, a content-length the
  // body disagrees with: six streams reset; the good request after them is answered.
  assert.equal(r.rstCount, 6, JSON.stringify(r));
  assert.deepEqual(r['answered'], [13]);
  assert.deepEqual(h1.urls.slice(before), ['/h1/bad-ok']);
  for (const h of h1.heads.slice(heads)) {
    assert.equal(h['x-crlf'], undefined);
    assert.equal(h['x-injected'], undefined);
  }
});
