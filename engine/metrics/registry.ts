// Per-worker golden signals. The hot path only bumps fields of stats objects it looked up once per
// connection; the supervisor asks each worker for a plain-data snapshot and merges them.

import type { Direction } from '../config/snapshot';
import { LatencyHistogram } from './latency';

export interface HttpLabels {
  direction: Direction;
  authority: string;
  route: string;
  backend: string;
  dst_zone: string;
  /** Inbound over mesh TLS: the caller's SPIFFE ID (Linkerd's label; absent without one). */
  client_id?: string;
}

export class ResponseStats {
  success = 0;
  failure = 0;
  readonly latency = new LatencyHistogram();
  /** Failures by error name (l5d-proxy-error code or upstream abort). */
  readonly errors = new Map<string, number>();
  /**
   * gRPC responses by grpc-status: [success, failure] (Linkerd's classification: any status but OK
   * is a failure). They are counted here instead of in success/failure.
   */
  readonly grpc = new Map<number, [number, number]>();
  constructor(readonly status: number) {}

  countGrpc(grpcStatus: number): void {
    let g = this.grpc.get(grpcStatus);
    if (g === undefined) this.grpc.set(grpcStatus, (g = [0, 0]));
    g[grpcStatus === 0 ? 0 : 1]++;
  }
}

export class HttpStats {
  requests = 0;
  inFlight = 0;
  private readonly byStatus = new Map<number, ResponseStats>();
  constructor(readonly labels: HttpLabels) {}

  response(status: number): ResponseStats {
    let r = this.byStatus.get(status);
    if (r === undefined) {
      r = new ResponseStats(status);
      this.byStatus.set(status, r);
    }
    return r;
  }

  responses(): IterableIterator<ResponseStats> {
    return this.byStatus.values();
  }
}

export interface McpLabels {
  direction: Direction;
  route: string;
  /** The JSON-RPC method (unknown ones as "_other"). */
  method: string;
  /** The tool or prompt name or resource URI ('' for methods without one; "_overflow" past the limit). */
  name: string;
  /** Inbound over mesh TLS: the calling agent's SPIFFE ID (Linkerd's label; absent without one). */
  client_id?: string;
}

/** One MCP operation's signals: calls, their outcome (a JSON-RPC error or a tool result with isError is a failure) and latency. */
export class McpStats {
  requests = 0;
  success = 0;
  failure = 0;
  readonly latency = new LatencyHistogram();
  /** Failures by cause: a JSON-RPC error code, "is-error", "denied", "no-response", "http-<status>". */
  readonly errors = new Map<string, number>();
  constructor(readonly labels: McpLabels) {}

  fail(error: string): void {
    this.failure++;
    this.errors.set(error, (this.errors.get(error) ?? 0) + 1);
  }
}

export interface McpStatsSnapshot extends OutcomeSnapshot {
  labels: McpLabels;
  requests: number;
}

export interface TcpLabels {
  direction: Direction;
  peer: 'src' | 'dst';
  /** Inbound connections over mesh TLS: the client's SPIFFE ID (Linkerd's label). */
  client_id?: string;
}

export class TcpStats {
  opened = 0;
  closed = 0;
  open = 0;
  /** Bytes of closed connections; open ones are added at snapshot time. */
  readBytes = 0;
  writeBytes = 0;
  readonly closeErrors = new Map<string, number>();
  constructor(readonly labels: TcpLabels) {}
}

/** A plain counter or gauge sample with its labels; summed across workers. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A counter the hot path bumps by reference. */
export class Counter {
  value = 0;
  constructor(
    readonly name: string,
    readonly labels: Record<string, string>,
  ) {}
}

/** Outcomes and latency of one series, as plain data. */
export interface OutcomeSnapshot {
  success: number;
  failure: number;
  buckets: number[];
  /** The hdr distribution as [valueUs, count] pairs (merged in the supervisor for percentiles). */
  hdr: number[];
  sumMs: number;
  count: number;
  errors: Record<string, number>;
}

export interface ResponseSnapshot extends OutcomeSnapshot {
  status: number;
  /** grpc-status -> [success, failure]. */
  grpc?: Record<string, [number, number]>;
}

export interface HttpSnapshot {
  labels: HttpLabels;
  requests: number;
  inFlight: number;
  responses: ResponseSnapshot[];
}

export interface TcpSnapshot {
  labels: TcpLabels;
  opened: number;
  closed: number;
  open: number;
  readBytes: number;
  writeBytes: number;
  closeErrors: Record<string, number>;
}

export interface WorkerMetricsSnapshot {
  worker: number;
  http: HttpSnapshot[];
  tcp: TcpSnapshot[];
  eventLoopUtilization: number;
  openConnections: number;
  configVersion: string;
  /** Requests refused before routing (malformed, too large, timeouts), by error name. */
  protocolErrors: Record<string, number>;
  /** Exceptions caught in connection handlers (bugs), by where they happened. */
  internalErrors: Record<string, number>;
  /** Named counters (retries, ejections, zone traffic, ...). */
  counters: Sample[];
  /** Gauges read at snapshot time (ready endpoints, zones in use, queue depth, ...). */
  gauges: Sample[];
  /** MCP operations (absent when none was seen). */
  mcp?: McpStatsSnapshot[];
}

/** Live TCP counts that only exist on open sockets (bytes so far), summed at snapshot time. */
export interface OpenBytesSource {
  addOpenBytes(add: (labels: TcpStats, read: number, written: number) => void): void;
}

const MAX_AUTHORITIES_PER_ROUTE = 100;

export class MetricsRegistry {
  private readonly http = new Map<string, HttpStats>();
  private readonly authoritiesPerRoute = new Map<string, Set<string>>();
  private readonly tcp = new Map<string, TcpStats>();
  readonly protocolErrors = new Map<string, number>();

  httpStats(direction: Direction, authority: string, route: string, backend: string, zone: string, clientId = ''): HttpStats {
    const key = `${direction}\u0000${authority}\u0000${route}\u0000${backend}\u0000${zone}\u0000${clientId}`;
    let s = this.http.get(key);
    if (s !== undefined) return s;
    // Bound label cardinality: past the limit, new authorities of a route share one series.
    const rk = `${direction}\u0000${route}`;
    let seen = this.authoritiesPerRoute.get(rk);
    if (seen === undefined) this.authoritiesPerRoute.set(rk, (seen = new Set()));
    if (!seen.has(authority)) {
      if (seen.size >= MAX_AUTHORITIES_PER_ROUTE) return this.httpStats(direction, '_overflow', route, backend, zone, clientId);
      seen.add(authority);
    }
    s = new HttpStats(clientId === '' ? { direction, authority, route, backend, dst_zone: zone } : { direction, authority, route, backend, dst_zone: zone, client_id: clientId });
    this.http.set(key, s);
    return s;
  }

  private readonly mcp = new Map<string, McpStats>();
  private readonly mcpNames = new Map<string, Set<string>>();

  /**
   * The stats of one MCP operation. Names are bounded per direction and method: past `maxNames`
   * distinct ones, new names share the "_overflow" series (clients choose names; a metric must not).
   */
  mcpStats(direction: Direction, route: string, method: string, name: string, maxNames: number, clientId = ''): McpStats {
    const key = `${direction}\u0000${route}\u0000${method}\u0000${name}\u0000${clientId}`;
    let s = this.mcp.get(key);
    if (s !== undefined) return s;
    if (name !== '') {
      const nk = `${direction}\u0000${method}`;
      let seen = this.mcpNames.get(nk);
      if (seen === undefined) this.mcpNames.set(nk, (seen = new Set()));
      if (!seen.has(name)) {
        if (seen.size >= maxNames) return this.mcpStats(direction, route, method, '_overflow', Infinity, clientId);
        seen.add(name);
      }
    }
    s = new McpStats(clientId === '' ? { direction, route, method, name } : { direction, route, method, name, client_id: clientId });
    this.mcp.set(key, s);
    return s;
  }

  tcpStats(direction: Direction, peer: 'src' | 'dst', clientId = ''): TcpStats {
    const key = `${direction}\u0000${peer}\u0000${clientId}`;
    let s = this.tcp.get(key);
    if (s === undefined) {
      s = new TcpStats(clientId === '' ? { direction, peer } : { direction, peer, client_id: clientId });
      this.tcp.set(key, s);
    }
    return s;
  }

  readonly internalErrors = new Map<string, number>();
  private readonly counters = new Map<string, Counter>();

  /** The counter of that name and labels (created at zero). Look it up once, bump `.value` on the hot path. */
  counter(name: string, labels: Record<string, string>): Counter {
    let key = name;
    for (const k of Object.keys(labels)) key += `\u0000${k}\u0000${labels[k]}`;
    let c = this.counters.get(key);
    if (c === undefined) {
      c = new Counter(name, labels);
      this.counters.set(key, c);
    }
    return c;
  }

  countInternalError(where: string): void {
    this.internalErrors.set(where, (this.internalErrors.get(where) ?? 0) + 1);
  }

  countProtocolError(name: string): void {
    this.protocolErrors.set(name, (this.protocolErrors.get(name) ?? 0) + 1);
  }

  snapshot(worker: number, elu: number, openConnections: number, configVersion: string, live?: OpenBytesSource, gauges: Sample[] = []): WorkerMetricsSnapshot {
    const openRead = new Map<TcpStats, number>();
    const openWritten = new Map<TcpStats, number>();
    live?.addOpenBytes((s, r, w) => {
      openRead.set(s, (openRead.get(s) ?? 0) + r);
      openWritten.set(s, (openWritten.get(s) ?? 0) + w);
    });
    return {
      worker,
      eventLoopUtilization: elu,
      openConnections,
      configVersion,
      protocolErrors: Object.fromEntries(this.protocolErrors),
      internalErrors: Object.fromEntries(this.internalErrors),
      counters: [...this.counters.values()].map((c) => ({ name: c.name, labels: c.labels, value: c.value })),
      gauges,
      http: [...this.http.values()].map((s) => ({
        labels: s.labels,
        requests: s.requests,
        inFlight: s.inFlight,
        responses: [...s.responses()].map((r) => ({
          status: r.status,
          ...outcomeSnapshot(r),
          ...(r.grpc.size > 0 ? { grpc: Object.fromEntries([...r.grpc].map(([k, v]) => [String(k), [v[0], v[1]] as [number, number]])) } : {}),
        })),
      })),
      ...(this.mcp.size > 0
        ? {
            mcp: [...this.mcp.values()].map((m) => ({ labels: m.labels, requests: m.requests, ...outcomeSnapshot(m) })),
          }
        : {}),
      tcp: [...this.tcp.values()].map((s) => ({
        labels: s.labels,
        opened: s.opened,
        closed: s.closed,
        open: s.open,
        readBytes: s.readBytes + (openRead.get(s) ?? 0),
        writeBytes: s.writeBytes + (openWritten.get(s) ?? 0),
        closeErrors: Object.fromEntries(s.closeErrors),
      })),
    };
  }
}

function outcomeSnapshot(o: { success: number; failure: number; latency: LatencyHistogram; errors: Map<string, number> }): OutcomeSnapshot {
  return {
    success: o.success,
    failure: o.failure,
    buckets: o.latency.bucketCounts(),
    hdr: o.latency.exportPairs(),
    sumMs: o.latency.sumUs / 1000,
    count: o.latency.count,
    errors: Object.fromEntries(o.errors),
  };
}
