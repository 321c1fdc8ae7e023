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
  /**
   * Connections arrive redirected by iptables (`bowline init`): each goes where it was going (its
   * SO_ORIGINAL_DST): outbound to the service that owns that address, else to the address itself;
   * inbound to that port on localhost. Routes still apply to HTTP first.
   */
  originalDst?: boolean;
  /** Every HTTP request on this listener is MCP (as if each of its routes said `mcp: true`). */
  mcp?: boolean;
}

export interface EndpointSnapshot {
  address: SocketAddress;
  /** Availability zone; '' when unknown. */
  zone: string;
  /** Relative weight for balancing (default 1). */
  weight: number;
  /**
   * A meshed endpoint's SPIFFE ID: traffic to it is wrapped in mutual TLS 1.3 and its certificate
   * must name exactly this identity. Absent: plaintext.
   */
  identity?: string;
}

/** The proxy's own workload identity: what it presents on mesh TLS, and the anchors it trusts. */
export interface IdentitySnapshot {
  spiffeId: string;
  /** Leaf then issuer, PEM. */
  certChainPem: string;
  keyPem: string;
  trustBundlePem: string;
  /** The PEM files it was read from (a config file's proxy.identity): watched, and re-read when they change. */
  files?: string[];
}

export interface PoolSettings {
  /** Idle keep-alive connections kept per endpoint. */
  maxIdlePerEndpoint: number;
  /** An idle pooled connection is closed after this long. */
  idleTimeoutMs: number;
}

/**
 * How a service picks among its ready endpoints: P2C over peak-EWMA cost (Linkerd's default), P2C
 * over requests in flight (Envoy's least-request), or plain weighted round-robin.
 */
export type BalancerKind = 'p2c-ewma' | 'round-robin' | 'least-request';

export const DEFAULT_BALANCER: BalancerKind = 'p2c-ewma';

/**
 * Zone-local routing with load-based spill-over (HAZL). Applies when the proxy knows its zone and the
 * service has endpoints in it; load is requests in flight per ready endpoint of the zones in use,
 * averaged over loadWindowMs (rising latency raises it too: in flight = rate x latency).
 */
export interface ZoneLocalitySettings {
  enabled: boolean;
  /** Above this load, one more zone is added. */
  highLoad: number;
  /** Below this load, the last zone added is removed again. */
  lowLoad: number;
  /** Time constant of the load average, and the least time between two changes. */
  loadWindowMs: number;
}

/** Failure accrual (circuit breaking): when an endpoint is taken out of rotation, and how it comes back. */
export interface FailureAccrualSettings {
  /** 'consecutive' failures, a windowed 'success-rate', or 'off'. */
  mode: 'consecutive' | 'success-rate' | 'off';
  consecutiveFailures: number;
  /** Ejection backoff: doubles per ejection in a row, from min to max, with jitter. */
  minBackoffMs: number;
  maxBackoffMs: number;
  /** Extra random fraction of the backoff, 0..1. */
  jitter: number;
  /** Panic threshold: ejection never takes out more than this share of the endpoints (and never all). */
  maxEjectionPercent: number;
  /** success-rate mode: eject when the success rate of the last `successRateWindow` outcomes falls below this. */
  successRateThreshold: number;
  /** success-rate mode: outcomes needed before the rate counts. */
  successRateMinRequests: number;
  successRateWindow: number;
}

/**
 * Fast failures count as slow answers for balancing, so that an endpoint that sheds load (429, 503)
 * does not attract more traffic by answering quickly. A Retry-After is honoured as the penalty.
 */
export interface FailurePenaltySettings {
  enabled: boolean;
  statuses: number[];
  /** The latency charged when the response names no Retry-After. */
  latencyMs: number;
  /** Cap on a penalty taken from Retry-After. */
  maxLatencyMs: number;
}

/** Bounded balancer queue: requests wait while the service is at maxInFlight; shed (503) when full; 504 after failFastMs. */
export interface QueueSettings {
  /** Requests in flight to the service (per worker) before new ones queue; Envoy's max_requests. */
  maxInFlight: number;
  /** Waiting requests beyond this are shed with 503. */
  capacity: number;
  /** A request that waited this long fails with 504, and the service fails fast until a slot frees. */
  failFastMs: number;
}

/** HTTP conditions (Envoy's retry_on meanings) and gRPC ones (Envoy's retry_grpc_on): a grpc-status in the response headers (trailers-only). */
export type RetryCondition = '5xx' | 'gateway-error' | 'connect-failure' | 'reset' | 'retriable-status-codes' | GrpcRetryCondition;
export type GrpcRetryCondition = 'cancelled' | 'deadline-exceeded' | 'internal' | 'resource-exhausted' | 'unavailable';
/** The gRPC status code of each gRPC retry condition. */
export const GRPC_RETRY_CODES: Record<GrpcRetryCondition, number> = { cancelled: 1, 'deadline-exceeded': 4, 'resource-exhausted': 8, internal: 13, unavailable: 14 };

/**
 * How requests go to a service's endpoints: 'http1', 'h2c' (HTTP/2 with prior knowledge), or 'auto'
 * (the default): the version the client spoke. A meshed service (another Bowline behind mutual TLS,
 * HTTP/2 chosen by ALPN) gets HTTP/2 unless it says 'http1': HTTP/1 requests are multiplexed onto
 * streams of one connection between the proxies and restored to HTTP/1.1 at the far end
 * (l5d-orig-proto), as Linkerd does; measured 0.76x HAProxy against 0.67x for HTTP/1.1 over mTLS.
 */
export type UpstreamProtocol = 'http1' | 'h2c' | 'auto';

/** Linkerd's budget: retries in any window stay within `ratio` of the requests, with a floor of minPerSecond. */
export interface RetryBudgetSettings {
  ratio: number;
  minPerSecond: number;
  windowMs: number;
}

export interface RetryPolicy {
  on: RetryCondition[];
  /** For 'retriable-status-codes'. */
  statusCodes: number[];
  /** Retries per request (attempts = 1 + maxRetries). */
  maxRetries: number;
  /** Exponential backoff with full jitter between these bounds. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Requests with bodies up to this size are buffered so that they can be replayed. */
  maxBodyBytes: number;
  /** Retry POST and PATCH too (safe methods and PUT/DELETE always may be; connect failures always may). */
  nonIdempotent: boolean;
  budget: RetryBudgetSettings;
}

/** Deadlines of one request; 0 = none. */
export interface TimeoutSettings {
  /** Whole exchange, all attempts: request start to response end. */
  requestMs: number;
  /** Per attempt: request sent to the first response byte. */
  responseMs: number;
  /** No bytes either way for this long during an exchange. */
  idleMs: number;
}

export interface ServiceSnapshot {
  name: string;
  endpoints: EndpointSnapshot[];
  pool: PoolSettings;
  connectTimeoutMs: number;
  /** Default p2c-ewma. */
  balancer?: BalancerKind;
  /** Defaults: DEFAULT_ZONE_LOCALITY etc. */
  zoneLocality?: ZoneLocalitySettings;
  failureAccrual?: FailureAccrualSettings;
  failurePenalty?: FailurePenaltySettings;
  queue?: QueueSettings;
  /** The retry policy of requests that reach this service by a route without its own. */
  retry?: RetryPolicy;
  /** Timeouts of requests to this service, where the route sets none. */
  timeouts?: TimeoutSettings;
  /** Default 'auto'. */
  protocol?: UpstreamProtocol;
}

/**
 * prefix: Gateway API's PathPrefix (whole segments: "/api" matches "/api/x", not "/apix");
 * string-prefix: a plain string prefix (Envoy's `prefix`); exact; regex: the whole path (Envoy's safe_regex).
 */
export type PathMatch =
  | { kind: 'prefix'; value: string }
  | { kind: 'string-prefix'; value: string }
  | { kind: 'exact'; value: string }
  | { kind: 'regex'; value: string };

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
  /** Whole-exchange deadline (request start to response end, all attempts); 0 = the service's. */
  requestTimeoutMs: number;
  /** Per-attempt first-byte deadline; 0 or absent = the service's. */
  responseTimeoutMs?: number;
  /** Idle deadline during an exchange; 0 or absent = the service's. */
  idleTimeoutMs?: number;
  /** Overrides the backend service's retry policy. */
  retry?: RetryPolicy;
  /** The route carries MCP (Streamable HTTP): its requests are inspected, counted per tool and authorized. */
  mcp?: boolean;
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
  /** Price of one GB crossing zones, each way, for the cost estimate (default 0.01 USD). */
  zoneTransferUsdPerGb?: number;
  listeners: ListenerSnapshot[];
  services: ServiceSnapshot[];
  routes: RouteSnapshot[];
  http: HttpSettings;
  /** Ports whose traffic is never sniffed (listener ports now; original destinations later). */
  opaquePorts: number[];
  /** Mesh TLS: without it, TLS arriving inbound is forwarded opaquely and meshed endpoints are refused. */
  identity?: IdentitySnapshot;
  /** Authorization of inbound traffic (Linkerd's shapes); absent: everything is allowed. */
  policy?: PolicySnapshot;
  /** MCP inspection and authorization; absent: MCP only on routes marked `mcp`, with the defaults. */
  mcp?: McpSettings;
}

/** How MCP traffic is inspected, counted and authorized. */
export interface McpSettings {
  /** Inspect every HTTP request that is MCP (a JSON-RPC POST, an SSE GET with a session), not only marked routes. */
  inspectAll: boolean;
  /** Request bodies are buffered up to this many bytes for inspection. */
  maxBodyBytes: number;
  /** A larger body: refused (413 with a JSON-RPC error), or passed on without inspection (counted). */
  oversizedBody: 'reject' | 'pass';
  /** Distinct tool, resource and prompt names per method in metrics; later ones count as "_overflow". */
  maxNames: number;
  /** Audit mode: calls the policies would deny are logged and counted, and let through. */
  audit: boolean;
  policies: McpPolicySnapshot[];
}

/**
 * Who may call which tools, read which resources and get which prompts. Where a policy targets a
 * request's route (else its Server), MCP calls are denied unless one of its rules grants them.
 */
export interface McpPolicySnapshot {
  name: string;
  target: { kind: 'server' | 'route'; name: string };
  rules: McpRuleSnapshot[];
}

export interface McpRuleSnapshot {
  name: string;
  /** Clients by mesh identity (SPIFFE ID patterns, as in AuthorizationSnapshot); absent: any. */
  identities?: string[];
  /** Clients by address; absent: any. */
  networks?: { cidr: string; except: string[] }[];
  /** Tool names; "*" matches any run of characters. */
  tools: string[];
  /** Resource URI patterns, matched against the URI with its dot segments resolved; "*" matches any run of characters. */
  resources: string[];
  /** Prompt names. */
  prompts: string[];
}

export const DEFAULT_MCP_SETTINGS: Readonly<McpSettings> = Object.freeze<McpSettings>({
  inspectAll: false,
  maxBodyBytes: 1024 * 1024,
  oversizedBody: 'reject',
  maxNames: 100,
  audit: false,
  policies: [],
});

/** Who may call what on inbound listeners: Linkerd's Server, AuthorizationPolicy and authentications. */
export interface PolicySnapshot {
  /** For ports without a Server: all-unauthenticated, all-authenticated, cluster-authenticated or deny. */
  defaultPolicy: 'all-unauthenticated' | 'all-authenticated' | 'cluster-authenticated' | 'deny';
  /** The networks "cluster-authenticated" lets in without a mesh identity (CIDRs). */
  clusterNetworks: string[];
  /** A Server: a port of the workload (an inbound listener's port, or a listener by name). Traffic to it is denied unless authorized. */
  servers: { name: string; port?: number; listener?: string; /** Its traffic is MCP (inspected, counted per tool). */ mcp?: boolean }[];
  authorizations: AuthorizationSnapshot[];
  /** Audit mode: what would be denied is logged and counted, and let through. */
  audit: boolean;
}

export interface AuthorizationSnapshot {
  name: string;
  /** What it authorizes: every request to a Server, or the requests of one route. */
  target: { kind: 'server' | 'route'; name: string };
  /** MeshTLSAuthentication: SPIFFE ID patterns ("*" any identity; a "*" path segment matches one segment). */
  identities?: string[];
  /** NetworkAuthentication: the client's address must be in one of these (and in none of its excepts). */
  networks?: { cidr: string; except: string[] }[];
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

export const DEFAULT_ZONE_LOCALITY: Readonly<ZoneLocalitySettings> = Object.freeze({
  enabled: true,
  highLoad: 2.0,
  lowLoad: 0.8,
  loadWindowMs: 250,
});

export const DEFAULT_FAILURE_ACCRUAL: Readonly<FailureAccrualSettings> = Object.freeze({
  mode: 'consecutive',
  consecutiveFailures: 7,
  minBackoffMs: 1_000,
  maxBackoffMs: 60_000,
  jitter: 0.5,
  maxEjectionPercent: 50,
  successRateThreshold: 0.8,
  successRateMinRequests: 20,
  successRateWindow: 100,
});

export const DEFAULT_FAILURE_PENALTY: Readonly<FailurePenaltySettings> = Object.freeze<FailurePenaltySettings>({
  enabled: true,
  statuses: [429, 503],
  latencyMs: 1_000,
  maxLatencyMs: 30_000,
});

export const DEFAULT_QUEUE: Readonly<QueueSettings> = Object.freeze({
  maxInFlight: 1024,
  capacity: 1000,
  failFastMs: 3_000,
});

export const DEFAULT_RETRY_BUDGET: Readonly<RetryBudgetSettings> = Object.freeze({
  ratio: 0.2,
  minPerSecond: 10,
  windowMs: 10_000,
});

/** Connection failures only: nothing reached the upstream, so any request may go again. */
export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze<RetryPolicy>({
  on: ['connect-failure'],
  statusCodes: [],
  maxRetries: 2,
  backoffBaseMs: 25,
  backoffMaxMs: 250,
  maxBodyBytes: 64 * 1024,
  nonIdempotent: false,
  budget: DEFAULT_RETRY_BUDGET,
});

export const DEFAULT_TIMEOUTS: Readonly<TimeoutSettings> = Object.freeze({
  requestMs: 0,
  responseMs: 0,
  idleMs: 0,
});

export const DEFAULT_ZONE_TRANSFER_USD_PER_GB = 0.01;
