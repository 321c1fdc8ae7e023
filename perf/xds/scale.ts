// The control plane at scale (`npm run bench -- xds`): `bowline control` on a mesh of 1,000 services
// with 10 endpoints each, and 100 / 1,000 / 3,000 simulated ADS clients (sim-clients.ts, each with
// its own connection). Measures how long one endpoint change takes to reach every client (from the
// moment the mesh file is written: file watch, build in the piscina pool, push), the time for all
// clients to sync at start, and the control plane's memory. Prints one table.
//
//   node dist/perf/xds/scale.js [--clients 100,1000,3000] [--services 1000] [--endpoints 10] [--modes delta,sotw]

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as readline from 'node:readline';
import { parseArgs } from 'node:util';

const BOWLINE = resolve(__dirname, '../../bin/bowline.js');
const SIM = resolve(__dirname, 'sim-clients.js');

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '100,1000,3000' },
    services: { type: 'string', default: '1000' },
    endpoints: { type: 'string', default: '10' },
    modes: { type: 'string', default: 'delta,sotw' },
    'sotw-max-clients': { type: 'string', default: '1000' },
  },
});
const SERVICES = Number(values.services);
const ENDPOINTS = Number(values.endpoints);
const hasTaskset = spawnSync('sh', ['-c', 'command -v taskset'], { stdio: 'ignore' }).status === 0;

function pinned(cpu: number, args: string[]): [string, string[]] {
  return hasTaskset ? ['taskset', ['-c', String(cpu), process.execPath, ...args]] : [process.execPath, args];
}

function meshYaml(extra: string | null): string {
  const services = Array.from({ length: SERVICES }, (_, i) => {
    const endpoints = Array.from({ length: ENDPOINTS }, (_, j) => ({ address: `10.${(i >> 8) & 255}.${i & 255}.${j + 1}:8080`, zone: `z${j % 3}` }));
    if (i === 0 && extra !== null) endpoints.push({ address: `${extra}:8080`, zone: 'z0' });
    return { name: `svc-${i}`, endpoints };
  });
  const routes = Array.from({ length: SERVICES }, (_, i) => ({ name: `r${i}`, hostnames: [`svc-${i}`], backendRefs: [{ name: `svc-${i}` }] }));
  return JSON.stringify({ listeners: [{ name: 'out', address: '127.0.0.1:15001', routes: routes.map((r) => r.name) }], services, routes });
}

interface Control {
  child: ChildProcess;
  port: number;
  adminPort: number;
}

async function startControl(file: string): Promise<Control> {
  const [cmd, args] = pinned(0, ['--max-old-space-size=2048', BOWLINE, 'control', '--config', file, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--build-threads', '1']);
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const m = /xds on [^:]+:(\d+), admin on [^:]+:(\d+)/.exec(out);
    if (m) return { child, port: Number(m[1]), adminPort: Number(m[2]) };
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`bowline control did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function rssMiB(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? 0);
  // Sum over the process's threads is the process: VmRSS/VmHWM cover the piscina threads too.
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

async function metric(adminPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? NaN : Number(line.slice(name.length + 1));
}

function pct(sorted: number[], q: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

interface Row {
  mode: string;
  clients: number;
  syncMs: number;
  p50: number;
  p99: number;
  max: number;
  buildMs: number;
  rss: number;
  hwm: number;
}

async function run(mode: 'delta' | 'sotw', clients: number): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), 'bowline-xds-scale-'));
  // JSON (a subset of the mesh file's YAML): generated meshes are JSON, and it parses ten times faster.
  const file = join(dir, 'mesh.json');
  writeFileSync(file, meshYaml(null));
  const cp = await startControl(file);
  const [cmd, args] = pinned(1, ['--max-old-space-size=4096', SIM, JSON.stringify({ target: `127.0.0.1:${cp.port}`, clients, delta: mode === 'delta', services: SERVICES, routeConfig: 'out' })]);
  const sim = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const events = readline.createInterface({ input: sim.stdout! });
  const next = (want: string): Promise<Record<string, unknown>> =>
    new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error(`timed out waiting for ${want}`)), 600_000);
      const on = (line: string): void => {
        const e = JSON.parse(line) as Record<string, unknown>;
        if (e['event'] !== want) return;
        clearTimeout(t);
        events.off('line', on);
        res(e);
      };
      events.on('line', on);
    });
  try {
    const t0 = Date.now();
    await next('synced');
    const syncMs = Date.now() - t0;
    await new Promise((r) => setTimeout(r, 1000));
    // One endpoint of svc-0 is added; its address is the marker the clients look for.
    const marker = '10.254.254.254';
    const arrivals = next('arrivals');
    const sentAt = Date.now();
    sim.stdin!.write(`${JSON.stringify({ marker, sentAt })}\n`);
    writeFileSync(file, meshYaml(marker));
    const a = ((await arrivals)['arrivals'] as number[]).sort((x, y) => x - y);
    const mem = rssMiB(cp.child.pid!);
    const buildMs = await metric(cp.adminPort, 'xds_snapshot_build_ms');
    return { mode, clients, syncMs, p50: pct(a, 0.5), p99: pct(a, 0.99), max: a[a.length - 1]!, buildMs, ...mem };
  } finally {
    sim.kill('SIGKILL');
    cp.child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const counts = values.clients.split(',').map(Number);
  const modes = values.modes.split(',') as ('delta' | 'sotw')[];
  const rows: Row[] = [];
  for (const mode of modes) {
    for (const n of counts) {
      if (mode === 'sotw' && n > Number(values['sotw-max-clients'])) continue;
      process.stderr.write(`xds scale: ${mode}, ${n} clients, ${SERVICES} services x ${ENDPOINTS} endpoints ...\n`);
      const r = await run(mode, n);
      process.stderr.write(`  sync ${r.syncMs} ms; change reached all in p50 ${r.p50} / p99 ${r.p99} / max ${r.max} ms; control plane RSS ${r.rss.toFixed(0)} MiB (peak ${r.hwm.toFixed(0)})\n`);
      rows.push(r);
    }
  }
  console.log(`\nControl plane scale: ${SERVICES} services x ${ENDPOINTS} endpoints; one endpoint change, from the file write to each client\n`);
  console.log('| ADS | clients | all synced after (ms) | change p50 (ms) | change p99 (ms) | max (ms) | snapshot build (ms) | RSS (MiB) | peak RSS (MiB) | bar (p99 < 1000 ms, RSS < 512 MiB) |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const r of rows) {
    const ok = r.p99 < 1000 && r.hwm < 512;
    console.log(`| ${r.mode} | ${r.clients} | ${r.syncMs} | ${r.p50} | ${r.p99} | ${r.max} | ${r.buildMs} | ${r.rss.toFixed(0)} | ${r.hwm.toFixed(0)} | ${r.clients === 1000 ? (ok ? 'PASS' : 'FAIL') : ok ? 'ok' : 'over'} |`);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
