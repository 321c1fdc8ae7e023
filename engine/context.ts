// What connection handlers see of their engine: the current compiled config and shared services.
// Handlers re-read `listener()` when `generation` moves, so that a reload applies to the next request
// on an open connection while in-flight exchanges finish on the objects they started with.

import type { Direction, HttpSettings, ListenerSnapshot } from './config/snapshot';
import type { Clock } from './clock';
import type { Cluster } from './cluster';
import type { MetricsRegistry, TcpStats } from './metrics/registry';
import type { RouteTable } from './router/route-table';
import type { MeshTls } from './tls/mesh-tls';
import type { Authorizer, Decision } from './policy/authorizer';
import type { McpInspector } from './mcp/inspector';

export interface ListenerRuntime {
  readonly name: string;
  readonly direction: Direction;
  readonly snapshot: ListenerSnapshot;
  readonly table: RouteTable;
  readonly defaultCluster: Cluster | null;
  /** True when detection is skipped and all traffic is opaque TCP. */
  readonly opaque: boolean;
  readonly http: HttpSettings;
  readonly srcTcp: TcpStats;
  readonly dstTcp: TcpStats;
  /** Inbound authorization (a policy is configured and this listener is inbound); null: all allowed. */
  readonly authorizer: Authorizer | null;
}

/** A connection the engine tracks for timeouts, draining and metrics. */
export interface TrackedConnection {
  /** The listener it came in on (client-side connections only). */
  readonly listenerName?: string;
  /** Called by the engine's sweeper with the current clock time. */
  sweep(nowMs: number): void;
  /** Graceful drain: finish the current exchange, then close; close at once when idle. */
  drain(): void;
  /** Hard stop at the end of the grace period. */
  destroy(): void;
  /** Adds bytes moved so far on open sockets to the metrics snapshot. */
  openBytes(add: (s: TcpStats, read: number, written: number) => void): void;
}

export interface ProxyContext {
  readonly clock: Clock;
  /** Mesh TLS with this proxy's identity; null without one. */
  readonly meshTls: MeshTls | null;
  /** Uniform [0, 1) randomness (balancing, backoff jitter): injected for deterministic tests. */
  readonly rng: () => number;
  readonly metrics: MetricsRegistry;
  /** MCP inspection of the current snapshot; null when no route is MCP and inspection is off. */
  readonly mcp: McpInspector | null;
  readonly generation: number;
  readonly draining: boolean;
  listener(name: string): ListenerRuntime | undefined;
  track(c: TrackedConnection): void;
  untrack(c: TrackedConnection): void;
  /**
   * A bug surfaced as an exception in a connection handler: counted and logged; the caller closes
   * that connection, so that one bad exchange never takes the worker (and its other traffic) down.
   */
  internalError(where: string, e: unknown): void;
  /**
   * Counts an authorization decision under the policy's name and logs denials and audited requests
   * (rate-limited, so that a flood of denied calls cannot flood the log).
   */
  authzDecision(kind: 'http' | 'tcp', d: Decision, identity: string | null, address: string, target: string): void;
  /**
   * Where a connection's traffic goes when no route says: the listener's default service, or where a
   * connection redirected to the proxy was going (see Engine.clusterFor).
   */
  clusterFor(lr: ListenerRuntime, originalDst: readonly [string, number] | null): Cluster | null;
  /** Records an upstream socket as the proxy's own (its local port), so that a loop back to the proxy is seen. */
  ownSocket(s: import('node:net').Socket): void;
}
