// Open-loop, constant-rate HTTP/1.1 load for the reliability benchmarks: requests leave on a fixed
// schedule whatever the target does, and each latency counts from its scheduled send time, so a
// stalled target shows as latency and timeouts instead of as fewer requests (no coordinated omission).
//
// As a library:
//   const r = await runLoad({ host: '127.0.0.1', port: 18200, path: '/', ratePerSec: 500, durationMs: 10_000,
//                             maxConnections: 64, timeoutMs: 2000, onTick: (p) => ... });
//   console.log(formatLoadResult(r)); recoveredAfterMs(r, { fromMs: 5000 });
//
// As a command (progress every second on stderr, the summary on stdout; --json for the whole result):
//   node dist/perf/reliability/loadgen.js --port 18200 [--host 127.0.0.1] [--path /] [--rate 500]
//        [--duration-ms 10000] [--connections 64] [--timeout-ms 2000] [--header 'name: value' ...] [--json]

import * as http from 'node:http';
import type * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
// The package index also compiles a WebAssembly build at load time: load the plain Int32 one only.
import Int32Histogram from 'hdr-histogram-js/dist/Int32Histogram';

export interface LoadOptions {
  host: string;
  port: number;
  path: string;
  /** Requests per second, spread evenly: request i is scheduled at i * 1000 / ratePerSec ms. */
  ratePerSec: number;
  /** How long requests are scheduled for; the run then waits for the last answers (at most timeoutMs). */
  durationMs: number;
  /** Keep-alive connections at most. A request with none free waits, and the wait counts as latency. */
  maxConnections: number;
  /** A request not answered this long after its scheduled time is aborted (its connection closed) and
   * counted as a timeout; measured from the schedule like the latency, so waiting for a connection counts. */
  timeoutMs: number;
  headers?: Record<string, string>;
  /** GET by default (no request body is sent). */
  method?: string;
  /** Scheduler period in ms (1 by default): the requests due are sent together each period, so a
   * latency can include up to about this much scheduler delay; `schedulerLagMs` in the result says how much. */
  tickMs?: number;
  /** Width of the `series` buckets and period of `onTick`, in ms; 100 by default. */
  bucketMs?: number;
  /** Called every bucketMs while running and once at the end, on the generator's thread: keep it short
   * (its time delays the scheduler), and do not throw. */
  onTick?: (p: LoadProgress) => void;
  /** Aborting stops scheduling; the requests already sent are still waited for. */
  signal?: AbortSignal;
}

/** How a request failed without a complete response. */
export type ErrorKind = 'connect' | 'reset' | 'timeout' | 'other';

/** Latency percentiles in ms (hdr histogram, 3 significant digits); all NaN when count is 0. */
export interface LatencySummary {
  count: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  meanMs: number;
}

/** The requests scheduled within one bucket of time, whenever they finished: bucketing by schedule
 * gives every bucket the same number of requests, so its failure ratio is the error rate at that time. */
export interface LoadBucket {
  /** Offset of the bucket's start from the start of the run, in ms. */
  startMs: number;
  sent: number;
  /** Complete responses, any status. */
  completed: number;
  /** Complete 2xx responses. */
  ok: number;
  /** Non-2xx responses plus errors. */
  failed: number;
  /** Errors only (no complete response). */
  errors: number;
  /** 99th percentile latency of the complete responses (any status), exact; NaN when none. */
  p99Ms: number;
}

/** Running totals passed to `onTick`. */
export interface LoadProgress {
  elapsedMs: number;
  sent: number;
  completed: number;
  ok: number;
  /** Non-2xx responses plus errors so far. */
  failed: number;
  errors: number;
  /** Sent and not finished yet (waiting for a connection, or for the answer). */
  inFlight: number;
}

export interface LoadResult {
  ratePerSec: number;
  durationMs: number;
  /** From the first scheduled request until the last one finished. */
  elapsedMs: number;
  /** Requests sent (scheduled and handed to the connection pool); sent = completed + errors. */
  sent: number;
  /** Complete responses, any status. */
  completed: number;
  /** Complete 2xx responses. */
  ok: number;
  /** Non-2xx responses plus errors. */
  failed: number;
  /** Complete responses by status code. */
  statuses: Record<string, number>;
  /** Requests without a complete response, by kind: connect (refused, unreachable), reset (reset or
   * closed mid-request), timeout (timeoutMs passed), other. */
  errors: Record<ErrorKind, number>;
  /** The same errors by Node error code (ECONNREFUSED, ECONNRESET, ...; TIMEOUT for ours), for diagnosis. */
  errorCodes: Record<string, number>;
  /** Latency of all complete responses, from scheduled send time to the end of the response. */
  latency: LatencySummary;
  /** The same for 2xx responses only. */
  latencyOk: LatencySummary;
  /** Complete responses by their `x-zone` header ('-' when absent, e.g. an answer made by a proxy itself). */
  byZone: Record<string, number>;
  /** Complete responses by their `x-upstream` header ('-' when absent). */
  byUpstream: Record<string, number>;
  /** TCP connections the pool established (refused attempts not included): more than maxConnections
   * means connections were lost and remade. */
  connectionsOpened: number;
  /** How late the scheduler handed requests to the pool (the generator's own delay, which the latency
   * includes): a large max means the generator was starved of CPU and the run is suspect. */
  schedulerLagMs: { mean: number; max: number };
  bucketMs: number;
  series: LoadBucket[];
}

/** One scheduled request, from its schedule to its end. */
interface Pending {
  scheduledAt: number;
  bucket: number;
  req: http.ClientRequest | null;
  done: boolean;
}

interface BucketAcc {
  sent: number;
  completed: number;
  ok: number;
  errors: number;
  latenciesMs: number[];
}

const HIGHEST_US = 3_600_000_000; // one hour

const ERROR_KIND: Record<string, ErrorKind> = {
  ECONNREFUSED: 'connect',
  EHOSTUNREACH: 'connect',
  ENETUNREACH: 'connect',
  EADDRNOTAVAIL: 'connect',
  ENOTFOUND: 'connect',
  EAI_AGAIN: 'connect',
  ECONNRESET: 'reset', // also node's "socket hang up" and "aborted" (connection closed mid-response)
  EPIPE: 'reset',
  ECONNABORTED: 'reset',
  ERR_STREAM_PREMATURE_CLOSE: 'reset',
  ETIMEDOUT: 'timeout',
};

function summarize(h: Int32Histogram): LatencySummary {
  const n = h.totalCount;
  const at = (p: number): number => (n === 0 ? NaN : h.getValueAtPercentile(p) / 1000);
  return {
    count: n,
    p50Ms: at(50),
    p90Ms: at(90),
    p99Ms: at(99),
    p999Ms: at(99.9),
    maxMs: n === 0 ? NaN : h.maxValue / 1000,
    meanMs: n === 0 ? NaN : h.mean / 1000,
  };
}

function validate(o: LoadOptions): void {
  const positive = (v: number, what: string): void => {
    if (!(Number.isFinite(v) && v > 0)) throw new RangeError(`${what} must be a finite number > 0, got ${v}`);
  };
  positive(o.ratePerSec, 'ratePerSec');
  positive(o.durationMs, 'durationMs');
  positive(o.timeoutMs, 'timeoutMs');
  if (!Number.isInteger(o.maxConnections) || o.maxConnections < 1) throw new RangeError(`maxConnections must be an integer >= 1, got ${o.maxConnections}`);
  if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw new RangeError(`bad port ${o.port}`);
  if (o.tickMs !== undefined) positive(o.tickMs, 'tickMs');
  if (o.bucketMs !== undefined) positive(o.bucketMs, 'bucketMs');
}

/**
 * Sends `ratePerSec` requests per second for `durationMs` on at most `maxConnections` keep-alive
 * connections, waits for every answer (bounded by `timeoutMs`), and resolves with what it measured.
 * Throws only on bad options; every request failure is counted in the result.
 */
export function runLoad(opts: LoadOptions): Promise<LoadResult> {
  validate(opts);
  const tickMs = opts.tickMs ?? 1;
  const bucketMs = opts.bucketMs ?? 100;
  const rate = opts.ratePerSec;
  let total = Math.floor((opts.durationMs * rate) / 1000);
  const buckets: BucketAcc[] = [];
  for (let b = 0; b * bucketMs < opts.durationMs; b++) buckets.push({ sent: 0, completed: 0, ok: 0, errors: 0, latenciesMs: [] });

  // FIFO keeps every pooled connection in use, so that none sits idle long enough for a server or a
  // proxy to close it (a reset that would not be the fault under test).
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.maxConnections, maxFreeSockets: opts.maxConnections, scheduling: 'fifo' });
  const requestOptions: http.RequestOptions = {
    agent,
    host: opts.host,
    port: opts.port,
    path: opts.path,
    method: opts.method ?? 'GET',
    headers: opts.headers ?? {},
  };

  const latency = new Int32Histogram(1, HIGHEST_US, 3);
  const latencyOk = new Int32Histogram(1, HIGHEST_US, 3);
  const statuses: Record<string, number> = {};
  const errors: Record<ErrorKind, number> = { connect: 0, reset: 0, timeout: 0, other: 0 };
  const errorCodes: Record<string, number> = {};
  const byZone: Record<string, number> = {};
  const byUpstream: Record<string, number> = {};
  const seenSockets = new WeakSet<net.Socket>();
  let connectionsOpened = 0;
  let sent = 0;
  let completed = 0;
  let ok = 0;
  let errorCount = 0;
  let lagSumMs = 0;
  let lagMaxMs = 0;
  // Outstanding requests in schedule order, so that the timeout sweep stops at the first one not due.
  let pending: Pending[] = [];
  let head = 0;
  let next = 0;
  const t0 = performance.now();
  let lastEnd = t0;
  let nextReportMs = bucketMs;

  const record = (h: Int32Histogram, latMs: number): void => {
    h.recordValue(Math.min(HIGHEST_US, Math.max(1, Math.round(latMs * 1000))));
  };

  const onResponseEnd = (p: Pending, res: http.IncomingMessage): void => {
    if (p.done) return;
    p.done = true;
    lastEnd = performance.now();
    const latMs = lastEnd - p.scheduledAt;
    const status = res.statusCode ?? 0;
    const b = buckets[p.bucket];
    completed++;
    b.completed++;
    statuses[status] = (statuses[status] ?? 0) + 1;
    record(latency, latMs);
    b.latenciesMs.push(latMs);
    if (status >= 200 && status < 300) {
      ok++;
      b.ok++;
      record(latencyOk, latMs);
    }
    const zone = res.headers['x-zone'];
    const upstream = res.headers['x-upstream'];
    const z = typeof zone === 'string' ? zone : '-';
    const u = typeof upstream === 'string' ? upstream : '-';
    byZone[z] = (byZone[z] ?? 0) + 1;
    byUpstream[u] = (byUpstream[u] ?? 0) + 1;
  };

  const onError = (p: Pending, code: string, kind?: ErrorKind): void => {
    if (p.done) return;
    p.done = true;
    lastEnd = performance.now();
    errorCount++;
    buckets[p.bucket].errors++;
    errors[kind ?? ERROR_KIND[code] ?? 'other']++;
    errorCodes[code] = (errorCodes[code] ?? 0) + 1;
  };

  const onConnect = (): void => {
    connectionsOpened++;
  };
  // 'socket' comes for every request, on a reused connection too; a new one is still connecting, and
  // counts once connected (refused attempts are errors, not connections).
  const onSocket = (s: net.Socket): void => {
    if (seenSockets.has(s)) return;
    seenSockets.add(s);
    if (s.connecting) s.once('connect', onConnect);
    else onConnect();
  };

  const send = (p: Pending): void => {
    // The agent queues the request while all maxConnections are busy; its latency keeps counting.
    const req = http.request(requestOptions);
    p.req = req;
    req.on('socket', onSocket);
    req.on('response', (res) => {
      res.on('end', () => onResponseEnd(p, res));
      // A connection closed mid-body: node reports ECONNRESET ("aborted") on the response.
      res.on('error', (e: NodeJS.ErrnoException) => onError(p, e.code ?? 'ERR_UNKNOWN'));
      res.resume();
    });
    req.on('error', (e: NodeJS.ErrnoException) => onError(p, e.code ?? 'ERR_UNKNOWN'));
    req.end();
  };

  const progress = (now: number): LoadProgress => ({
    elapsedMs: now - t0,
    sent,
    completed,
    ok,
    failed: completed - ok + errorCount,
    errors: errorCount,
    inFlight: sent - completed - errorCount,
  });

  return new Promise<LoadResult>((resolve) => {
    const stop = (): void => {
      total = Math.min(total, next);
    };
    opts.signal?.addEventListener('abort', stop, { once: true });
    if (opts.signal?.aborted === true) stop();

    const finish = (): void => {
      clearInterval(timer);
      opts.signal?.removeEventListener('abort', stop);
      agent.destroy();
      opts.onTick?.(progress(performance.now()));
      const series = buckets.map((b, i): LoadBucket => {
        const sorted = b.latenciesMs.sort((x, y) => x - y);
        return {
          startMs: i * bucketMs,
          sent: b.sent,
          completed: b.completed,
          ok: b.ok,
          failed: b.completed - b.ok + b.errors,
          errors: b.errors,
          p99Ms: sorted.length === 0 ? NaN : sorted[Math.max(0, Math.ceil(sorted.length * 0.99) - 1)],
        };
      });
      resolve({
        ratePerSec: rate,
        durationMs: opts.durationMs,
        elapsedMs: lastEnd - t0,
        sent,
        completed,
        ok,
        failed: completed - ok + errorCount,
        statuses,
        errors,
        errorCodes,
        latency: summarize(latency),
        latencyOk: summarize(latencyOk),
        byZone,
        byUpstream,
        connectionsOpened,
        schedulerLagMs: { mean: sent === 0 ? 0 : lagSumMs / sent, max: lagMaxMs },
        bucketMs,
        series,
      });
    };

    const tick = (): void => {
      const now = performance.now();
      const elapsed = now - t0;
      // Send everything due by now: request i is due at i * 1000 / rate ms.
      const due = Math.min(total, Math.floor((elapsed * rate) / 1000) + 1);
      while (next < due) {
        const offsetMs = (next * 1000) / rate;
        const p: Pending = { scheduledAt: t0 + offsetMs, bucket: Math.min(buckets.length - 1, Math.floor(offsetMs / bucketMs)), req: null, done: false };
        next++;
        sent++;
        buckets[p.bucket].sent++;
        const lag = now - p.scheduledAt;
        lagSumMs += lag;
        if (lag > lagMaxMs) lagMaxMs = lag;
        pending.push(p);
        send(p);
      }
      // Abort what is still outstanding timeoutMs after its schedule; finished ones are just skipped.
      while (head < pending.length) {
        const p = pending[head];
        if (!p.done) {
          if (now - p.scheduledAt < opts.timeoutMs) break;
          onError(p, 'TIMEOUT', 'timeout');
          p.req?.destroy();
        }
        head++;
      }
      if (head > 4096 && head * 2 > pending.length) {
        pending = pending.slice(head);
        head = 0;
      }
      if (opts.onTick !== undefined && elapsed >= nextReportMs) {
        nextReportMs += bucketMs;
        opts.onTick(progress(now));
      }
      if (next >= total && sent === completed + errorCount) finish();
    };

    const timer = setInterval(tick, tickMs);
    tick();
  });
}

/**
 * When a run recovered: the end of the last bucket (of those ending after `fromMs`) whose failure ratio
 * failed / sent was at or above `maxFailRate` (0.01 by default), i.e. the offset in ms after which the
 * error rate stayed under it; `fromMs` if there is no such bucket; null if the last bucket still failed
 * (no recovery within the run). Buckets with nothing sent (very low rates) count as healthy.
 */
export function recoveredAfterMs(r: { series: readonly LoadBucket[]; bucketMs: number }, opts: { fromMs?: number; maxFailRate?: number } = {}): number | null {
  const fromMs = opts.fromMs ?? 0;
  const maxFailRate = opts.maxFailRate ?? 0.01;
  let recovered: number | null = fromMs;
  r.series.forEach((b, i) => {
    const endMs = b.startMs + r.bucketMs;
    if (endMs <= fromMs || b.sent === 0 || b.failed / b.sent < maxFailRate) return;
    recovered = i === r.series.length - 1 ? null : endMs;
  });
  return recovered;
}

const fmtMs = (v: number): string => (Number.isFinite(v) ? v.toFixed(v < 10 ? 2 : 1) : 'n/a');
const tally = (r: Record<string, number>): string =>
  Object.entries(r)
    .filter(([, v]) => v > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ') || 'none';

/** A few human-readable lines summarizing a result. */
export function formatLoadResult(r: LoadResult): string {
  const l = r.latency;
  const pct = r.sent === 0 ? 'n/a' : ((100 * r.failed) / r.sent).toFixed(2) + '%';
  return [
    `${r.ratePerSec} req/s for ${r.durationMs} ms: sent ${r.sent}, completed ${r.completed}, ok ${r.ok}, failed ${r.failed} (${pct}); ` +
      `connections opened ${r.connectionsOpened}`,
    `  statuses: ${tally(r.statuses)}; errors: ${tally(r.errors)}${Object.keys(r.errorCodes).length ? ` (${tally(r.errorCodes)})` : ''}`,
    `  latency ms from schedule: p50 ${fmtMs(l.p50Ms)} p90 ${fmtMs(l.p90Ms)} p99 ${fmtMs(l.p99Ms)} p99.9 ${fmtMs(l.p999Ms)} max ${fmtMs(l.maxMs)}; ` +
      `scheduler lag mean ${fmtMs(r.schedulerLagMs.mean)} max ${fmtMs(r.schedulerLagMs.max)}`,
    `  by upstream: ${tally(r.byUpstream)}; by zone: ${tally(r.byZone)}`,
  ].join('\n');
}

// ------------------------------------------------------------------ command line

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      path: { type: 'string', default: '/' },
      rate: { type: 'string', default: '500' },
      'duration-ms': { type: 'string', default: '10000' },
      connections: { type: 'string', default: '64' },
      'timeout-ms': { type: 'string', default: '2000' },
      header: { type: 'string', multiple: true },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.port === undefined) {
    throw new Error('usage: loadgen.js --port N [--host H] [--path P] [--rate R] [--duration-ms D] [--connections C] [--timeout-ms T] [--header "k: v"] [--json]');
  }
  const headers: Record<string, string> = {};
  for (const h of values.header ?? []) {
    const i = h.indexOf(':');
    if (i <= 0) throw new Error(`bad --header '${h}': expected 'name: value'`);
    headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
  }
  let last: LoadProgress = { elapsedMs: 0, sent: 0, completed: 0, ok: 0, failed: 0, errors: 0, inFlight: 0 };
  const r = await runLoad({
    host: values.host!,
    port: Number(values.port),
    path: values.path!,
    ratePerSec: Number(values.rate),
    durationMs: Number(values['duration-ms']),
    maxConnections: Number(values.connections),
    timeoutMs: Number(values['timeout-ms']),
    headers,
    onTick: (p) => {
      if (p.elapsedMs - last.elapsedMs < 1000) return;
      process.stderr.write(`t=${(p.elapsedMs / 1000).toFixed(1)}s sent +${p.sent - last.sent} failed +${p.failed - last.failed} in flight ${p.inFlight}\n`);
      last = p;
    },
  });
  process.stdout.write((values.json ? JSON.stringify(r) : formatLoadResult(r)) + '\n');
}

if (require.main === module) {
  main().catch((e: unknown) => {
    process.stderr.write(`loadgen: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
