// The control plane's translation from the mesh (an EngineSnapshot read from the mesh file) to xDS v3
// resources, as plain objects ready for protobufjs: for Bowline proxies and Envoy, listeners with an
// HttpConnectionManager using RDS (or a TcpProxy), route configurations and EDS clusters; for gRPC's
// proxyless clients, an api_listener per service with its own route configuration. Envoy fields carry
// every meaning Envoy has (timeouts, retry policy, outlier detection, circuit breakers, localities);
// Bowline's own settings ride along in metadata["io.bowline"]. Pure: no I/O, no clock.

import type {
  EngineSnapshot,
  HeaderMatch,
  ListenerSnapshot,
  RetryPolicy,
  RouteMatchSnapshot,
  RouteSnapshot,
  ServiceSnapshot,
} from '../../engine/config/snapshot';
import { packAny } from '../common/protos';
import { BOWLINE_METADATA, duration, toStruct } from '../common/struct';
import { CDS_TYPE, EDS_TYPE, HTTP_CONNECTION_MANAGER, LDS_TYPE, RDS_TYPE, ROUTER, type ResourceType, TCP_PROXY } from '../common/type-urls';

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

const ADS_SOURCE = { ads: {}, resourceApiVersion: 'V3' };

function metadata(o: Record<string, unknown>): Record<string, unknown> {
  return { filterMetadata: { [BOWLINE_METADATA]: toStruct(o) } };
}

/**
 * All resources of the mesh, as seen from a node in `nodeZone` ('' when unknown): EDS puts the
 * node's own zone at priority 0 and the other zones at 1, which gives gRPC clients and Envoy zone-
 * local routing with failover (Bowline proxies do their own, with load-based spill-over).
 */
export function generateResources(mesh: EngineSnapshot, nodeZone = ''): GeneratedResources {
  const byType = new Map<ResourceType, Map<string, Resource>>([
    [LDS_TYPE, new Map()],
    [RDS_TYPE, new Map()],
    [CDS_TYPE, new Map()],
    [EDS_TYPE, new Map()],
  ]);
  const add = (type: ResourceType, name: string, message: Record<string, unknown>): void => {
    byType.get(type)!.set(name, { name, message });
  };
  const wildcardListeners = new Set<string>();
  const routes = new Map(mesh.routes.map((r) => [r.name, r]));

  for (const svc of mesh.services) {
    add(CDS_TYPE, svc.name, clusterMessage(svc));
    add(EDS_TYPE, svc.name, loadAssignment(svc, nodeZone));
    // gRPC proxyless: xds:///<service> resolves listener <service>.
    add(LDS_TYPE, svc.name, {
      name: svc.name,
      apiListener: { apiListener: packAny(HTTP_CONNECTION_MANAGER, httpConnectionManager(svc.name, grpcRouteConfigName(svc.name))) },
    });
    const grpcRoutes = mesh.routes.filter((r) => r.hostnames.includes(svc.name));
    add(RDS_TYPE, grpcRouteConfigName(svc.name), {
      name: grpcRouteConfigName(svc.name),
      virtualHosts: [{ name: svc.name, domains: ['*'], routes: [...grpcRoutes.flatMap((r) => routeMessages(r, true)), defaultRoute(svc.name, true)] }],
    });
  }

  for (const l of mesh.listeners) {
    wildcardListeners.add(l.name);
    add(LDS_TYPE, l.name, listenerMessage(l));
    if (l.protocol === 'opaque') continue;
    add(RDS_TYPE, l.name, {
      name: l.name,
      virtualHosts: virtualHosts(l, l.routes.map((n) => routes.get(n)!)),
    });
  }
  return { byType, wildcardListeners };
}

// ------------------------------------------------------------------ listeners

function httpConnectionManager(statPrefix: string, routeConfigName: string): Record<string, unknown> {
  return {
    statPrefix,
    rds: { configSource: ADS_SOURCE, routeConfigName },
    httpFilters: [{ name: 'envoy.filters.http.router', typedConfig: packAny(ROUTER, {}) }],
  };
}

function listenerMessage(l: ListenerSnapshot): Record<string, unknown> {
  const filter =
    l.protocol === 'opaque'
      ? { name: 'envoy.filters.network.tcp_proxy', typedConfig: packAny(TCP_PROXY, { statPrefix: l.name, cluster: l.defaultService ?? '' }) }
      : { name: 'envoy.filters.network.http_connection_manager', typedConfig: packAny(HTTP_CONNECTION_MANAGER, httpConnectionManager(l.name, l.name)) };
  const bowline: Record<string, unknown> = { protocol: l.protocol, detectTimeoutMs: l.detectTimeoutMs };
  if (l.defaultService !== undefined) bowline['defaultService'] = l.defaultService;
  return {
    name: l.name,
    address: { socketAddress: { address: l.address.host, portValue: l.address.port } },
    trafficDirection: l.direction === 'inbound' ? 'INBOUND' : 'OUTBOUND',
    filterChains: [{ filters: [filter] }],
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

function defaultRoute(cluster: string, grpc = false): Record<string, unknown> {
  return { name: `default/${cluster}`, match: { prefix: grpc ? '' : '/' }, route: { cluster } };
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
  else {
    const v = m.path.value.replace(/\/+$/, '');
    if (grpc) out['prefix'] = m.path.value;
    else if (v === '') out['prefix'] = '/';
    else out['pathSeparatedPrefix'] = v;
  }
  const headers = m.headers.map(headerMatcher);
  if (m.method !== undefined) headers.push({ name: ':method', stringMatch: { exact: m.method } });
  if (headers.length > 0) out['headers'] = headers;
  return out;
}

function headerMatcher(h: HeaderMatch): Record<string, unknown> {
  switch (h.kind) {
    case 'present':
      return { name: h.name, presentMatch: true };
    case 'regex':
      return { name: h.name, stringMatch: { safeRegex: { regex: h.value } } };
    default:
      return { name: h.name, stringMatch: { exact: h.value } };
  }
}

function routeAction(r: RouteSnapshot): Record<string, unknown> {
  const backends = r.backends.filter((b) => b.weight > 0);
  const action: Record<string, unknown> =
    backends.length === 1
      ? { cluster: backends[0]!.service }
      : { weightedClusters: { clusters: backends.map((b) => ({ name: b.service, weight: b.weight })) } };
  // Envoy's default route timeout is 15 s; 0 says "none", as in the mesh file.
  action['timeout'] = duration(r.requestTimeoutMs);
  if (r.idleTimeoutMs !== undefined && r.idleTimeoutMs > 0) action['idleTimeout'] = duration(r.idleTimeoutMs);
  if (r.retry !== undefined) action['retryPolicy'] = retryPolicy(r.retry, r.responseTimeoutMs ?? 0);
  else if (r.responseTimeoutMs !== undefined && r.responseTimeoutMs > 0) action['retryPolicy'] = { numRetries: 0, perTryTimeout: duration(r.responseTimeoutMs) };
  return action;
}

const RETRY_ON: Record<string, string> = {
  '5xx': '5xx',
  'gateway-error': 'gateway-error',
  'connect-failure': 'connect-failure',
  reset: 'reset',
  'retriable-status-codes': 'retriable-status-codes',
};

function retryPolicy(p: RetryPolicy, perTryTimeoutMs: number): Record<string, unknown> {
  const out: Record<string, unknown> = {
    retryOn: p.on.map((c) => RETRY_ON[c]).join(','),
    numRetries: p.maxRetries,
    retryBackOff: { baseInterval: duration(p.backoffBaseMs), maxInterval: duration(p.backoffMaxMs) },
  };
  if (p.statusCodes.length > 0) out['retriableStatusCodes'] = p.statusCodes;
  if (perTryTimeoutMs > 0) out['perTryTimeout'] = duration(perTryTimeoutMs);
  return out;
}

/** What Envoy's route fields cannot say: the retry budget and body limit, the timeouts as written. */
function routeMetadata(r: RouteSnapshot): Record<string, unknown> {
  const m: Record<string, unknown> = { requestTimeoutMs: r.requestTimeoutMs };
  if (r.responseTimeoutMs !== undefined) m['responseTimeoutMs'] = r.responseTimeoutMs;
  if (r.idleTimeoutMs !== undefined) m['idleTimeoutMs'] = r.idleTimeoutMs;
  if (r.retry !== undefined) m['retry'] = r.retry;
  return { metadata: metadata(m) };
}

// ------------------------------------------------------------------ clusters and endpoints

const LB_POLICY: Record<string, string> = { 'round-robin': 'ROUND_ROBIN', 'least-request': 'LEAST_REQUEST', 'p2c-ewma': 'LEAST_REQUEST' };

function clusterMessage(svc: ServiceSnapshot): Record<string, unknown> {
  const c: Record<string, unknown> = {
    name: svc.name,
    type: 'EDS',
    edsClusterConfig: { edsConfig: ADS_SOURCE, serviceName: svc.name },
    connectTimeout: duration(svc.connectTimeoutMs),
    // Envoy has no peak-EWMA: its least-request (P2C over requests in flight) is the nearest.
    lbPolicy: LB_POLICY[svc.balancer ?? 'p2c-ewma'],
  };
  if (svc.queue !== undefined) {
    c['circuitBreakers'] = { thresholds: [{ maxRequests: svc.queue.maxInFlight, maxPendingRequests: svc.queue.capacity }] };
  }
  const a = svc.failureAccrual;
  if (a !== undefined && a.mode !== 'off') {
    const od: Record<string, unknown> = {
      baseEjectionTime: duration(a.minBackoffMs),
      maxEjectionTime: duration(a.maxBackoffMs),
      maxEjectionPercent: a.maxEjectionPercent,
      interval: duration(1000),
    };
    if (a.mode === 'consecutive') {
      od['consecutive_5xx'] = a.consecutiveFailures;
      od['enforcingSuccessRate'] = 0;
    } else {
      od['enforcingConsecutive_5xx'] = 0;
      od['successRateMinimumHosts'] = 1;
      od['successRateRequestVolume'] = a.successRateMinRequests;
      // Envoy's success rate is relative to the other hosts; Bowline's absolute threshold is in metadata.
      od['failurePercentageThreshold'] = Math.round(100 * (1 - a.successRateThreshold));
      od['enforcingFailurePercentage'] = 100;
      od['failurePercentageRequestVolume'] = a.successRateMinRequests;
    }
    c['outlierDetection'] = od;
  }
  const bowline: Record<string, unknown> = { balancer: svc.balancer ?? 'p2c-ewma' };
  if (svc.zoneLocality !== undefined) bowline['zoneLocality'] = svc.zoneLocality;
  if (svc.failureAccrual !== undefined) bowline['failureAccrual'] = svc.failureAccrual;
  if (svc.failurePenalty !== undefined) bowline['failurePenalty'] = svc.failurePenalty;
  if (svc.queue !== undefined) bowline['queue'] = svc.queue;
  if (svc.retry !== undefined) bowline['retry'] = svc.retry;
  if (svc.timeouts !== undefined) bowline['timeouts'] = svc.timeouts;
  bowline['pool'] = svc.pool;
  c['metadata'] = metadata(bowline);
  return c;
}

function loadAssignment(svc: ServiceSnapshot, nodeZone: string): Record<string, unknown> {
  const zones = new Map<string, { weight: number; lbEndpoints: Record<string, unknown>[] }>();
  for (const e of svc.endpoints) {
    if (e.weight <= 0) continue; // Envoy's weights start at 1; weight 0 means "no traffic"
    let z = zones.get(e.zone);
    if (z === undefined) zones.set(e.zone, (z = { weight: 0, lbEndpoints: [] }));
    const w = Math.max(1, Math.round(e.weight));
    z.weight += w;
    z.lbEndpoints.push({ endpoint: { address: { socketAddress: { address: e.address.host, portValue: e.address.port } } }, loadBalancingWeight: w, healthStatus: 'HEALTHY' });
  }
  const endpoints = [...zones.entries()].map(([zone, z]) => {
    const loc: Record<string, unknown> = { locality: { zone }, lbEndpoints: z.lbEndpoints, loadBalancingWeight: z.weight };
    if (nodeZone !== '' && zone !== nodeZone && zones.has(nodeZone)) loc['priority'] = 1;
    return loc;
  });
  return { clusterName: svc.name, endpoints };
}
