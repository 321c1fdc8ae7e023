// Condenses a peers.sh results directory into the lines perf/run.sh prints under the harness's own
// tables: Bowline's throughput ratios to HAProxy and to node http-proxy (paired per round and as
// ratios of medians), its latency and peak RSS, and what its own /metrics said about errors.
//
//   node dist/perf/lib/peer-summary.js <results-dir> [proxy-name=bowline] [metrics-file]

import * as fs from 'node:fs';
import * as path from 'node:path';

interface Run {
  phase: string;
  round: number;
  config: string;
  file: string;
  status: string;
}

interface WrkResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  notes: string[];
}

const read = (f: string): string => {
  try {
    return fs.readFileSync(f, 'utf8');
  } catch {
    return '';
  }
};

const toMs = (v: number, u: string): number => (u === 'us' ? v / 1000 : u === 'ms' ? v : u === 's' ? v * 1000 : u === 'm' ? v * 60000 : NaN);

export function parseWrk(txt: string): WrkResult {
  const r: WrkResult = { rps: NaN, p50Ms: NaN, p99Ms: NaN, errors: 0, notes: [] };
  let m = /Requests\/sec:\s+([\d.]+)/.exec(txt);
  if (m) r.rps = Number(m[1]);
  m = /^\s+50%\s+([\d.]+)(us|ms|s|m)\s*$/m.exec(txt);
  if (m) r.p50Ms = toMs(Number(m[1]), m[2]);
  m = /^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$/m.exec(txt);
  if (m) r.p99Ms = toMs(Number(m[1]), m[2]);
  m = /Non-2xx or 3xx responses:\s+(\d+)/.exec(txt);
  if (m) {
    r.errors += Number(m[1]);
    r.notes.push(`${m[1]} non-2xx`);
  }
  m = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(txt);
  if (m) {
    r.errors += Number(m[1]) + Number(m[2]) + Number(m[3]) + Number(m[4]);
    r.notes.push(`socket errors connect ${m[1]} read ${m[2]} write ${m[3]} timeout ${m[4]}`);
  }
  return r;
}

export function median(a: number[]): number {
  const b = a.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
  if (b.length === 0) return NaN;
  const h = b.length >> 1;
  return b.length % 2 ? b[h] : (b[h - 1] + b[h]) / 2;
}

const f = (x: number, d = 0): string => (!Number.isFinite(x) ? 'n/a' : d > 0 ? x.toFixed(d) : Math.round(x).toLocaleString('en-US'));

/** Prometheus text: sums of the samples of `name` grouped by the listed labels. */
export function sumBy(prom: string, name: string, labels: string[]): Map<string, number> {
  const out = new Map<string, number>();
  const re = new RegExp(`^${name}(?:\\{([^}]*)\\})?\\s+([-+0-9.eE]+|NaN)\\s*$`, 'gm');
  for (let m = re.exec(prom); m !== null; m = re.exec(prom)) {
    const lv: Record<string, string> = {};
    for (const kv of (m[1] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) lv[kv[1]] = kv[2];
    const key = labels.map((l) => `${l}=${lv[l] ?? ''}`).join(',');
    out.set(key, (out.get(key) ?? 0) + Number(m[2]));
  }
  return out;
}

function metricsLines(prom: string): string[] {
  const total = (name: string): number => [...sumBy(prom, name, []).values()].reduce((s, v) => s + v, 0);
  const lines: string[] = [];
  const responses = sumBy(prom, 'response_total', ['status_code', 'classification']);
  const parts = [...responses.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${f(v)} ${k.replace('status_code=', '').replace(',classification=', ' ')}`);
  lines.push(`requests ${f(total('request_total'))}; responses: ${parts.join(', ') || 'none'}`);
  const errs = sumBy(prom, 'response_errors_total', ['error']);
  const errParts = [...errs.entries()].filter(([, v]) => v > 0).map(([k, v]) => `${k.replace('error=', '')} ${f(v)}`);
  lines.push(`proxy errors (response_errors_total): ${errParts.join(', ') || 'none'}`);
  const closes = sumBy(prom, 'tcp_close_total', ['peer', 'errno']);
  const closeParts = [...closes.entries()].filter(([k, v]) => v > 0 && !k.endsWith('errno=')).map(([k, v]) => `${k} ${f(v)}`);
  lines.push(`connections closed with an errno: ${closeParts.join(', ') || 'none'}`);
  // Any other *_errors_total / restart counters the proxy exports, reported when non-zero.
  const other = new Set<string>();
  for (const m of prom.matchAll(/^(\w*(?:error|restart|reject)\w*)(?:\{[^}]*\})?\s+([-+0-9.eE]+)\s*$/gm)) {
    if (m[1] !== 'response_errors_total' && Number(m[2]) > 0) other.add(m[1]);
  }
  for (const n of other) lines.push(`${n}: ${f(total(n))}`);
  return lines;
}

function main(): void {
  const dir = process.argv[2];
  const proxy = process.argv[3] ?? 'bowline';
  const metricsFile = process.argv[4];
  if (!dir) {
    process.stderr.write('usage: peer-summary.js <results-dir> [proxy-name] [metrics-file]\n');
    process.exit(2);
  }
  const runs: Run[] = read(path.join(dir, 'runs.tsv'))
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const c = l.split('\t');
      return { phase: c[0], round: Number(c[1]), config: c[2], file: c[4], status: c[13] ?? 'ok' };
    })
    .filter((r) => r.status !== 'superseded');
  const tput = new Map<string, Map<number, WrkResult>>();
  for (const r of runs) {
    if (r.phase !== 'tput') continue;
    let m = tput.get(r.config);
    if (m === undefined) tput.set(r.config, (m = new Map()));
    m.set(r.round, parseWrk(read(r.file)));
  }
  const out: string[] = [];
  const mine = tput.get(proxy);
  if (mine === undefined || mine.size === 0) {
    out.push(`**Summary:** no throughput results for ${proxy} (see ${path.join(dir, 'logs', proxy + '.log')}).`);
  } else {
    const rps = (c: string): number => median([...(tput.get(c)?.values() ?? [])].map((w) => w.rps));
    const paired = (c: string): number => {
      const ref = tput.get(c);
      if (ref === undefined) return NaN;
      return median([...mine.entries()].map(([round, w]) => w.rps / (ref.get(round)?.rps ?? NaN)));
    };
    const ratio = (c: string, label: string): string =>
      tput.has(c) ? `${proxy}/${label} ${f(rps(proxy) / rps(c), 2)}× (paired per round ${f(paired(c), 2)}×)` : `${proxy}/${label} n/a (${c} not run)`;
    const ws = [...mine.values()];
    const errors = ws.reduce((s, w) => s + w.errors, 0);
    const notes = [...new Set(ws.flatMap((w) => w.notes))];
    const rss = read(path.join(dir, 'rss.tsv'))
      .split('\n')
      .map((l) => l.split('\t'))
      .find((c) => c[0] === proxy);
    out.push(
      `**Summary:** ${proxy} ${f(rps(proxy))} req/s over ${mine.size} round(s): ${ratio('haproxy', 'haproxy')}, ${ratio('http-proxy', 'http-proxy')}; ` +
        `p50 ${f(median(ws.map((w) => w.p50Ms)), 2)} ms, p99 ${f(median(ws.map((w) => w.p99Ms)), 2)} ms; ` +
        `peak RSS ${rss ? f(Number(rss[1]) / 1024, 1) + ' MiB' : 'n/a'}; wrk errors ${errors}${notes.length ? ' (' + notes.join('; ') + ')' : ''}.`,
    );
  }
  const latRuns = runs.filter((r) => r.phase === 'lat');
  if (latRuns.length) {
    const lat = (c: string, k: 'p50_us' | 'p99_us'): number =>
      median(
        latRuns
          .filter((r) => r.config === c)
          .map((r) => {
            try {
              return Number((JSON.parse(read(r.file).trim().split('\n').pop() ?? '') as Record<string, number>)[k]) / 1000;
            } catch {
              return NaN;
            }
          }),
      );
    if (latRuns.some((r) => r.config === proxy)) {
      const added = (k: 'p50_us' | 'p99_us'): string => f(lat(proxy, k) - lat('direct', k), 3);
      const h = (k: 'p50_us' | 'p99_us'): string => (latRuns.some((r) => r.config === 'haproxy') ? f(lat('haproxy', k) - lat('direct', k), 3) : 'n/a');
      out.push(`At the fixed rate: ${proxy} adds ${added('p50_us')} ms at p50 and ${added('p99_us')} ms at p99 over direct (HAProxy adds ${h('p50_us')} / ${h('p99_us')} ms).`);
    }
  }
  if (metricsFile) {
    const prom = read(metricsFile);
    if (prom === '') out.push(`${proxy} /metrics: not captured.`);
    else out.push(`${proxy} /metrics at the end of the run (${path.basename(metricsFile)}): ` + metricsLines(prom).join('; ') + '.');
  }
  process.stdout.write(out.join('\n\n') + '\n');
}

if (require.main === module) main();
