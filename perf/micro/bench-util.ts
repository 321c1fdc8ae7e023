// The timing harness shared by the micro benchmarks: calibrated batches timed with
// process.hrtime.bigint(), a warm-up, several interleaved rounds and the median, printed as markdown.
//
// Knobs (env): MICRO_ROUNDS (default 7), MICRO_ROUND_MS (time per round and contender, default 150),
// MICRO_WARMUP_MS (per contender, default 300).

/** One contender: `run(n)` performs the operation n times and returns a value derived from the results,
 *  which the harness folds into a sink so that the optimiser cannot drop the work. */
export interface Contender {
  name: string;
  run(n: number): number;
}

export interface Measured {
  name: string;
  /** Median over rounds of the mean time per operation, in nanoseconds. */
  nsPerOp: number;
  minNs: number;
  maxNs: number;
  rounds: number;
}

const envNum = (k: string, d: number): number => {
  const v = Number(process.env[k]);
  return Number.isFinite(v) && v > 0 ? v : d;
};

export const ROUNDS = envNum('MICRO_ROUNDS', 7);
export const ROUND_MS = envNum('MICRO_ROUND_MS', 150);
export const WARMUP_MS = envNum('MICRO_WARMUP_MS', 300);

let sink = 0;

/** Read at the end so that the sink is observably used. */
export function sinkValue(): number {
  return sink;
}

function timeBatch(c: Contender, n: number): number {
  const t0 = process.hrtime.bigint();
  sink = (sink + c.run(n)) | 0;
  return Number(process.hrtime.bigint() - t0);
}

/** Iterations that take about `ms` milliseconds, found by doubling from 1. */
function calibrate(c: Contender, ms: number): number {
  let n = 1;
  for (;;) {
    const ns = timeBatch(c, n);
    if (ns >= ms * 1e6 / 4 || n >= 1 << 30) return Math.max(1, Math.round((n * ms * 1e6) / Math.max(ns, 1)));
    n *= 2;
  }
}

export function median(a: number[]): number {
  const b = [...a].sort((x, y) => x - y);
  const h = b.length >> 1;
  return b.length % 2 ? b[h] : (b[h - 1] + b[h]) / 2;
}

/**
 * Measures contenders side by side: each is warmed up (and its batch size calibrated), then every round
 * times one batch of each in turn, so that slow drift of a shared machine hits all of them alike.
 */
export function compare(contenders: Contender[]): Measured[] {
  const sizes = contenders.map((c) => {
    const deadline = process.hrtime.bigint() + BigInt(Math.round(WARMUP_MS * 1e6));
    let n = calibrate(c, Math.min(ROUND_MS, WARMUP_MS) / 4);
    while (process.hrtime.bigint() < deadline) timeBatch(c, n);
    n = calibrate(c, ROUND_MS);
    return n;
  });
  const perOp: number[][] = contenders.map(() => []);
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < contenders.length; i++) perOp[i].push(timeBatch(contenders[i], sizes[i]) / sizes[i]);
  }
  return contenders.map((c, i) => ({
    name: c.name,
    nsPerOp: median(perOp[i]),
    minNs: Math.min(...perOp[i]),
    maxNs: Math.max(...perOp[i]),
    rounds: ROUNDS,
  }));
}

export const fmt = (x: number, d = 0): string =>
  Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : 'n/a';

/** ns/op with a precision that suits its size. */
export const fmtNs = (ns: number): string => fmt(ns, ns < 10 ? 2 : ns < 100 ? 1 : 0);

/** MB/s (10^6 bytes per second) for `bytes` processed per operation. */
export const mbPerS = (bytes: number, ns: number): number => (bytes / ns) * 1e3;

export function table(header: string[], align: ('l' | 'r')[], rows: string[][]): string {
  const out = [`| ${header.join(' | ')} |`, `|${align.map((a) => (a === 'r' ? '---:' : '---')).join('|')}|`];
  for (const r of rows) out.push(`| ${r.join(' | ')} |`);
  return out.join('\n');
}
