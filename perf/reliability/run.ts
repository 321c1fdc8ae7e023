// The reliability benchmark (`npm run bench -- reliability`): real Bowline proxies in front of fault
// upstreams, driven by an open-loop load generator, in five scenarios that each compare balancing
// policies in the same run: a slow endpoint, zones at nominal load, an overloaded local zone, a full
// outage under retries, and a dead local zone. Prints one table with the issue's bars and a verdict.
//
//   node dist/perf/reliability/run.js [scenario ...]     (slow-endpoint zones overload outage zone-kill)
//   RELIABILITY_SCALE=0.5 shortens every phase (quick look; the figures get noisier).

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type FaultFleet, type FaultUpstreamSpec, startFaultUpstreams } from './fault-upstream';
import { type LoadResult, recoveredAfterMs, runLoad } from './loadgen';

const BOWLINE = resolve(__dirname, '../../bin/bowline.js');
const SCALE = Number(process.env['RELIABILITY_SCALE'] ?? '1') || 1;
const ms = (x: number): number => Math.round(x * SCALE);

interface Row {
  scenario: string;
  policy: string;
  measure: string;
  value: string;
  bar?: string;
  pass?: boolean;
}

const rows: Row[] = [];

function row(r: Row): void {
  rows.push(r);
  const verdict = r.pass === undefined ? '' : r.pass ? '  PASS' : '  FAIL';
  process.stderr.write(`  ${r.scenario} | ${r.policy} | ${r.measure}: ${r.value}${r.bar ? ` (bar ${r.bar})` : ''}${verdict}\n`);
}

// ------------------------------------------------------------------ the proxy

interface Proxy {
  port: number;
  adminPort: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

const hasTaskset = spawnSync('sh', ['-c', 'command -v taskset'], { stdio: 'ignore' }).status === 0;

/** Starts `bowline proxy --config` on the YAML, pinned to CPU 0 when it can (the generator runs beside it). */
async function startProxy(yaml: string): Promise<Proxy> {
  const dir = mkdtempSync(join(tmpdir(), 'bowline-reliability-'));
  const file = join(dir, 'bowline.yaml');
  writeFileSync(file, yaml);
  const args = ['--max-semi-space-size=1', BOWLINE, 'proxy', '--config', file, '--workers', '1', '--admin', '127.0.0.1:0'];
  const child = hasTaskset ? spawn('taskset', ['-c', '0', process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 10_000;
  for (;;) {
    const admin = /admin on [^:]+:(\d+)/.exec(out);
    const listener = /listener out \(\w+\) on \S+:(\d+)/.exec(out);
    if (admin && listener) {
      return {
        port: Number(listener[1]),
        adminPort: Number(admin[1]),
        child,
        stop: async () => {
          child.kill('SIGTERM');
          await new Promise((r) => child.once('exit', r));
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`bowline did not start:\n${out}`);
    }
    await sleep(25);
  }
}

async function metric(p: Proxy, name: string, match: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${p.adminPort}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(match).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

const sleep = (t: number): Promise<void> => new Promise((r) => setTimeout(r, t));

/** The config of one service over the fleet, with one route; `service` and `route` add YAML lines. */
function meshYaml(fleet: FaultFleet, o: { zone?: string; service?: string[]; route?: string[] }): string {
  const eps = fleet.upstreams.map((u) => `      - { address: 127.0.0.1:${u.port}, zone: "${u.zone}" }`);
  return [
    `proxy: { zone: "${o.zone ?? ''}" }`,
    'listeners:',
    '  - { name: out, address: 127.0.0.1:0, routes: [r] }',
    'services:',
    '  - name: svc',
    '    endpoints:',
    ...eps,
    ...(o.service ?? []).map((l) => `    ${l}`),
    'routes:',
    '  - name: r',
    '    backendRefs: [{ name: svc }]',
    ...(o.route ?? []).map((l) => `    ${l}`),
    '',
  ].join('\n');
}

function load(p: Proxy, ratePerSec: number, durationMs: number): Promise<LoadResult> {
  return runLoad({ host: '127.0.0.1', port: p.port, path: '/', ratePerSec, durationMs, maxConnections: 256, timeoutMs: 10_000 });
}

const fmtMs = (x: number): string => `${x.toFixed(1)} ms`;
const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

function share(r: LoadResult, key: 'byZone' | 'byUpstream', value: string): number {
  const n = Object.values(r[key]).reduce((a, b) => a + b, 0);
  return n === 0 ? 0 : (r[key][value] ?? 0) / n;
}

async function withFleet<T>(specs: FaultUpstreamSpec[], f: (fleet: FaultFleet) => Promise<T>): Promise<T> {
  const fleet = await startFaultUpstreams(specs);
  try {
    return await f(fleet);
  } finally {
    await fleet.close();
  }
}

async function withProxy<T>(yaml: string, f: (p: Proxy) => Promise<T>): Promise<T> {
  const p = await startProxy(yaml);
  try {
    return await f(p);
  } finally {
    await p.stop();
  }
}

// Every proxy knows it is in zone-a (so that it prices cross-zone bytes); only the last keeps to it.
const POLICIES = [
  { name: 'round-robin', service: ['balancer: round-robin', 'zoneLocality: { enabled: false }'], hazl: false },
  { name: 'p2c-ewma', service: ['balancer: p2c-ewma', 'zoneLocality: { enabled: false }'], hazl: false },
  { name: 'p2c-ewma+hazl', service: ['balancer: p2c-ewma'], hazl: true },
] as const;

/** Three zones of two endpoints; the others are 1 ms further away than the proxy's own zone-a. */
function threeZones(): FaultUpstreamSpec[] {
  return ['a', 'b', 'c'].flatMap((z) => [1, 2].map((i) => ({ name: `${z}${i}`, zone: `zone-${z}` })));
}

function crossZoneLatency(fleet: FaultFleet, baseMs: number, extra: Record<string, unknown> = {}): void {
  for (const u of fleet.upstreams) u.setFaults({ delayMs: baseMs + (u.zone === 'zone-a' ? 0 : 1), ...extra });
}

// ------------------------------------------------------------------ scenarios

/** 10 endpoints, one 100 ms slower: p99 under P2C-EWMA at most a third of round-robin's. */
async function slowEndpoint(): Promise<void> {
  const specs = Array.from({ length: 10 }, (_, i) => ({ name: `e${i}`, zone: '' }));
  const p99: Record<string, number> = {};
  for (const balancer of ['round-robin', 'least-request', 'p2c-ewma']) {
    await withFleet(specs, async (fleet) => {
      for (const u of fleet.upstreams) u.setFaults({ delayMs: u.name === 'e9' ? 102 : 2 });
      await withProxy(meshYaml(fleet, { service: [`balancer: ${balancer}`] }), async (p) => {
        const r = await load(p, 400, ms(8000));
        p99[balancer] = r.latency.p99Ms;
        row({ scenario: 'slow endpoint', policy: balancer, measure: 'p50 / p99 / share of the slow one', value: `${fmtMs(r.latency.p50Ms)} / ${fmtMs(r.latency.p99Ms)} / ${pct(share(r, 'byUpstream', 'e9'))}` });
      });
    });
  }
  const ratio = p99['p2c-ewma']! / p99['round-robin']!;
  row({ scenario: 'slow endpoint', policy: 'p2c-ewma vs round-robin', measure: 'p99 ratio', value: ratio.toFixed(3), bar: '<= 0.333', pass: ratio <= 1 / 3 });
}

/** Three zones at nominal load: at least 99% of requests stay in zone with HAZL. */
async function zonesNominal(): Promise<void> {
  await withFleet(threeZones(), async (fleet) => {
    crossZoneLatency(fleet, 2);
    for (const pol of POLICIES) {
      await withProxy(meshYaml(fleet, { zone: 'zone-a', service: [...pol.service] }), async (p) => {
        const r = await load(p, 300, ms(6000));
        const inZone = share(r, 'byZone', 'zone-a');
        const hazl = pol.hazl;
        const usd = await metric(p, 'zone_cross_transfer_cost_usd_total');
        row({
          scenario: '3 zones, nominal load',
          policy: pol.name,
          measure: 'requests in zone-a / p99 / est. cross-zone cost per 1M requests',
          value: `${pct(inZone)} / ${fmtMs(r.latency.p99Ms)} / $${((usd / r.sent) * 1e6).toFixed(4)}`,
          ...(hazl ? { bar: '>= 99%', pass: inZone >= 0.99 } : {}),
        });
      });
    }
  });
}

/**
 * The local zone overloaded: each endpoint serves 2 requests at a time, 20 ms each (100 req/s), so
 * zone-a alone takes 200 req/s. 100 req/s, then 300 req/s, then 100 req/s again: HAZL spills while it
 * must (p99 within 2x the unloaded p99) and comes home after (measured after 2 s at the lower rate).
 */
async function overload(): Promise<void> {
  // What spill-over buys: the same zone-local routing with the watermark out of reach.
  const noSpill = { name: 'p2c-ewma, zone-local, no spill', service: ['balancer: p2c-ewma', 'zoneLocality: { highLoad: 1000000 }'], hazl: false };
  await withFleet(threeZones(), async (fleet) => {
    for (const pol of [...POLICIES, noSpill]) {
      crossZoneLatency(fleet, 20, { concurrency: 2 });
      await withProxy(meshYaml(fleet, { zone: 'zone-a', service: [...pol.service] }), async (p) => {
        const calm = await load(p, 100, ms(5000));
        const busy = await load(p, 300, ms(10_000));
        // Load drops: 2 s to settle, then 4 s measured.
        await load(p, 100, ms(2000));
        const after = await load(p, 100, ms(4000));
        const tailZone = share(after, 'byZone', 'zone-a');
        const hazl = pol.hazl;
        const ratio = busy.latency.p99Ms / calm.latency.p99Ms;
        row({
          scenario: 'local zone overloaded',
          policy: pol.name,
          measure: 'p99 calm / overloaded (ratio); in zone-a calm / overloaded / after',
          value: `${fmtMs(calm.latency.p99Ms)} / ${fmtMs(busy.latency.p99Ms)} (${ratio.toFixed(2)}x); ${pct(share(calm, 'byZone', 'zone-a'))} / ${pct(share(busy, 'byZone', 'zone-a'))} / ${pct(tailZone)}`,
          ...(hazl ? { bar: 'p99 <= 2x, after >= 99%', pass: ratio <= 2 && tailZone >= 0.99 } : {}),
        });
      });
    }
  });
}

/** Every endpoint answers 503: with the budget, the upstream sees at most 1.2x the offered rate. */
async function outage(): Promise<void> {
  const variants = [
    { name: 'no retries', retry: 'retry: { maxRetries: 0 }' },
    { name: 'retries, no budget', retry: 'retry: { on: [5xx], maxRetries: 2, budget: { ratio: 1, minPerSecond: 100000 } }' },
    { name: 'retries, budget (default)', retry: 'retry: { on: [5xx], maxRetries: 2 }' },
  ];
  const rate = 500;
  for (const v of variants) {
    await withFleet([{ name: 'x1', zone: '' }, { name: 'x2', zone: '' }], async (fleet) => {
      for (const u of fleet.upstreams) u.setFaults({ delayMs: 1, status: 503, errorRate: 1 });
      await withProxy(meshYaml(fleet, { route: [v.retry] }), async (p) => {
        await load(p, rate, ms(2000)); // warm: the budget window fills with requests
        fleet.mark();
        fleet.takeRequests();
        const r = await load(p, rate, ms(10_000));
        const seen = Object.values(fleet.takeRequests()).reduce((a, b) => a + b, 0);
        const amp = seen / r.sent;
        const budgeted = v.name.includes('(default)');
        row({
          scenario: 'full outage (all 503)',
          policy: `p2c-ewma, ${v.name}`,
          measure: 'upstream requests / offered',
          value: `${seen} / ${r.sent} = ${amp.toFixed(3)}x`,
          ...(budgeted ? { bar: '<= 1.2x', pass: amp <= 1.2 + 0.005 } : {}),
        });
      });
    });
  }
}

/** The whole local zone dies mid-run: the error rate is back under 1% within 2 s. */
async function zoneKill(): Promise<void> {
  for (const pol of POLICIES) {
    await withFleet(threeZones(), async (fleet) => {
      crossZoneLatency(fleet, 2);
      await withProxy(meshYaml(fleet, { zone: 'zone-a', service: [...pol.service] }), async (p) => {
        const killAt = ms(3000);
        const kill = sleep(killAt).then(() => Promise.all(fleet.upstreams.filter((u) => u.zone === 'zone-a').map((u) => u.down())));
        const r = await load(p, 300, ms(8000));
        await kill;
        const rec = recoveredAfterMs(r, { fromMs: killAt, maxFailRate: 0.01 });
        const after = rec === null ? null : rec - killAt;
        const errors = r.failed;
        row({
          scenario: 'local zone killed',
          policy: pol.name,
          measure: 'errors under 1% again after / failed requests',
          value: `${after === null ? 'never' : `${after} ms`} / ${errors} of ${r.sent}`,
          bar: '<= 2000 ms',
          pass: after !== null && after <= 2000,
        });
      });
    });
  }
}

// ------------------------------------------------------------------ main

const SCENARIOS: Record<string, () => Promise<void>> = {
  'slow-endpoint': slowEndpoint,
  zones: zonesNominal,
  overload,
  outage,
  'zone-kill': zoneKill,
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  for (const w of wanted) if (!(w in SCENARIOS)) throw new Error(`unknown scenario "${w}"; known: ${Object.keys(SCENARIOS).join(' ')}`);
  const names = wanted.length > 0 ? wanted : Object.keys(SCENARIOS);
  process.stderr.write(`reliability benchmark: ${names.join(', ')}${SCALE !== 1 ? ` (scale ${SCALE})` : ''}\n`);
  for (const n of names) {
    process.stderr.write(`scenario ${n}\n`);
    await SCENARIOS[n]!();
  }
  const head = ['scenario', 'policy', 'measure', 'value', 'bar', 'result'];
  const table = rows.map((r) => [r.scenario, r.policy, r.measure, r.value, r.bar ?? '', r.pass === undefined ? '' : r.pass ? 'PASS' : 'FAIL']);
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(line(head));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const t of table) console.log(line(t));
  const failed = rows.filter((r) => r.pass === false).length;
  console.log(failed === 0 ? '\nall bars met' : `\n${failed} bar(s) missed`);
  process.exitCode = failed === 0 ? 0 : 3;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
