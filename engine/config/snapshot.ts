// The engine's whole configuration: one immutable, versioned snapshot that a worker compiles into
// route tables and pools. Sources (the YAML file, the one-line CLI, later xDS) translate into it;
// the engine never knows which one produced it.

export type Direction = 'inbound' | 'outbound';

/** How a listener treats the first bytes of a connection. */
export type ListenerProtocol = 'detect' | 'http1' | 'opaque';

export interface SocketAddress {
  host: string;
  port: number;
}

export interface ListenerSnapshot {
  /** Unique name; used in metrics and logs. */
  name: string;
  address: SocketAddress;
  direction: Direction;
  /** 'detect' sniffs the first read; 'opaque' skips detection (also forced when the port is in opaquePorts). */
  protocol: ListenerProtocol;
  /** Names of routes (in RouteSnapshot) evaluated in order for HTTP on this listener. */
  routes: string[];
  /** Service for opaque TCP traffic on this listener, and for HTTP that no route matches (optional). */
  defaultService?: string;
  /** Protocol detection deadline for the first read. */
  detectTimeoutMs: number;
}

export interface EndpointSnapshot {
  address: SocketAddress;
  /** Availability zone; '' when unknown. */
  zone: string;
  /** Relative weight for balancing (default 1). */
  weight: number;
}

export interface PoolSettings {
  /** Idle keep-alive connections kept per endpoint. */
  maxIdlePerEndpoint: number;
  /** An idle pooled connection is closed after this long. */
  idleTimeoutMs: number;
}

/** How a service picks an endpoint: P2C over peak-EWMA cost (Linkerd's default), or plain weighted round-robin. */
export type BalancerKind = 'p2c-ewma' | 'round-robin';

export const DEFAULT_BALANCER: BalancerKind = 'p2c-ewma';

export interface ServiceSnapshot {
  name: string;
  endpoints: EndpointSnapshot[];
  pool: PoolSettings;
  connectTimeoutMs: number;
  /** Default p2c-ewma. */
  balancer?: BalancerKind;
}

export type PathMatch =
  | { kind: 'prefix'; value: string }
  | { kind: 'exact'; value: string };

export interface HeaderMatch {
  /** Lower-case header name. */
  name: string;
  kind: 'exact' | 'regex' | 'present';
  value: string;
}

export interface RouteMatchSnapshot {
  path?: PathMatch;
  headers: HeaderMatch[];
  /** Upper-case method, when the match restricts it. */
  method?: string;
}

export interface WeightedBackend {
  service: string;
  weight: number;
}

export interface RouteSnapshot {
  /** Unique name; the `route` metric label. */
  name: string;
  /** Lower-case host names without port; '*.example.com' wildcards allowed; empty = any host. */
  hostnames: string[];
  /** Any of these matches selects the route; empty = match everything. */
  matches: RouteMatchSnapshot[];
  backends: WeightedBackend[];
  /** Whole-exchange deadline (request sent to response end); 0 = none. */
  requestTimeoutMs: number;
}

export interface HttpSettings {
  /** Request or response heads above this many bytes get 431 (requests) or 502 (responses). */
  maxHeadBytes: number;
  /** A request head must arrive completely within this time of its first byte (slowloris guard). */
  headTimeoutMs: number;
  /** Idle keep-alive client connections are closed after this long. */
  keepAliveTimeoutMs: number;
  /** Response (first byte) deadline per upstream attempt; 0 = none. */
  responseTimeoutMs: number;
}

export interface EngineSnapshot {
  /** Monotonic per source; workers acknowledge snapshots by version. */
  version: string;
  /** The proxy's own zone ('' when unknown). */
  zone: string;
  listeners: ListenerSnapshot[];
  services: ServiceSnapshot[];
  routes: RouteSnapshot[];
  http: HttpSettings;
  /** Ports whose traffic is never sniffed (listener ports now; original destinations later). */
  opaquePorts: number[];
}

export const DEFAULT_HTTP_SETTINGS: Readonly<HttpSettings> = Object.freeze({
  maxHeadBytes: 64 * 1024,
  headTimeoutMs: 10_000,
  keepAliveTimeoutMs: 60_000,
  responseTimeoutMs: 0,
});

export const DEFAULT_POOL_SETTINGS: Readonly<PoolSettings> = Object.freeze({
  maxIdlePerEndpoint: 256,
  idleTimeoutMs: 60_000,
});

export const DEFAULT_CONNECT_TIMEOUT_MS = 1_000;
export const DEFAULT_DETECT_TIMEOUT_MS = 10_000;
