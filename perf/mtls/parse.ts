// Reads the load clients' output for the mTLS benchmark: wrk (throughput), the shared harness's
// fixedrate.js (latency at a fixed rate, one JSON line) and `openssl s_time -new` (handshakes).

export interface Outcome {
  /** Requests or handshakes that failed (0 = clean). */
  errors: number;
  /** What failed, for the table's error column. */
  notes: string[];
}

export interface WrkResult extends Outcome {
  rps: number;
  requests: number;
  p50Ms: number;
  p99Ms: number;
}

const toMs = (v: number, unit: string): number => (unit === 'us' ? v / 1000 : unit === 'ms' ? v : unit === 's' ? v * 1000 : unit === 'm' ? v * 60_000 : NaN);

export function parseWrk(txt: string): WrkResult {
  const r: WrkResult = { rps: NaN, requests: NaN, p50Ms: NaN, p99Ms: NaN, errors: 0, notes: [] };
  let m = /Requests\/sec:\s+([\d.]+)/.exec(txt);
  if (m) r.rps = Number(m[1]);
  m = /^\s*(\d+) requests in /m.exec(txt);
  if (m) r.requests = Number(m[1]);
  m = /^\s+50%\s+([\d.]+)(us|ms|s|m)\s*$/m.exec(txt);
  if (m) r.p50Ms = toMs(Number(m[1]), m[2]!);
  m = /^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$/m.exec(txt);
  if (m) r.p99Ms = toMs(Number(m[1]), m[2]!);
  m = /Non-2xx or 3xx responses:\s+(\d+)/.exec(txt);
  if (m) {
    r.errors += Number(m[1]);
    r.notes.push(`non-2xx ${m[1]}`);
  }
  m = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(txt);
  if (m) {
    r.errors += Number(m[1]) + Number(m[2]) + Number(m[3]) + Number(m[4]);
    r.notes.push(`socket errors: connect ${m[1]} read ${m[2]} write ${m[3]} timeout ${m[4]}`);
  }
  if (!(r.rps > 0)) {
    r.errors += 1;
    r.notes.push('wrk gave no result');
  }
  return r;
}

export interface LatencyResult extends Outcome {
  achievedRps: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
}

export function parseFixedRate(txt: string): LatencyResult {
  const fail = (why: string): LatencyResult => ({ achievedRps: NaN, p50Ms: NaN, p99Ms: NaN, p999Ms: NaN, errors: 1, notes: [why] });
  const last = txt.trim().split('\n').pop() ?? '';
  let j: Record<string, number>;
  try {
    j = JSON.parse(last) as Record<string, number>;
  } catch {
    return fail('fixedrate gave no result');
  }
  const errors = (j['errors'] ?? 0) + (j['non2xx'] ?? 0) + (j['unfinished'] ?? 0);
  return {
    achievedRps: j['achieved_rps'] ?? NaN,
    p50Ms: (j['p50_us'] ?? NaN) / 1000,
    p99Ms: (j['p99_us'] ?? NaN) / 1000,
    p999Ms: (j['p999_us'] ?? NaN) / 1000,
    errors,
    notes: errors ? [`errors ${j['errors']} non-2xx ${j['non2xx']} unfinished ${j['unfinished']}`] : [],
  };
}

export interface STimeResult {
  connections: number;
  bytesRead: number;
  realSeconds: number;
}

/**
 * `openssl s_time -new -www PAGE` prints "N connections in Xs; R connections/user sec, bytes read B"
 * and "N connections in T real seconds, ...". A handshake the server refuses after the client's
 * Finished (TLS 1.3 checks the client certificate then) still counts as a connection there, with 0
 * bytes read: the caller checks bytes against the size of a good response.
 */
export function parseSTime(txt: string): STimeResult | undefined {
  const a = /(\d+) connections in [\d.]+s; [\d.]+ connections\/user sec, bytes read (\d+)/.exec(txt);
  const b = /(\d+) connections in (\d+) real seconds/.exec(txt);
  if (!a) return undefined;
  return { connections: Number(a[1]), bytesRead: Number(a[2]), realSeconds: b ? Number(b[2]) : NaN };
}
