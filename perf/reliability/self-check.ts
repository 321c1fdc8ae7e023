// Self-check of the reliability tools: drives loadgen straight at fault upstreams (no proxy) and checks
// that what it measures matches the faults that were set (errors, latency, outage and recovery).
//
//   npm run build && node dist/perf/reliability/self-check.js
//
// Light on purpose (about 10 s at 500 req/s). Exit status 0 when every check passes, 1 otherwise.

import { startFaultUpstreams, type FaultFleet } from './fault-upstream';
import { formatLoadResult, recoveredAfterMs, runLoad, type LoadOptions, type LoadResult } from './loadgen';

let failures = 0;

/** Prints one check; `detail` says what was measured against what was expected. */
function check(ok: boolean, what: string, detail: string): void {
  if (!ok) failures++;
  process.stdout.write(`  ${ok ? 'PASS' : 'FAIL'} ${what}: ${detail}\n`);
}

const within = (v: number, lo: number, hi: number): boolean => v >= lo && v <= hi;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs a load against one upstream while `during` changes its faults on its own timers. */
async function load(fleet: FaultFleet, name: string, o: Partial<LoadOptions>, during?: () => Promise<void>): Promise<LoadResult> {
  const u = fleet.get(name);
  u.mark();
  u.takeRequests();
  const run = runLoad({ host: u.host, port: u.port, path: '/', ratePerSec: 500, durationMs: 3000, maxConnections: 32, timeoutMs: 2000, ...o });
  const [r] = await Promise.all([run, during?.()]);
  process.stdout.write(formatLoadResult(r).replace(/^/gm, '  ') + '\n');
  return r;
}

/** The 100 ms buckets with failures, as "start-end ms" ranges. */
function failingRanges(r: LoadResult): string {
  const out: string[] = [];
  let from = -1;
  r.series.forEach((b, i) => {
    const bad = b.failed > 0;
    if (bad && from < 0) from = b.startMs;
    if (from >= 0 && (!bad || i === r.series.length - 1)) {
      out.push(`${from}-${bad ? b.startMs + r.bucketMs : b.startMs}`);
      from = -1;
    }
  });
  return out.length ? out.join(', ') + ' ms' : 'none';
}

async function main(): Promise<void> {
  const fleet = await startFaultUpstreams([
    { name: 'a', zone: 'zone-a' },
    { name: 'b', zone: 'zone-b' },
    { name: 'c', zone: 'zone-c' },
  ]);
  process.stdout.write(`fault upstreams: ${fleet.endpoints().map((e) => `${e.name}/${e.zone} on ${e.host}:${e.port}`).join(', ')}\n`);
  try {
    process.stdout.write('\n1. upstream a, 500 req/s for 3 s; 50% 503 (Retry-After: 1) from 1 s to 2 s\n');
    const a = fleet.get('a');
    const r1 = await load(fleet, 'a', {}, async () => {
      await sleep(1000);
      a.setFaults({ status: 503, errorRate: 0.5, retryAfter: '1' });
      await sleep(1000);
      a.clearFaults();
    });
    const got503 = r1.statuses['503'] ?? 0;
    const seen = a.takeRequests();
    const perSecond = a.requestSeries();
    check(r1.sent === 1500 && r1.completed === 1500 && r1.failed === got503, 'all sent and answered', `sent ${r1.sent}, completed ${r1.completed}, failed ${r1.failed}`);
    check(seen === r1.sent, 'upstream counted every request', `upstream ${seen}, loadgen ${r1.sent}`);
    check(within(got503, 200, 300), '503 count ~ 50% of 1 s at 500 req/s', `${got503}, expected ~250 (binomial sd ~11)`);
    check(got503 === a.stats().injected, 'client 503s = upstream injected', `${got503} vs ${a.stats().injected}`);
    const outside = r1.series.filter((b) => b.failed > 0 && (b.startMs < 900 || b.startMs >= 2100)).length;
    check(outside === 0, '503s only in the fault window', `failing buckets ${failingRanges(r1)}`);
    const rec1 = recoveredAfterMs(r1);
    check(rec1 !== null && within(rec1, 1900, 2200), 'recoveredAfterMs ~ 2000', `${rec1}`);
    check(r1.byUpstream.a === 1500 && r1.byZone['zone-a'] === 1500, 'x-upstream / x-zone tallies', JSON.stringify({ byUpstream: r1.byUpstream, byZone: r1.byZone }));
    check(perSecond.slice(0, 3).every((n) => within(n, 440, 560)), 'upstream per-second series ~500', JSON.stringify(perSecond));
    check(r1.latency.p50Ms < 20, 'no added latency', `p50 ${r1.latency.p50Ms} ms`);

    process.stdout.write('\n2. upstream b with delayMs=100, 500 req/s for 2 s, 100 connections\n');
    const b = fleet.get('b');
    b.setFaults({ delayMs: 100 });
    const inFlight: number[] = [];
    const r2 = await load(fleet, 'b', {
      durationMs: 2000,
      maxConnections: 100,
      onTick: (p) => {
        if (within(p.elapsedMs, 500, 1800)) inFlight.push(b.inFlight);
      },
    });
    b.clearFaults();
    const midInFlight = inFlight.sort((x, y) => x - y)[inFlight.length >> 1] ?? NaN;
    check(within(r2.latency.p50Ms, 99, 115), 'p50 ~ 100 ms', `p50 ${r2.latency.p50Ms} ms, p99 ${r2.latency.p99Ms} ms`);
    check(r2.latency.p99Ms < 200 && r2.ok === r2.sent, 'all ok, p99 under 200 ms', `ok ${r2.ok}/${r2.sent}`);
    check(within(midInFlight, 35, 65), 'upstream in-flight ~ rate x delay = 50', `median ${midInFlight}`);

    process.stdout.write('\n3. upstream c (delayMs=20), 500 req/s for 3 s; down() at 1 s, up() at 2 s\n');
    const c = fleet.get('c');
    const portBefore = c.port;
    c.setFaults({ delayMs: 20 });
    const r3 = await load(fleet, 'c', { timeoutMs: 1000 }, async () => {
      await sleep(1000);
      await c.down();
      await sleep(1000);
      await c.up();
    });
    c.clearFaults();
    const errs = r3.errors.connect + r3.errors.reset + r3.errors.timeout + r3.errors.other;
    check(r3.sent === r3.completed + errs, 'sent = completed + errors', `${r3.sent} = ${r3.completed} + ${errs}`);
    check(within(r3.errors.connect, 400, 560), 'refused while down ~ 1 s x 500 req/s', `connect errors ${r3.errors.connect}`);
    check(within(r3.errors.reset, 1, 30), 'in-flight requests reset at down() ~ rate x delay = 10', `reset errors ${r3.errors.reset}`);
    check(c.port === portBefore && c.isUp, 'back on the same port', `${portBefore} -> ${c.port}, up ${c.isUp}`);
    const rec3 = recoveredAfterMs(r3);
    check(rec3 !== null && within(rec3, 1900, 2200), 'recoveredAfterMs ~ 2000', `${rec3}; failing buckets ${failingRanges(r3)}`);
    check(r3.connectionsOpened > r3.errors.reset, 'connections were remade after the outage', `${r3.connectionsOpened} opened`);

    process.stdout.write('\n4. no coordinated omission: a with delayMs=50 on 5 connections (100 req/s capacity), 200 req/s for 1 s\n');
    a.setFaults({ delayMs: 50 });
    const r4 = await load(fleet, 'a', { ratePerSec: 200, durationMs: 1000, maxConnections: 5, timeoutMs: 5000 });
    a.clearFaults();
    // Request i waits for its connection: it ends near 50 * (floor(i / 5) + 1) ms, scheduled at 5 i ms.
    // Each 50 ms round takes a little longer (timer slack, turnaround), which adds up over 40 rounds.
    check(within(r4.latency.p50Ms, 450, 800), 'queueing counted: p50 ~ 550 ms (a closed-loop tool would say 50)', `p50 ${r4.latency.p50Ms} ms`);
    check(within(r4.latency.maxMs, 900, 1500), 'max ~ 1000 ms plus the rounds\' slack', `max ${r4.latency.maxMs} ms`);
  } finally {
    await fleet.close();
  }
  process.stdout.write(`\n${failures === 0 ? 'self-check passed' : `self-check: ${failures} check(s) FAILED`}\n`);
  process.exitCode = failures === 0 ? 0 : 1;
}

main().catch((e: unknown) => {
  process.stderr.write(`self-check: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
