// Merges the workers' metric snapshots and renders them in the Prometheus text format, with Linkerd's
// metric names and labels where the concept is the same, so that existing dashboards work.

import type { WorkerMetricsSnapshot } from '../engine';
import type { OutcomeSnapshot } from '../engine/metrics/registry';
// Deep imports: the supervisor must not load the whole engine for the bounds and the merge.
import { LATENCY_BUCKETS_MS } from '../engine/metrics/buckets';
import { MergedLatency } from '../engine/metrics/latency';
import { AVERAGED_GAUGES, METRIC_FAMILIES, type MetricFamily } from '../engine/metrics/names';

/** Percentiles published from the merged hdr histograms. */
const QUANTILES = [0.5, 0.9, 0.99, 0.999];

export interface ProcessInfo {
  configVersion: string;
  reloads: { applied: number; rejected: number };
  workerRestarts: number;
  startTimeSeconds: number;
}

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelStr(labels: Record<string, string | number>): string {
  const parts: string[] = [];
  for (const k of Object.keys(labels)) parts.push(`${k}="${esc(String(labels[k]))}"`);
  return parts.join(',');
}

/** One series' outcomes and latency, merged across workers. */
interface MergedOutcome {
  labels: string;
  success: number;
  failure: number;
  buckets: number[];
  sumMs: number;
  count: number;
  errors: Map<string, number>;
  hdr: MergedLatency;
}

interface MergedResponse extends MergedOutcome {
  /** grpc-status -> [success, failure]. */
  grpc: Map<string, [number, number]>;
}

function newOutcome(labels: string, bucketCount: number): MergedOutcome {
  return { labels, success: 0, failure: 0, buckets: new Array<number>(bucketCount).fill(0), sumMs: 0, count: 0, errors: new Map(), hdr: new MergedLatency() };
}

function mergeOutcome(m: MergedOutcome, r: OutcomeSnapshot): void {
  m.success += r.success;
  m.failure += r.failure;
  m.sumMs += r.sumMs;
  m.count += r.count;
  for (let i = 0; i < r.buckets.length; i++) m.buckets[i] += r.buckets[i];
  for (const [e, n] of Object.entries(r.errors)) m.errors.set(e, (m.errors.get(e) ?? 0) + n);
  m.hdr.add(r.hdr);
}

/** A Prometheus histogram (cumulative buckets of LATENCY_BUCKETS_MS, sum, count) and the percentile gauges of each series. */
function renderLatency(out: string[], name: string, series: Iterable<MergedOutcome>): void {
  for (const m of series) {
    let cum = 0;
    for (let i = 0; i < LATENCY_BUCKETS_MS.length; i++) {
      cum += m.buckets[i];
      out.push(`${name}_bucket{${m.labels},le="${LATENCY_BUCKETS_MS[i]}"} ${cum}`);
    }
    cum += m.buckets[LATENCY_BUCKETS_MS.length];
    out.push(`${name}_bucket{${m.labels},le="+Inf"} ${cum}`);
    out.push(`${name}_sum{${m.labels}} ${round(m.sumMs)}`);
    out.push(`${name}_count{${m.labels}} ${m.count}`);
  }
}

function renderPercentiles(out: string[], name: string, series: Iterable<MergedOutcome>): void {
  for (const m of series) {
    if (m.count === 0) continue;
    for (const q of QUANTILES) out.push(`${name}{${m.labels},quantile="${q}"} ${round(m.hdr.percentileMs(q * 100))}`);
  }
}

export function renderMetrics(workers: WorkerMetricsSnapshot[], info: ProcessInfo): string {
  const req = new Map<string, number>();
  const inflight = new Map<string, number>();
  const resp = new Map<string, MergedResponse>();
  const tcp = new Map<string, { opened: number; closed: number; open: number; read: number; write: number; errors: Map<string, number> }>();
  const protocolErrors = new Map<string, number>();
  const internalErrors = new Map<string, number>();
  /** Named counters and gauges: name -> labels -> [sum, workers that reported it]. */
  const samples = new Map<string, Map<string, [number, number]>>();
  const add = (m: Map<string, number>, k: string, v: number): void => {
    m.set(k, (m.get(k) ?? 0) + v);
  };

  for (const w of workers) {
    for (const h of w.http) {
      const base = labelStr({ ...h.labels });
      add(req, base, h.requests);
      add(inflight, base, h.inFlight);
      for (const r of h.responses) {
        const key = `${base},status_code="${r.status}"`;
        let m = resp.get(key);
        if (m === undefined) resp.set(key, (m = { ...newOutcome(key, r.buckets.length), grpc: new Map() }));
        mergeOutcome(m, r);
        for (const [g, [ok, bad]] of Object.entries(r.grpc ?? {})) {
          const c = m.grpc.get(g) ?? [0, 0];
          c[0] += ok;
          c[1] += bad;
          m.grpc.set(g, c);
        }
      }
    }
    for (const t of w.tcp) {
      const key = labelStr({ ...t.labels });
      let m = tcp.get(key);
      if (m === undefined) tcp.set(key, (m = { opened: 0, closed: 0, open: 0, read: 0, write: 0, errors: new Map() }));
      m.opened += t.opened;
      m.closed += t.closed;
      m.open += t.open;
      m.read += t.readBytes;
      m.write += t.writeBytes;
      for (const [e, n] of Object.entries(t.closeErrors)) add(m.errors, e, n);
    }
    for (const [e, n] of Object.entries(w.protocolErrors)) add(protocolErrors, e, n);
    for (const [e, n] of Object.entries(w.internalErrors ?? {})) add(internalErrors, e, n);
    for (const c of w.counters ?? []) addSample(samples, c.name, c.labels, c.value);
    for (const g of w.gauges ?? []) addSample(samples, g.name, g.labels, g.value);
  }

  const mcp = new Map<string, MergedOutcome & { requests: number }>();
  for (const w of workers) {
    for (const s of w.mcp ?? []) {
      const key = labelStr({ ...s.labels });
      let m = mcp.get(key);
      if (m === undefined) mcp.set(key, (m = { ...newOutcome(key, s.buckets.length), requests: 0 }));
      m.requests += s.requests;
      mergeOutcome(m, s);
    }
  }

  const out: string[] = [];
  const family = (name: string, type: string, help: string): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  };

  family('request_total', 'counter', 'Total count of HTTP requests.');
  for (const [k, v] of req) out.push(`request_total{${k}} ${v}`);

  family('response_total', 'counter', 'Total count of HTTP responses, by status and classification.');
  for (const m of resp.values()) {
    if (m.success > 0) out.push(`response_total{${m.labels},classification="success"} ${m.success}`);
    if (m.failure > 0) out.push(`response_total{${m.labels},classification="failure"} ${m.failure}`);
    for (const [g, [ok, bad]] of m.grpc) {
      if (ok > 0) out.push(`response_total{${m.labels},classification="success",grpc_status="${g}"} ${ok}`);
      if (bad > 0) out.push(`response_total{${m.labels},classification="failure",grpc_status="${g}"} ${bad}`);
    }
  }

  family('response_latency_ms', 'histogram', 'Elapsed time between a request being sent and its response head arriving.');
  renderLatency(out, 'response_latency_ms', resp.values());

  family('response_latency_percentile_ms', 'gauge', 'Response latency percentiles since start, from hdr histograms merged across workers (exact to 1%, no bucket interpolation).');
  renderPercentiles(out, 'response_latency_percentile_ms', resp.values());

  family('response_errors_total', 'counter', 'Failed responses by the proxy error that caused them.');
  for (const m of resp.values()) for (const [e, n] of m.errors) out.push(`response_errors_total{${m.labels},error="${esc(e)}"} ${n}`);

  family('inflight_requests', 'gauge', 'HTTP requests in flight (saturation).');
  for (const [k, v] of inflight) out.push(`inflight_requests{${k}} ${v}`);

  if (mcp.size > 0) {
    family('mcp_request_total', 'counter', 'MCP requests and notifications, by method and tool, resource or prompt name.');
    for (const m of mcp.values()) out.push(`mcp_request_total{${m.labels}} ${m.requests}`);
    family('mcp_response_total', 'counter', 'MCP responses by classification: a JSON-RPC error or a tool result with isError is a failure.');
    for (const m of mcp.values()) {
      out.push(`mcp_response_total{${m.labels},classification="success"} ${m.success}`);
      out.push(`mcp_response_total{${m.labels},classification="failure"} ${m.failure}`);
    }
    family('mcp_response_latency_ms', 'histogram', 'Elapsed time between an MCP request being sent and its JSON-RPC response arriving (in the body or an SSE event).');
    renderLatency(out, 'mcp_response_latency_ms', mcp.values());
    family('mcp_response_latency_percentile_ms', 'gauge', 'MCP response latency percentiles since start, from hdr histograms merged across workers.');
    renderPercentiles(out, 'mcp_response_latency_percentile_ms', mcp.values());
    family('mcp_response_errors_total', 'counter', 'Failed MCP operations by cause: a JSON-RPC error code, is-error, denied, no-response, http-<status>.');
    for (const m of mcp.values()) for (const [e, n] of m.errors) out.push(`mcp_response_errors_total{${m.labels},error="${esc(e)}"} ${n}`);
  }

  family('tcp_open_total', 'counter', 'Total count of opened connections.');
  for (const [k, m] of tcp) out.push(`tcp_open_total{${k}} ${m.opened}`);
  family('tcp_close_total', 'counter', 'Total count of closed connections.');
  for (const [k, m] of tcp) {
    const errs = [...m.errors.values()].reduce((a, b) => a + b, 0);
    out.push(`tcp_close_total{${k},errno=""} ${m.closed - errs}`);
    for (const [e, n] of m.errors) out.push(`tcp_close_total{${k},errno="${esc(e)}"} ${n}`);
  }
  family('tcp_open_connections', 'gauge', 'Number of currently open connections.');
  for (const [k, m] of tcp) out.push(`tcp_open_connections{${k}} ${m.open}`);
  family('tcp_read_bytes_total', 'counter', 'Total count of bytes read from peers.');
  for (const [k, m] of tcp) out.push(`tcp_read_bytes_total{${k}} ${m.read}`);
  family('tcp_write_bytes_total', 'counter', 'Total count of bytes written to peers.');
  for (const [k, m] of tcp) out.push(`tcp_write_bytes_total{${k}} ${m.write}`);

  family('http_protocol_errors_total', 'counter', 'Requests refused before routing (malformed, too large, slow), by error.');
  for (const [e, n] of protocolErrors) out.push(`http_protocol_errors_total{error="${esc(e)}"} ${n}`);

  family('internal_errors_total', 'counter', 'Exceptions caught in connection handlers (the connection was closed; a bug to report).');
  for (const [e, n] of internalErrors) out.push(`internal_errors_total{where="${esc(e)}"} ${n}`);

  for (const [name, byLabels] of samples) {
    const f: MetricFamily = (METRIC_FAMILIES as Record<string, MetricFamily>)[name] ?? { type: 'counter', help: name };
    family(name, f.type, f.help);
    for (const [labels, [sum, n]] of byLabels) {
      const v = AVERAGED_GAUGES.has(name) ? sum / n : sum;
      // Full precision: a cost in USD per request is a tiny number.
      const text = Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(12)));
      out.push(labels === '' ? `${name} ${text}` : `${name}{${labels}} ${text}`);
    }
  }

  family('worker_event_loop_utilization', 'gauge', "Share of time each worker's event loop was busy since the last scrape (saturation).");
  for (const w of workers) out.push(`worker_event_loop_utilization{worker="${w.worker}"} ${round(w.eventLoopUtilization)}`);
  family('worker_open_connections', 'gauge', 'Open client connections per worker (accept balancing).');
  for (const w of workers) out.push(`worker_open_connections{worker="${w.worker}"} ${w.openConnections}`);
  family('worker_restarts_total', 'counter', 'Workers restarted after a crash.');
  out.push(`worker_restarts_total ${info.workerRestarts}`);
  family('workers_running', 'gauge', 'Workers that answered this scrape.');
  out.push(`workers_running ${workers.length}`);

  family('config_reload_total', 'counter', 'Config reloads by result.');
  out.push(`config_reload_total{result="applied"} ${info.reloads.applied}`);
  out.push(`config_reload_total{result="rejected"} ${info.reloads.rejected}`);
  family('config_info', 'gauge', 'The config version in force.');
  out.push(`config_info{version="${esc(info.configVersion)}"} 1`);

  const mem = process.memoryUsage();
  family('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.');
  out.push(`process_resident_memory_bytes ${mem.rss}`);
  family('process_start_time_seconds', 'gauge', 'Start time of the process since unix epoch in seconds.');
  out.push(`process_start_time_seconds ${info.startTimeSeconds}`);
  return out.join('\n') + '\n';
}

function addSample(samples: Map<string, Map<string, [number, number]>>, name: string, labels: Record<string, string>, value: number): void {
  let byLabels = samples.get(name);
  if (byLabels === undefined) samples.set(name, (byLabels = new Map()));
  const key = labelStr(labels);
  const cur = byLabels.get(key);
  if (cur === undefined) byLabels.set(key, [value, 1]);
  else {
    cur[0] += value;
    cur[1]++;
  }
}

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
