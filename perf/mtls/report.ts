// The mTLS benchmark's tables (markdown): throughput through the mesh hop, latency at a fixed rate,
// and handshakes per second on the server side alone; absolute figures and ratios to HAProxy. The
// `relay` topology (a bare node:tls relay pair, no HTTP) is a reference: the ceiling of node:tls.

export type TopologyName = 'bowline' | 'haproxy' | 'relay';
export const LABELS: Record<TopologyName, { path: string; server: string }> = {
  bowline: { path: 'Bowline → mTLS 1.3 → Bowline (`--workers 1` each)', server: 'Bowline inbound listener (`--workers 1`)' },
  haproxy: { path: 'HAProxy → mTLS 1.3 → HAProxy (nbthread 1 each)', server: 'HAProxy `bind ... ssl verify required` (nbthread 1)' },
  relay: { path: 'node:tls relay → mTLS 1.3 → node:tls relay (no HTTP; ceiling of node:tls)', server: 'node:tls relay server side (no HTTP)' },
};

export interface RunRecord {
  topology: TopologyName;
  round: number;
  /** Status "noisy": other processes used more than NOISY_MAX % of a core even after the repeats. */
  noisy: boolean;
  otherPct: number;
  errors: number;
  notes: string[];
}

export interface TputRun extends RunRecord {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU of both proxies of the topology together, % of one core. */
  proxyCpuPct: number;
}

export interface LatRun extends RunRecord {
  achievedRps: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
}

export interface HsRun extends RunRecord {
  handshakes: number;
  perSec: number;
  /** The terminating proxy's CPU, % of one core. */
  serverCpuPct: number;
  /** The s_time clients' CPU, % of one core. */
  clientCpuPct: number;
}

export interface Rss {
  clientKib: number;
  serverKib: number;
}

export interface ReportInput {
  header: string[];
  order: TopologyName[];
  tput: TputRun[];
  lat: LatRun[];
  hs: HsRun[];
  /** Peak RSS after the keep-alive phases (throughput, latency). */
  rssKeepAlive: Partial<Record<TopologyName, Rss>>;
  /** Peak RSS after the handshake phase too (its churn of connections on the server side). */
  rssEnd: Partial<Record<TopologyName, Rss>>;
  tputTitle: string;
  latTitle: string;
  hsTitle: string;
  /** Lines under the tables: setup checks, skipped phases, the proxies' own counters. */
  notes: string[];
  /** Problems outside the per-run error counts (a proxy died, a setup check failed, ...). */
  problems: string[];
}

const median = (xs: number[]): number => {
  const b = xs.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
  if (b.length === 0) return NaN;
  const h = b.length >> 1;
  return b.length % 2 ? b[h]! : (b[h - 1]! + b[h]!) / 2;
};
const fk = (x: number): string => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
const f = (x: number, d: number): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const mib = (kib: number | undefined): string => (kib ? (kib / 1024).toFixed(1) : 'n/a');
const ratio = (a: number, b: number): string => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : 'n/a');

function errorCell(runs: RunRecord[]): string {
  const n = runs.reduce((s, r) => s + r.errors, 0);
  if (n === 0) return '0';
  const notes = [...new Set(runs.flatMap((r) => r.notes))].slice(0, 3).join('; ');
  return `**${n.toLocaleString('en-US')}** (${notes})`;
}
const otherCell = (runs: RunRecord[]): string => {
  const worst = Math.max(0, ...runs.map((r) => r.otherPct));
  return `${worst.toFixed(0)}${runs.some((r) => r.noisy) ? ' (noisy)' : ''}`;
};

/** Median over rounds of (x ÷ `base`'s x in the same round): cancels drift on a shared machine. */
function paired<T extends RunRecord>(runs: T[], who: TopologyName, get: (r: T) => number, base: TopologyName = 'haproxy'): number {
  const ratios: number[] = [];
  for (const r of runs.filter((x) => x.topology === who)) {
    const h = runs.find((x) => x.topology === base && x.round === r.round);
    if (h && get(h) > 0) ratios.push(get(r) / get(h));
  }
  return median(ratios);
}

export interface Report {
  text: string;
  errors: number;
  /** One line with the headline ratios. */
  summary: string;
}

export function buildReport(i: ReportInput): Report {
  const out: string[] = [...i.header, ''];
  const by = <T extends RunRecord>(runs: T[], t: TopologyName): T[] => runs.filter((r) => r.topology === t);
  const summary: string[] = [];
  /** A sentence after the summary line: Bowline against the node:tls relay (the reference topology). */
  let vsRelay = '';

  if (i.tput.length) {
    out.push(`**Throughput** — ${i.tputTitle}`, '');
    out.push('| topology | req/s (median) | min–max | vs HAProxy | paired vs HAProxy | p50 ms | p99 ms | both proxies CPU % (of 1 core) | req/s per proxy core | peak RSS MiB client / server side | other % | errors |');
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
    const hap = median(by(i.tput, 'haproxy').map((r) => r.rps));
    for (const t of i.order) {
      const rs = by(i.tput, t);
      if (!rs.length) continue;
      const rps = median(rs.map((r) => r.rps));
      const cpu = median(rs.map((r) => r.proxyCpuPct));
      const perCore = median(rs.map((r) => (r.proxyCpuPct > 0 ? r.rps / (r.proxyCpuPct / 100) : NaN)));
      const lo = Math.min(...rs.map((r) => r.rps));
      const hi = Math.max(...rs.map((r) => r.rps));
      const rss = i.rssKeepAlive[t];
      out.push(
        `| ${LABELS[t].path} | ${fk(rps)} | ${fk(lo)}–${fk(hi)} | ${ratio(rps, hap)} | ${t === 'haproxy' ? '1.00×' : f(paired(i.tput, t, (r) => r.rps), 2) + '×'} | ${f(median(rs.map((r) => r.p50Ms)), 2)} | ${f(median(rs.map((r) => r.p99Ms)), 2)} | ${f(cpu, 0)} | ${fk(perCore)} | ${mib(rss?.clientKib)} / ${mib(rss?.serverKib)} | ${otherCell(rs)} | ${errorCell(rs)} |`,
      );
      if (t === 'bowline') summary.push(`${fk(rps)} req/s through the mTLS hop = ${ratio(rps, hap)} HAProxy (paired ${f(paired(i.tput, t, (r) => r.rps), 2)}×)`);
    }
    const bl = by(i.tput, 'bowline');
    const relay = by(i.tput, 'relay');
    if (bl.length && relay.length) {
      const x = ratio(median(bl.map((r) => r.rps)), median(relay.map((r) => r.rps)));
      vsRelay = ` Bowline = ${x} the node:tls relay on req/s (paired ${f(paired(i.tput, 'bowline', (r) => r.rps, 'relay'), 2)}×; the relay, with no HTTP, is the ceiling of node:tls in this layout).`;
    }
    out.push('');
  }

  if (i.lat.length) {
    out.push(`**Latency at a fixed rate** — ${i.latTitle}`, '');
    out.push('| topology | achieved req/s | p50 ms | p99 ms | p99.9 ms | p50 vs HAProxy | p99 vs HAProxy | other % | errors |');
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|---|');
    const h50 = median(by(i.lat, 'haproxy').map((r) => r.p50Ms));
    const h99 = median(by(i.lat, 'haproxy').map((r) => r.p99Ms));
    for (const t of i.order) {
      const rs = by(i.lat, t);
      if (!rs.length) continue;
      const p50 = median(rs.map((r) => r.p50Ms));
      const p99 = median(rs.map((r) => r.p99Ms));
      out.push(
        `| ${LABELS[t].path} | ${fk(median(rs.map((r) => r.achievedRps)))} | ${f(p50, 3)} | ${f(p99, 3)} | ${f(median(rs.map((r) => r.p999Ms)), 3)} | ${ratio(p50, h50)} | ${ratio(p99, h99)} | ${otherCell(rs)} | ${errorCell(rs)} |`,
      );
      if (t === 'bowline') summary.push(`p50/p99 at the fixed rate ${f(p50, 3)}/${f(p99, 3)} ms = ${ratio(p50, h50)}/${ratio(p99, h99)} HAProxy's`);
    }
    out.push('');
  }

  if (i.hs.length) {
    out.push(`**Handshakes** — ${i.hsTitle}`, '');
    out.push('| server side | handshakes/s (median) | min–max | vs HAProxy | server CPU % | handshakes per server core-second | per core vs HAProxy | clients CPU % | server peak RSS MiB | other % | errors |');
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
    const perCore = (r: HsRun): number => (r.serverCpuPct > 0 ? r.perSec / (r.serverCpuPct / 100) : NaN);
    const hap = median(by(i.hs, 'haproxy').map((r) => r.perSec));
    const hapCore = median(by(i.hs, 'haproxy').map(perCore));
    for (const t of i.order) {
      const rs = by(i.hs, t);
      if (!rs.length) continue;
      const rate = median(rs.map((r) => r.perSec));
      const core = median(rs.map(perCore));
      out.push(
        `| ${LABELS[t].server} | ${fk(rate)} | ${fk(Math.min(...rs.map((r) => r.perSec)))}–${fk(Math.max(...rs.map((r) => r.perSec)))} | ${ratio(rate, hap)} | ${f(median(rs.map((r) => r.serverCpuPct)), 0)} | ${fk(core)} | ${ratio(core, hapCore)} | ${f(median(rs.map((r) => r.clientCpuPct)), 0)} | ${mib(i.rssEnd[t]?.serverKib)} | ${otherCell(rs)} | ${errorCell(rs)} |`,
      );
      if (t === 'bowline') summary.push(`${fk(rate)} handshakes/s = ${ratio(rate, hap)} HAProxy (per server core ${ratio(core, hapCore)})`);
    }
    out.push('');
  }

  const errors = [...i.tput, ...i.lat, ...i.hs].reduce((s, r) => s + r.errors, 0) + i.problems.length;
  for (const n of i.notes) out.push(`- ${n}`);
  if (i.notes.length) out.push('');
  if (errors > 0) {
    out.push(`**THIS RUN HAD ERRORS** (${[...i.tput, ...i.lat, ...i.hs].reduce((s, r) => s + r.errors, 0).toLocaleString('en-US')} failed requests/handshakes over all runs; see the errors columns):`);
    for (const p of i.problems) out.push(`- ${p}`);
    out.push('');
  } else {
    out.push('Errors: none (no non-2xx, no socket errors, every handshake got a whole response).', '');
  }
  const line = `Summary: bowline ${summary.join('; ') || 'n/a'}${errors > 0 ? ' — WITH ERRORS' : ''}.${vsRelay}`;
  out.push(line);
  return { text: out.join('\n'), errors, summary: line };
}
