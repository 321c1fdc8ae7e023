// The control plane's translation from the mesh (an EngineSnapshot read from the mesh file) to xDS v3
// resources, as plain objects ready for protobufjs: for Bowline proxies and Envoy, listeners with an
// HttpConnectionManager using RDS (or a TcpProxy), route configurations and EDS clusters; for gRPC's
// proxyless clients, an api_listener per service with its own route configuration. Envoy fields carry
// every meaning Envoy has (timeouts, retry policy, outlier detection, circuit breakers, localities);
// Bowline's own settings ride along in metadata["io.bowline"]. Pure: no I/O, no clock.

import {
  DEFAULT_BALANCER,
  DEFAULT_FAILURE_ACCRUAL,
  DEFAULT_FAILURE_PENALTY,
  DEFAULT_POOL_SETTINGS,
  DEFAULT_QUEUE,
  DEFAULT_RETRY_POLICY,
  DEFAULT_TIMEOUTS,
  DEFAULT_ZONE_LOCALITY,
  type EngineSnapshot,
  type HeaderMatch,
  type ListenerSnapshot,
  type McpSettings,
  type PolicySnapshot,
  type RetryPolicy,
  type RouteMatchSnapshot,
  type RouteSnapshot,
  type ServiceSnapshot,
  type UpstreamProtocol,
} from '../../engine/config/snapshot';
import { packAny as packAnyChecked } from '../common/protos';
import { BOWLINE_METADATA, duration, toStruct } from '../common/struct';
import { CDS_TYPE, EDS_TYPE, HTTP_CONNECTION_MANAGER, HTTP_PROTOCOL_OPTIONS, LDS_TYPE, RDS_TYPE, ROUTER, type ResourceType, TCP_PROXY } from '../common/type-urls';

/**
 * Whether packed messages are checked field by field (checkFields). The tests build with checks on,
 * over meshes that use every field; production builds skip them (they cost half the build time).
 * Set for the duration of one synchronous generateResources call.
 */
let checkPacked = true;

function packAny(fullName: string, message: object): { type_url: string; value: Buffer } {
  return packAnyChecked(fullName, message, checkPacked);
}

/** One resource: its name and the message as a plain object. */
export interface Resource {
  name: string;
  message: Record<string, unknown>;
}

export interface GeneratedResources {
  /** Per type: resources by name. */
  byType: Map<ResourceType, Map<string, Resource>>;
  /** Listener names that a wildcard LDS subscription gets (socket listeners, not gRPC api_listeners). */
  wildcardListeners: Set<string>;
}

/** The route configuration (and api_listener) name of a service for gRPC proxyless clients is the service name; its RDS name is this. */
export function grpcRouteConfigName(service: string): string {
  return `grpc/${service}`;
}

const ADS_SOURCE = { ads: {}, resource_api_version: 'V3' };

/** google.protobuf.UInt32Value, which Envoy uses wherever "unset" differs from 0. */
function u32(n: number): { value: number } {
  return { value: n };
}

function metadata(o: Record<string, unknown>): Record<string, unknown> {
  return { filter_metadata: { [BOWLINE_METADATA]: toStruct(o) } };
}

/**
 * All resources of the mesh, as seen from a node in `nodeZone` ('' when unknown): EDS puts the
 * node's own zone at priority 0 and the other zones at 1, which gives gRPC clients and Envoy zone-
 * local routing with failover (Bowline proxies do their own, with load-based spill-over).
 */
export function generateResources(mesh: EngineSnapshot, nodeZone = '', check = true): GeneratedResources {
  checkPacked = check;
  const byType = new Map<ResourceType, Map<string, Resource>>([
    [LDS_TYPE, new Map()],
    [RDS_TYPE, new Map()],
    [CDS_TYPE, new Map()],
    [EDS_TYPE, new Map()],
  ]);
  const add = (type: ResourceType, name: string, message: Record<string, unknown>): void => {
    byType.get(type)!.set(name, { name, message });
  };
  const grpcRoutes = routesByHostname(mesh);
  for (const svc of mesh.services) {
    add(CDS_TYPE, svc.name, clusterMessage(svc, check));
    add(EDS_TYPE, svc.name, loadAssignment(svc, nodeZone));
    add(LDS_TYPE, svc.name, grpcListener(svc.name, check));
    add(RDS_TYPE, grpcRouteConfigName(svc.name), grpcRouteConfig(svc.name, grpcRoutes.get(svc.name) ?? []));
  }
  const socket = socketResources(mesh, check);
  for (const [name, m] of socket.listeners) add(LDS_TYPE, name, m);
  for (const [name, m] of socket.routes) add(RDS_TYPE, name, m);
  return { byType, wildcardListeners: new Set(socket.listeners.keys()) };
}

/** Routes by the host names they list: a gRPC client of service S gets the routes naming S. */
export function routesByHostname(mesh: EngineSnapshot): Map<string, RouteSnapshot[]> {
  const m = new Map<string, RouteSnapshot[]>();
  for (const r of mesh.routes) {
    for (const h of r.hostnames) {
      let list = m.get(h);
      if (list === undefined) m.set(h, (list = []));
      list.push(r);
    }
  }
  return m;
}

/** gRPC proxyless: xds:///<service> resolves listener <service>, whose HttpConnectionManager names its RDS. */
export function grpcListener(service: string, check = true): Record<string, unknown> {
  checkPacked = check;
  return { name: service, api_listener: { api_listener: packAny(HTTP_CONNECTION_MANAGER, httpConnectionManager(service, grpcRouteConfigName(service))) } };
}

/** The routes a gRPC client of `service` gets: those naming it as a host, then the service itself. */
export function grpcRouteConfig(service: string, routes: readonly RouteSnapshot[]): Record<string, unknown> {
  return {
    name: grpcRouteConfigName(service),
    virtual_hosts: [{ name: service, domains: ['*'], routes: [...routes.flatMap((r) => routeMessages(r, true)), defaultRoute(service, true)] }],
  };
}

/** The mesh's own listeners (for Bowline proxies and Envoy) and their route configurations. */
export function socketResources(mesh: EngineSnapshot, check = true): { listeners: Map<string, Record<string, unknown>>; routes: Map<string, Record<string, unknown>> } {
  checkPacked = check;
  const byName = new Map(mesh.routes.map((r) => [r.name, r]));
  const listeners = new Map<string, Record<string, unknown>>();
  const routes = new Map<string, Record<string, unknown>>();
  for (const l of mesh.listeners) {
    listeners.set(l.name, listenerMessage(l, mesh.policy, mesh.mcp));
    if (l.protocol === 'opaque') continue;
    routes.set(l.name, { name: l.name, virtual_hosts: virtualHosts(l, l.routes.map((n) => byName.get(n)!)) });
  }
  return { listeners, routes };
}

// ------------------------------------------------------------------ listeners

function httpConnectionManager(statPrefix: string, routeConfigName: string): Record<string, unknown> {
  return {
    stat_prefix: statPrefix,
    rds: { config_source: ADS_SOURCE, route_config_name: routeConfigName },
    http_filters: [{ name: 'envoy.filters.http.router', typed_config: packAny(ROUTER, {}) }],
  };
}

function listenerMessage(l: ListenerSnapshot, policy: PolicySnapshot | undefined, mcp: McpSettings | undefined): Record<string, unknown> {
  const filter =
    l.protocol === 'opaque'
      ? { name: 'envoy.filters.network.tcp_proxy', typed_config: packAny(TCP_PROXY, { stat_prefix: l.name, cluster: l.defaultService ?? '' }) }
      : { name: 'envoy.filters.network.http_connection_manager', typed_config: packAny(HTTP_CONNECTION_MANAGER, httpConnectionManager(l.name, l.name)) };
  const bowline: Record<string, unknown> = { protocol: l.protocol, detectTimeoutMs: l.detectTimeoutMs };
  if (l.defaultService !== undefined) bowline['defaultService'] = l.defaultService;
  if (l.mcp === true) bowline['mcpTraffic'] = true;
  // The mesh's authorization policy rides on its inbound listeners, for Bowline proxies.
  if (policy !== undefined && l.direction === 'inbound') bowline['policy'] = policy;
  // MCP inspection settings and policies ride on every listener (outbound proxies inspect too).
  if (mcp !== undefined) bowline['mcp'] = mcp;
  return {
    name: l.name,
    address: { socket_address: { address: l.address.host, port_value: l.address.port } },
    traffic_direction: l.direction === 'inbound' ? 'INBOUND' : 'OUTBOUND',
    filter_chains: [{ filters: [filter] }],
    // Redirected connections (bowline init): Envoy's way to say "go where it was going".
    ...(l.originalDst === true ? { use_original_dst: { value: true } } : {}),
    metadata: metadata(bowline),
  };
}

// ------------------------------------------------------------------ routes

/**
 * Virtual hosts of a listener: routes with the same host names share one, in the order the routes
 * come; routes for any host go to the "*" one, which also gets the listener's default service last.
 */
function virtualHosts(l: ListenerSnapshot, rs: RouteSnapshot[]): Record<string, unknown>[] {
  const hosts = new Map<string, { domains: string[]; routes: Record<string, unknown>[] }>();
  for (const r of rs) {
    const domains = r.hostnames.length === 0 ? ['*'] : r.hostnames.flatMap((h) => [h, `${h}:*`]);
    const key = domains.join(',');
    let vh = hosts.get(key);
    if (vh === undefined) hosts.set(key, (vh = { domains, routes: [] }));
    vh.routes.push(...routeMessages(r));
  }
  let any = hosts.get('*');
  if (any === undefined && l.defaultService !== undefined) hosts.set('*', (any = { domains: ['*'], routes: [] }));
  if (any !== undefined && l.defaultService !== undefined) any.routes.push(defaultRoute(l.defaultService));
  return [...hosts.entries()].map(([key, vh], i) => ({ name: key === '*' ? `${l.name}/any` : `${l.name}/${i}`, domains: vh.domains, routes: vh.routes }));
}

/** The last route: the listener's default service (Bowline keeps it as defaultService, not a route). */
function defaultRoute(cluster: string, grpc = false): Record<string, unknown> {
  return { name: `default/${cluster}`, match: { prefix: grpc ? '' : '/' }, route: { cluster }, metadata: metadata({ listenerDefault: true }) };
}

/** The Envoy routes of one mesh route: one per match (an Envoy route has a single match). */
function routeMessages(r: RouteSnapshot, grpc = false): Record<string, unknown>[] {
  const matches: RouteMatchSnapshot[] = r.matches.length === 0 ? [{ headers: [] }] : r.matches;
  const action = routeAction(r);
  const meta = routeMetadata(r);
  return matches.map((m) => ({ name: r.name, match: routeMatch(m, grpc), route: action, ...meta }));
}

/**
 * Gateway API's PathPrefix matches whole segments ("/api" matches "/api" and "/api/x", not
 * "/apix"): Envoy's path_separated_prefix. gRPC clients only know plain prefixes, which is what gRPC
 * method paths need anyway.
 */
function routeMatch(m: RouteMatchSnapshot, grpc: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (m.path === undefined) out['prefix'] = grpc ? '' : '/';
  else if (m.path.kind === 'exact') out['path'] = m.path.value;
  else if (m.path.kind === 'string-prefix') out['prefix'] = m.path.value;
  else if (m.path.kind === 'regex') out['safe_regex'] = { regex: m.path.value };
  else {
    const v = m.path.value.replace(/\/+$/, '');
    if (grpc) out['prefix'] = m.path.value;
    else if (v === '') out['prefix'] = '/';
    else out['path_separated_prefix'] = v;
  }
  const headers = m.headers.map(headerMatcher);
  if (m.method !== undefined) headers.push({ name: ':method', string_match: { exact: m.method } });
  if (headers.length > 0) out['headers'] = headers;
  return out;
}

function headerMatcher(h: HeaderMatch): Record<string, unknown> {
  switch (h.kind) {
    case 'present':
      return { name: h.name, present_match: true };
    case 'regex':
      return { name: h.name, string_match: { safe_regex: { regex: h.value } } };
    default:
      return { name: h.name, string_match: { exact: h.value } };
  }
}

function routeAction(r: RouteSnapshot): Record<string, unknown> {
  const backends = r.backends.filter((b) => b.weight > 0);
  const action: Record<string, unknown> =
    backends.length === 1
      ? { cluster: backends[0]!.service }
      : { weighted_clusters: { clusters: backends.map((b) => ({ name: b.service, weight: u32(Math.max(1, Math.round(b.weight))) })) } };
  // Envoy's default route timeout is 15 s; 0 says "none", as in the mesh file.
  action['timeout'] = duration(r.requestTimeoutMs);
  if (r.idleTimeoutMs !== undefined && r.idleTimeoutMs > 0) action['idle_timeout'] = duration(r.idleTimeoutMs);
  // A per-attempt timeout without retries only exists in Bowline's metadata: Envoy's per_try_timeout
  // lives in a retry policy, and gRPC refuses one with no retries.
  if (r.retry !== undefined && r.retry.maxRetries > 0) action['retry_policy'] = retryPolicy(r.retry, r.responseTimeoutMs ?? 0);
  return action;
}

const RETRY_ON: Record<string, string> = {
  '5xx': '5xx',
  'gateway-error': 'gateway-error',
  'connect-failure': 'connect-failure',
  reset: 'reset',
  'retriable-status-codes': 'retriable-status-codes',
  // gRPC conditions, which gRPC proxyless clients act on too (the others they ignore).
  cancelled: 'cancelled',
  'deadline-exceeded': 'deadline-exceeded',
  internal: 'internal',
  'resource-exhausted': 'resource-exhausted',
  unavailable: 'unavailable',
};

function retryPolicy(p: RetryPolicy, perTryTimeoutMs: number): Record<string, unknown> {
  const out: Record<string, unknown> = {
    retry_on: p.on.map((c) => RETRY_ON[c]).join(','),
    num_retries: u32(p.maxRetries),
    retry_back_off: { base_interval: duration(p.backoffBaseMs), max_interval: duration(p.backoffMaxMs) },
  };
  if (p.statusCodes.length > 0) out['retriable_status_codes'] = p.statusCodes;
  if (perTryTimeoutMs > 0) out['per_try_timeout'] = duration(perTryTimeoutMs);
  return out;
}

/** What Envoy's route fields cannot say: the retry budget and body limit, the timeouts as written. */
function routeMetadata(r: RouteSnapshot): Record<string, unknown> {
  const m: Record<string, unknown> = { requestTimeoutMs: r.requestTimeoutMs };
  if (r.responseTimeoutMs !== undefined) m['responseTimeoutMs'] = r.responseTimeoutMs;
  if (r.idleTimeoutMs !== undefined) m['idleTimeoutMs'] = r.idleTimeoutMs;
  if (r.retry !== undefined) m['retry'] = r.retry;
  if (r.mcp === true) m['mcp'] = true;
  return { metadata: metadata(m) };
}

// ------------------------------------------------------------------ clusters and endpoints

const LB_POLICY: Record<string, string> = { 'round-robin': 'ROUND_ROBIN', 'least-request': 'LEAST_REQUEST', 'p2c-ewma': 'LEAST_REQUEST' };

export function clusterMessage(svc: ServiceSnapshot, check = true): Record<string, unknown> {
  checkPacked = check;
  const c: Record<string, unknown> = {
    name: svc.name,
    type: 'EDS',
    eds_cluster_config: { eds_config: ADS_SOURCE, service_name: svc.name },
    connect_timeout: duration(svc.connectTimeoutMs),
    // Envoy has no peak-EWMA: its least-request (P2C over requests in flight) is the nearest.
    lb_policy: LB_POLICY[svc.balancer ?? 'p2c-ewma'],
    // The extensible form wins where it is understood; a client takes the first policy it supports
    // (gRPC has no least-request: it takes round-robin).
    load_balancing_policy: { policies: lbPolicies(svc.balancer ?? 'p2c-ewma') },
    typed_extension_protocol_options: { [HTTP_PROTOCOL_OPTIONS]: packedProtocolOptions(svc.protocol ?? 'auto') },
  };
  if (svc.queue !== undefined) {
    c['circuit_breakers'] = { thresholds: [{ max_requests: u32(svc.queue.maxInFlight), max_pending_requests: u32(svc.queue.capacity) }] };
  }
  const a = svc.failureAccrual;
  if (a !== undefined && a.mode !== 'off') {
    const od: Record<string, unknown> = {
      base_ejection_time: duration(a.minBackoffMs),
      max_ejection_time: duration(a.maxBackoffMs),
      max_ejection_percent: u32(Math.round(a.maxEjectionPercent)),
      interval: duration(1000),
    };
    if (a.mode === 'consecutive') {
      od['consecutive_5xx'] = u32(a.consecutiveFailures);
      od['enforcing_success_rate'] = u32(0);
    } else {
      // Envoy's success rate is relative to the other hosts; its failure percentage is the absolute
      // threshold Bowline means.
      od['enforcing_consecutive_5xx'] = u32(0);
      od['enforcing_success_rate'] = u32(0);
      od['failure_percentage_threshold'] = u32(Math.round(100 * (1 - a.successRateThreshold)));
      od['enforcing_failure_percentage'] = u32(100);
      od['failure_percentage_request_volume'] = u32(a.successRateMinRequests);
      od['failure_percentage_minimum_hosts'] = u32(1);
    }
    c['outlier_detection'] = od;
  }
  // Bowline's settings, where they differ from its defaults (most services keep them: a thousand
  // clusters stay small); `v` says the cluster comes from Bowline, whose defaults then apply.
  const bowline: Record<string, unknown> = { v: 1 };
  const put = (key: string, value: unknown, def: unknown): void => {
    if (value !== undefined && JSON.stringify(value) !== JSON.stringify(def)) bowline[key] = value;
  };
  put('balancer', svc.balancer, DEFAULT_BALANCER);
  put('zoneLocality', svc.zoneLocality, DEFAULT_ZONE_LOCALITY);
  put('failureAccrual', svc.failureAccrual, DEFAULT_FAILURE_ACCRUAL);
  put('failurePenalty', svc.failurePenalty, DEFAULT_FAILURE_PENALTY);
  put('queue', svc.queue, DEFAULT_QUEUE);
  put('retry', svc.retry, DEFAULT_RETRY_POLICY);
  put('timeouts', svc.timeouts, DEFAULT_TIMEOUTS);
  put('pool', svc.pool, DEFAULT_POOL_SETTINGS);
  c['metadata'] = metadata(bowline);
  return c;
}

/**
 * The upstream HTTP version, as Envoy says it (Envoy's default, with no options, is HTTP/1.1):
 * explicit HTTP/1.1 or HTTP/2 (plaintext: prior knowledge), or the downstream's version.
 */
function httpProtocolOptions(protocol: UpstreamProtocol): Record<string, unknown> {
  switch (protocol) {
    case 'http1':
      return { explicit_http_config: { http_protocol_options: {} } };
    case 'h2c':
      return { explicit_http_config: { http2_protocol_options: {} } };
    default:
      return { use_downstream_protocol_config: { http_protocol_options: {}, http2_protocol_options: {} } };
  }
}

const packedOptions = new Map<UpstreamProtocol, { type_url: string; value: Buffer }>();

/** Packed once per protocol: every cluster shares one of three messages (read-only). */
function packedProtocolOptions(protocol: UpstreamProtocol): { type_url: string; value: Buffer } {
  let packed = packedOptions.get(protocol);
  if (packed === undefined) packedOptions.set(protocol, (packed = packAnyChecked(HTTP_PROTOCOL_OPTIONS, httpProtocolOptions(protocol), true)));
  return packed;
}

const ROUND_ROBIN_POLICY = 'envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin';
const LEAST_REQUEST_POLICY = 'envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest';

function lbPolicies(balancer: string): Record<string, unknown>[] {
  const rr = { typed_extension_config: { name: 'envoy.load_balancing_policies.round_robin', typed_config: packAny(ROUND_ROBIN_POLICY, {}) } };
  if (balancer === 'round-robin') return [rr];
  return [{ typed_extension_config: { name: 'envoy.load_balancing_policies.least_request', typed_config: packAny(LEAST_REQUEST_POLICY, {}) } }, rr];
}

/** The load assignments alone, as seen from `nodeZone` (the only resources that differ by zone). */
export function generateEndpoints(mesh: EngineSnapshot, nodeZone: string): Map<string, Resource> {
  return new Map(mesh.services.map((svc) => [svc.name, { name: svc.name, message: loadAssignment(svc, nodeZone) }]));
}

export function loadAssignment(svc: ServiceSnapshot, nodeZone: string): Record<string, unknown> {
  const zones = new Map<string, { weight: number; lb_endpoints: Record<string, unknown>[] }>();
  for (const e of svc.endpoints) {
    if (e.weight <= 0) continue; // Envoy's weights start at 1; weight 0 means "no traffic"
    let z = zones.get(e.zone);
    if (z === undefined) zones.set(e.zone, (z = { weight: 0, lb_endpoints: [] }));
    const w = Math.max(1, Math.round(e.weight));
    z.weight += w;
    const lb: Record<string, unknown> = { endpoint: { address: { socket_address: { address: e.address.host, port_value: e.address.port } } }, load_balancing_weight: u32(w), health_status: 'HEALTHY' };
    // A meshed endpoint: its SPIFFE ID (Bowline proxies wrap traffic to it in mutual TLS and check it).
    if (e.identity !== undefined) lb['metadata'] = metadata({ identity: e.identity });
    z.lb_endpoints.push(lb);
  }
  const endpoints = [...zones.entries()].map(([zone, z]) => {
    const loc: Record<string, unknown> = { locality: { zone }, lb_endpoints: z.lb_endpoints, load_balancing_weight: u32(z.weight) };
    if (nodeZone !== '' && zone !== nodeZone && zones.has(nodeZone)) loc['priority'] = 1;
    return loc;
  });
  return { cluster_name: svc.name, endpoints };
}
