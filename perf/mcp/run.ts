// MCP over Streamable HTTP through proxies, against the SDK server direct, in one run: (a) tools/call
// latency at a fixed rate and (b) time to the first SSE event of a call, with the added cost per proxy.
//
//   flock /tmp/bowline-bench.lock node dist/perf/mcp/run.js \
//     [--proxy NAME=URL ...]                 proxies already running in front of --server-port
//     [--proxy-cmd 'NAME=COMMAND' ...]       proxies this run starts; {port} {upstream} {admin} are
//                                            replaced by a free port, the MCP server's port, another free port
//     [--haproxy]                            HAProxy 2.x (http mode, http-no-delay, nbthread 1) as a reference peer
//     [--server-port N]                      bind the MCP server here (default: a free port)
//   env: DURATION=10 (s per target and round, part a)  RATE=500 (calls/s)  ROUNDS=3  SOCKETS=4
//        TTFE_CALLS=200 (part b, per target and round)  TTFE_DELAY_MS=200
//
// e.g. --proxy-cmd 'bowline=node dist/bin/bowline.js proxy --listen 127.0.0.1:{port} --to 127.0.0.1:{upstream} --workers 1 --admin 127.0.0.1:{admin}'
//
// The server is the SDK's McpServer, stateful, answering with SSE (the SDK default) and without an
// event store (no priming events). Each target gets its own session (initialize through it). The
// client is raw JSON-RPC over node:http with a keep-alive Agent of SOCKETS sockets:
// (a) open loop: call i is scheduled at i/RATE s whatever the answers do; its latency counts from
//     that scheduled time until the SSE event carrying the response for its id arrived, so a send
//     delayed by the generator or a socket wait counts (a send over 2 ms behind schedule is "late").
// (b) sequential calls of first_event {delayMs: TTFE_DELAY_MS}: from the request sent to the first
//     SSE event (its progress notification); the response follows TTFE_DELAY_MS later, so a proxy
//     that buffers the stream shows up as +TTFE_DELAY_MS.
// Targets run one after another, their order rotated each round; tables give medians over rounds,
// and "added" is the median over rounds of (proxy - direct) from the same round.

import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { initializeRaw, startMcpServer } from '../../test/helpers/mcp-server';
import { freePort } from '../lib/free-port';

const env = (name: string, dflt: number): number => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
  return v;
};
const DURATION_S = env('DURATION', 10);
const RATE = env('RATE', 500);
const ROUNDS = Math.round(env('ROUNDS', 3));
const SOCKETS = Math.round(env('SOCKETS', 4));
const TTFE_CALLS = Math.round(env('TTFE_CALLS', 200));
const TTFE_DELAY_MS = env('TTFE_DELAY_MS', 200);
const CALL_TIMEOUT_MS = 10_000;
const LATE_MS = 2;

interface Target {
  name: string;
  host: string;
  port: number;
  path: string;
  agent: http.Agent;
  headers: Record<string, string>;
  nextId: number;
}

interface Started {
  name: string;
  child: ChildProcess;
  log: () => string;
}

const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function pct(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

// ---- one JSON-RPC call over Streamable HTTP -------------------------------------------------------

interface CallHooks {
  /** The first SSE event with data arrived (ms, nowMs clock). */
  onFirstEvent?: (atMs: number) => void;
  /** The response for the call's id arrived (error undefined), or the call failed. */
  onDone: (error: string | undefined, atMs: number) => void;
}

/** POSTs one request and reports its first event and its response; the SSE body is scanned as it comes. */
function call(t: Target, method: string, params: unknown, hooks: CallHooks): void {
  const id = t.nextId++;
  const body = JSON.stringify({ jsonrpc: '2.0', id, method, params });
  const idMark = `"id":${id}`;
  let finished = false;
  let sawEvent = false;
  const finish = (error: string | undefined): void => {
    if (finished) return;
    finished = true;
    hooks.onDone(error, nowMs());
  };
  const onData = (data: string): void => {
    if (!sawEvent) {
      sawEvent = true;
      hooks.onFirstEvent?.(nowMs());
    }
    if (!data.includes(idMark)) return;
    const m = JSON.parse(data) as { id?: unknown; result?: unknown; error?: { message?: string } };
    if (m.id !== id) return;
    finish(m.error !== undefined ? `rpc error: ${m.error.message ?? ''}` : m.result !== undefined ? undefined : 'no result');
  };
  const req = http.request({
    host: t.host,
    port: t.port,
    path: t.path,
    method: 'POST',
    agent: t.agent,
    headers: {
      ...t.headers,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'content-length': Buffer.byteLength(body),
    },
  });
  req.setTimeout(CALL_TIMEOUT_MS, () => req.destroy(new Error('timeout')));
  req.on('error', (e) => finish(e.message));
  req.on('response', (res) => {
    if (res.statusCode !== 200) {
      res.resume();
      finish(`http ${res.statusCode}`);
      return;
    }
    const sse = String(res.headers['content-type'] ?? '').startsWith('text/event-stream');
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (d: string) => {
      buf += d;
      if (!sse) return;
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const ev = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let data = '';
        for (const line of ev.split('\n')) if (line.startsWith('data:')) data += line.slice(line[5] === ' ' ? 6 : 5);
        if (data !== '') onData(data);
      }
    });
    res.on('end', () => {
      if (!sse && buf !== '') onData(buf);
      finish('stream ended without the response');
    });
    res.on('error', (e) => finish(e.message));
  });
  req.end(body);
}

// ---- (a) open loop at a fixed rate -----------------------------------------------------------------

interface RateResult {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  errors: number;
  late: number;
  sent: number;
  firstError?: string;
}

function openLoop(t: Target, rate: number, durationS: number): Promise<RateResult> {
  const total = Math.round(rate * durationS);
  const intervalMs = 1000 / rate;
  const lat: number[] = [];
  let errors = 0;
  let late = 0;
  let sent = 0;
  let done = 0;
  let firstError: string | undefined;
  const params = { name: 'echo', arguments: { text: 'hello' } };
  return new Promise((resolve) => {
    const start = nowMs();
    const finishIfDone = (): void => {
      if (done < total) return;
      lat.sort((a, b) => a - b);
      resolve({ p50: pct(lat, 0.5), p90: pct(lat, 0.9), p99: pct(lat, 0.99), max: lat.at(-1) ?? NaN, errors, late, sent, firstError });
    };
    const tick = (): void => {
      const now = nowMs();
      const due = Math.min(total, Math.floor((now - start) / intervalMs) + 1);
      while (sent < due) {
        const scheduled = start + sent * intervalMs;
        if (now - scheduled > LATE_MS) late++;
        sent++;
        call(t, 'tools/call', params, {
          onDone: (err, at) => {
            done++;
            if (err === undefined) lat.push(at - scheduled);
            else {
              errors++;
              firstError ??= err;
            }
            finishIfDone();
          },
        });
      }
      if (sent < total) setTimeout(tick, Math.max(0, start + sent * intervalMs - nowMs()));
    };
    tick();
  });
}

// ---- (b) time to first SSE event ---------------------------------------------------------------------

interface TtfeResult {
  p50: number;
  p99: number;
  totalP50: number;
  errors: number;
  firstError?: string;
}

async function timeToFirstEvent(t: Target, calls: number, delayMs: number): Promise<TtfeResult> {
  const first: number[] = [];
  const total: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const params = { name: 'first_event', arguments: { delayMs }, _meta: { progressToken: 'ttfe' } };
  for (let i = 0; i < calls; i++) {
    await new Promise<void>((resolve) => {
      const sentAt = nowMs();
      let firstAt = NaN;
      call(t, 'tools/call', params, {
        onFirstEvent: (at) => (firstAt = at),
        onDone: (err, at) => {
          if (err === undefined && Number.isFinite(firstAt)) {
            first.push(firstAt - sentAt);
            total.push(at - sentAt);
          } else {
            errors++;
            firstError ??= err ?? 'no event before the response';
          }
          resolve();
        },
      });
    });
  }
  first.sort((a, b) => a - b);
  total.sort((a, b) => a - b);
  return { p50: pct(first, 0.5), p99: pct(first, 0.99), totalP50: pct(total, 0.5), errors, firstError };
}

// ---- processes ---------------------------------------------------------------------------------------

function startProcess(name: string, file: string, args: string[]): Started {
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d: Buffer): void => {
    out = (out + d.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return { name, child, log: () => out };
}

async function waitForPort(port: number, p: Started, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`${p.name} exited (${p.child.exitCode ?? p.child.signalCode}):\n${p.log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`${p.name}: port ${port} not accepting after ${timeoutMs} ms:\n${p.log()}`);
}

async function stopProcess(p: Started): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = new Promise<void>((r) => p.child.once('exit', () => r()));
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/**
 * HAProxy's config. Without `option http-no-delay` HAProxy sends response data with MSG_MORE, and
 * Linux holds such a partial segment up to 200 ms: the first SSE event then arrives ~200 ms late
 * (measured here: first event p50 205 ms vs 3 ms direct). An SSE-aware setup sets the option.
 */
function haproxyConfig(dir: string, port: number, upstream: number): string {
  const file = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(
    file,
    `global
  nbthread 1
  maxconn 4096
defaults
  mode http
  option http-no-delay
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  server mcp 127.0.0.1:${upstream}
`,
  );
  return file;
}

function target(name: string, url: string): Target {
  const u = new URL(url);
  return {
    name,
    host: u.hostname,
    port: Number(u.port || 80),
    path: u.pathname === '/' ? '/mcp' : u.pathname,
    agent: new http.Agent({ keepAlive: true, maxSockets: SOCKETS }),
    headers: {},
    nextId: 1,
  };
}

function splitPair(s: string, flag: string): [string, string] {
  const i = s.indexOf('=');
  if (i <= 0) throw new Error(`${flag} wants NAME=VALUE, got ${s}`);
  return [s.slice(0, i), s.slice(i + 1)];
}

// ---- report ------------------------------------------------------------------------------------------

const f = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : '—');
const signed = (x: number, d = 2): string => (Number.isFinite(x) ? (x >= 0 ? '+' : '') + x.toFixed(d) : '—');

function report(targets: Target[], rates: Map<string, RateResult[]>, ttfes: Map<string, TtfeResult[]>): string {
  const direct = targets[0]!.name;
  const added = <R>(m: Map<string, R[]>, name: string, pick: (r: R) => number): number =>
    name === direct ? NaN : median(m.get(name)!.map((r, i) => pick(r) - pick(m.get(direct)![i]!)));
  const lines: string[] = [];
  lines.push(`### tools/call echo at ${RATE}/s for ${DURATION_S} s, open loop (ms; medians of ${ROUNDS} rounds)`, '');
  lines.push('| target | p50 | p90 | p99 | max | errors | late sends | added p50 | added p99 |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const t of targets) {
    const rs = rates.get(t.name)!;
    const sum = (k: 'errors' | 'late' | 'sent'): number => rs.reduce((a, r) => a + r[k], 0);
    lines.push(
      `| ${t.name} | ${f(median(rs.map((r) => r.p50)))} | ${f(median(rs.map((r) => r.p90)))} | ${f(median(rs.map((r) => r.p99)))} | ${f(median(rs.map((r) => r.max)))} | ${sum('errors')}/${sum('sent')} | ${sum('late')} | ${signed(added(rates, t.name, (r) => r.p50))} | ${signed(added(rates, t.name, (r) => r.p99))} |`,
    );
  }
  lines.push('', `### time to first SSE event: first_event {delayMs: ${TTFE_DELAY_MS}}, ${TTFE_CALLS} sequential calls (ms; medians of ${ROUNDS} rounds)`, '');
  lines.push('| target | first event p50 | first event p99 | response p50 | errors | added p50 | added p99 |', '|---|---:|---:|---:|---:|---:|---:|');
  for (const t of targets) {
    const rs = ttfes.get(t.name)!;
    lines.push(
      `| ${t.name} | ${f(median(rs.map((r) => r.p50)))} | ${f(median(rs.map((r) => r.p99)))} | ${f(median(rs.map((r) => r.totalP50)), 1)} | ${rs.reduce((a, r) => a + r.errors, 0)} | ${signed(added(ttfes, t.name, (r) => r.p50))} | ${signed(added(ttfes, t.name, (r) => r.p99))} |`,
    );
  }
  const errs = targets.flatMap((t) => [...rates.get(t.name)!, ...ttfes.get(t.name)!].filter((r) => r.firstError).map((r) => `${t.name}: ${r.firstError}`));
  if (errs.length > 0) lines.push('', `first errors: ${[...new Set(errs)].join('; ')}`);
  return lines.join('\n');
}

// ---- main --------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      proxy: { type: 'string', multiple: true, default: [] },
      'proxy-cmd': { type: 'string', multiple: true, default: [] },
      haproxy: { type: 'boolean', default: false },
      'server-port': { type: 'string' },
    },
  });
  const started: Started[] = [];
  const stopAll = async (): Promise<void> => void (await Promise.allSettled(started.map(stopProcess)));
  const onSignal = (): void => void stopAll().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const server = await startMcpServer({ mode: 'stateful', resumable: false, port: values['server-port'] ? Number(values['server-port']) : 0 });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bowline-mcp-bench-'));
  try {
    const targets: Target[] = [target('direct', server.url)];
    for (const p of values.proxy ?? []) {
      const [name, url] = splitPair(p, '--proxy');
      targets.push(target(name, url));
    }
    for (const p of values['proxy-cmd'] ?? []) {
      const [name, cmd] = splitPair(p, '--proxy-cmd');
      const port = await freePort();
      const admin = await freePort();
      const line = cmd.replaceAll('{port}', String(port)).replaceAll('{upstream}', String(server.port)).replaceAll('{admin}', String(admin));
      const proc = startProcess(name, '/bin/sh', ['-c', `exec ${line}`]);
      started.push(proc);
      await waitForPort(port, proc);
      process.stderr.write(`${name}: ${line}\n`);
      targets.push(target(name, `http://127.0.0.1:${port}/mcp`));
    }
    if (values.haproxy) {
      const port = await freePort();
      const proc = startProcess('haproxy', 'haproxy', ['-db', '-f', haproxyConfig(tmp, port, server.port)]);
      started.push(proc);
      await waitForPort(port, proc);
      targets.push(target('haproxy', `http://127.0.0.1:${port}/mcp`));
    }

    for (const t of targets) {
      let lastError: unknown;
      for (let i = 0; i < 5 && Object.keys(t.headers).length === 0; i++) {
        try {
          t.headers = await initializeRaw(`http://${t.host}:${t.port}${t.path}`);
        } catch (e) {
          lastError = e;
          await sleep(200);
        }
      }
      if (Object.keys(t.headers).length === 0) throw new Error(`${t.name}: initialize failed: ${String(lastError)}`);
    }
    process.stderr.write(
      `mcp bench: node ${process.version}, ${os.cpus().length} cpus, server :${server.port}, targets ${targets.map((t) => t.name).join(', ')}; ` +
        `${RATE}/s x ${DURATION_S} s, ${SOCKETS} sockets, ${TTFE_CALLS} ttfe calls, ${ROUNDS} rounds\n`,
    );
    for (const t of targets) {
      await openLoop(t, RATE, Math.min(2, DURATION_S));
      await timeToFirstEvent(t, 5, 0);
    }

    const rates = new Map<string, RateResult[]>(targets.map((t) => [t.name, []]));
    const ttfes = new Map<string, TtfeResult[]>(targets.map((t) => [t.name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
      for (const t of order) {
        const r = await openLoop(t, RATE, DURATION_S);
        rates.get(t.name)!.push(r);
        process.stderr.write(`round ${round + 1} rate ${t.name}: p50 ${f(r.p50)} p99 ${f(r.p99)} max ${f(r.max)} errors ${r.errors} late ${r.late}\n`);
      }
      for (const t of order) {
        const r = await timeToFirstEvent(t, TTFE_CALLS, TTFE_DELAY_MS);
        ttfes.get(t.name)!.push(r);
        process.stderr.write(`round ${round + 1} ttfe ${t.name}: p50 ${f(r.p50)} p99 ${f(r.p99)} errors ${r.errors}\n`);
      }
    }
    // Rows are indexed by round in the same order for every target, so "added" pairs a round's figures.
    process.stdout.write(report(targets, rates, ttfes) + '\n');
    for (const t of targets) t.agent.destroy();
  } finally {
    await stopAll();
    await server.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
