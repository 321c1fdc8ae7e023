// The control plane's own metrics, in the Prometheus text format: connected streams, pushes, push
// latency (response sent to its ACK), ACKs and NACKs with their reasons, snapshot builds.

const PUSH_BUCKETS_MS = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
const MAX_REASON = 300;
const MAX_REASONS = 50;

export class ControlMetrics {
  /** Open streams by kind ("sotw", "delta") and client (user agent). */
  readonly streams = new Map<string, number>();
  readonly pushes = new Map<string, number>();
  readonly acks = new Map<string, number>();
  readonly nacks = new Map<string, number>();
  readonly pushLatency = new Map<string, { buckets: number[]; sum: number; count: number }>();
  builds = 0;
  buildErrors = 0;
  lastBuildMs = 0;
  meshVersion = '';
  meshRejected = 0;

  streamOpened(kind: string, client: string): void {
    bump(this.streams, `kind="${kind}",client="${esc(client)}"`, 1);
  }

  streamClosed(kind: string, client: string): void {
    bump(this.streams, `kind="${kind}",client="${esc(client)}"`, -1);
  }

  pushed(type: string): void {
    bump(this.pushes, `type="${type}"`, 1);
  }

  acked(type: string, latencyMs: number): void {
    bump(this.acks, `type="${type}"`, 1);
    let h = this.pushLatency.get(type);
    if (h === undefined) this.pushLatency.set(type, (h = { buckets: new Array<number>(PUSH_BUCKETS_MS.length + 1).fill(0), sum: 0, count: 0 }));
    let i = 0;
    while (i < PUSH_BUCKETS_MS.length && latencyMs > PUSH_BUCKETS_MS[i]!) i++;
    h.buckets[i]!++;
    h.sum += latencyMs;
    h.count++;
  }

  nacked(type: string, reason: string): void {
    const r = reason.replace(/\s+/g, ' ').slice(0, MAX_REASON);
    const key = `type="${type}",reason="${esc(r)}"`;
    // Bounded label cardinality: past the limit, reasons share one series.
    if (!this.nacks.has(key) && this.nacks.size >= MAX_REASONS) bump(this.nacks, `type="${type}",reason="_other"`, 1);
    else bump(this.nacks, key, 1);
  }

  /** Set by the control plane when it issues certificates. */
  identity: { issued: number; refused: Map<string, number> } | null = null;

  render(): string {
    const out: string[] = [];
    if (this.identity !== null) {
      out.push('# HELP identity_certificates_issued_total Workload certificates issued.', '# TYPE identity_certificates_issued_total counter', `identity_certificates_issued_total ${this.identity.issued}`);
      out.push('# HELP identity_certificates_refused_total Certificate requests refused, by reason (token, identity, csr).', '# TYPE identity_certificates_refused_total counter');
      for (const [r, n] of this.identity.refused) out.push(`identity_certificates_refused_total{reason="${esc(r)}"} ${n}`);
    }
    const family = (name: string, type: string, help: string, m: Map<string, number>): void => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [k, v] of m) out.push(`${name}{${k}} ${v}`);
    };
    family('xds_streams', 'gauge', 'Open discovery streams by kind (sotw, delta) and client.', this.streams);
    family('xds_pushes_total', 'counter', 'Discovery responses sent, by resource type.', this.pushes);
    family('xds_acks_total', 'counter', 'Responses acknowledged, by resource type.', this.acks);
    family('xds_nacks_total', 'counter', 'Responses rejected by a client, by resource type and the reason it gave.', this.nacks);
    out.push('# HELP xds_push_latency_ms Time from sending a response to its ACK.', '# TYPE xds_push_latency_ms histogram');
    for (const [type, h] of this.pushLatency) {
      let cum = 0;
      PUSH_BUCKETS_MS.forEach((b, i) => {
        cum += h.buckets[i]!;
        out.push(`xds_push_latency_ms_bucket{type="${type}",le="${b}"} ${cum}`);
      });
      out.push(`xds_push_latency_ms_bucket{type="${type}",le="+Inf"} ${h.count}`);
      out.push(`xds_push_latency_ms_sum{type="${type}"} ${Math.round(h.sum * 1000) / 1000}`);
      out.push(`xds_push_latency_ms_count{type="${type}"} ${h.count}`);
    }
    out.push('# HELP xds_snapshot_builds_total Snapshot builds (all zones of one mesh version).', '# TYPE xds_snapshot_builds_total counter', `xds_snapshot_builds_total ${this.builds}`);
    out.push('# HELP xds_snapshot_build_errors_total Snapshot builds that failed (the last good one stays).', '# TYPE xds_snapshot_build_errors_total counter', `xds_snapshot_build_errors_total ${this.buildErrors}`);
    out.push('# HELP xds_snapshot_build_ms Duration of the last snapshot build.', '# TYPE xds_snapshot_build_ms gauge', `xds_snapshot_build_ms ${this.lastBuildMs}`);
    out.push('# HELP xds_mesh_rejected_total Mesh file changes refused as invalid.', '# TYPE xds_mesh_rejected_total counter', `xds_mesh_rejected_total ${this.meshRejected}`);
    out.push('# HELP xds_mesh_info The mesh version in force.', '# TYPE xds_mesh_info gauge', `xds_mesh_info{version="${esc(this.meshVersion)}"} 1`);
    const mem = process.memoryUsage();
    out.push('# HELP process_resident_memory_bytes Resident memory size in bytes.', '# TYPE process_resident_memory_bytes gauge', `process_resident_memory_bytes ${mem.rss}`);
    return out.join('\n') + '\n';
  }
}

function bump(m: Map<string, number>, k: string, by: number): void {
  m.set(k, (m.get(k) ?? 0) + by);
}

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}
