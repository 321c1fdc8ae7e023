// The proxy's pure translation from Envoy v3 resources (as any control plane sends them: Bowline's,
// istiod, go-control-plane) into the engine's EngineSnapshot. Envoy's meaning is kept where the
// engine has the concept (Envoy's defaults included: a route timeout of 15 s, one retry, no outlier
// detection unless configured); Bowline's own settings in metadata["io.bowline"] take precedence, so
// that a mesh served by `bowline control` round-trips exactly. What the engine cannot do is either
// refused (validateX: the resource is NACKed with the field named) or, where skipping it keeps the
// rest correct, translated to the nearest behaviour with a warning. No I/O, no clock.

import {
  type BalancerKind,
  DEFAULT_BALANCER,
  DEFAULT_DETECT_TIMEOUT_MS,
  DEFAULT_FAILURE_ACCRUAL,
  DEFAULT_HTTP_SETTINGS,
  DEFAULT_POOL_SETTINGS,
  DEFAULT_QUEUE,
  DEFAULT_RETRY_POLICY,
  DEFAULT_FAILURE_PENALTY,
  DEFAULT_TIMEOUTS,
  DEFAULT_ZONE_LOCALITY,
  type EndpointSnapshot,
  type EngineSnapshot,
  type FailureAccrualSettings,
  type HeaderMatch,
  type ListenerProtocol,
  type ListenerSnapshot,
  type PathMatch,
  type McpSettings,
  type PolicySnapshot,
  type RetryCondition,
  type RetryPolicy,
  type RouteMatchSnapshot,
  type RouteSnapshot,
  type ServiceSnapshot,
  type UpstreamProtocol,
} from '../../engine/config/snapshot';
import { findSnapshotProblems } from '../../engine/config/validate-snapshot';
import { unpackAny } from '../common/protos';
import { bowlineMetadata, durationMs } from '../common/struct';
import { HTTP_PROTOCOL_OPTIONS } from '../common/type-urls';
import type * as E from './envoy-types';

export interface XdsResources {
  listeners: ReadonlyMap<string, E.Listener>;
  routes: ReadonlyMap<string, E.RouteConfiguration>;
  clusters: ReadonlyMap<string, E.Cluster>;
  endpoints: ReadonlyMap<string, E.ClusterLoadAssignment>;
}

export interface TranslateOptions {
  version: string;
  /** The node's zone (bootstrap node.locality.zone). */
  zone: string;
  /** Proceed with referenced resources that have not arrived (after the initial fetch timeout). */
  allowMissing: boolean;
}

export interface Translation {
  /** null while referenced resources are missing (and allowMissing is off). */
  snapshot: EngineSnapshot | null;
  /** Referenced but not (yet) received: "rds/NAME", "eds/NAME", "cds/NAME". */
  missing: string[];
  /** Behaviour that was approximated, one line each (logged once per version). */
  warnings: string[];
}

const HCM = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const TCP_PROXY = 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
/** Names Envoy knows HttpProtocolOptions by in typed_extension_protocol_options (the type name, the extension name). */
const HTTP_PROTOCOL_OPTIONS_KEYS = new Set([HTTP_PROTOCOL_OPTIONS, 'envoy.upstreams.http.http_protocol_options']);
const ENVOY_ROUTE_TIMEOUT_MS = 15_000;
const ENVOY_CONNECT_TIMEOUT_MS = 5_000;

// ------------------------------------------------------------------ validation (NACK reasons)

/** Problems that make a listener unusable (its response is NACKed); [] when fine. */
export function validateListener(l: E.Listener): string[] {
  const at = `listener "${l.name ?? ''}"`;
  if (l.name === undefined || l.name === '') return ['listener: name is empty'];
  if (l.api_listener !== undefined && l.api_listener !== null) return [];
  const sa = l.address?.socket_address;
  if (sa === undefined) return [`${at}: address.socket_address is required (pipes and internal listeners are not supported)`];
  if (sa.named_port !== undefined && sa.named_port !== '') return [`${at}: address.socket_address.named_port is not supported`];
  const problems: string[] = [];
  const policy = bowlineMetadata(l.metadata)['policy'];
  if (policy !== undefined) problems.push(...readPolicy(policy, `${at}: metadata io.bowline.policy`).problems);
  const mcp = bowlineMetadata(l.metadata)['mcp'];
  if (mcp !== undefined) problems.push(...readMcp(mcp, `${at}: metadata io.bowline.mcp`).problems);
  const chain = pickChain(l);
  if (chain === undefined) return problems;
  (chain.filters ?? []).forEach((f, i) => {
    const type = anyType(f.typed_config);
    if (type === HCM) {
      const hcm = decode<E.HttpConnectionManager>(f.typed_config, problems, `${at}: filters[${i}].typed_config`);
      if (hcm === null) return;
      if (hcm.scoped_routes !== undefined && hcm.scoped_routes !== null) problems.push(`${at}: filters[${i}] http_connection_manager.scoped_routes is not supported`);
      else if ((hcm.rds?.route_config_name ?? '') === '' && hcm.route_config === undefined) {
        problems.push(`${at}: filters[${i}] http_connection_manager needs rds.route_config_name or route_config`);
      }
      if (hcm.route_config !== undefined) problems.push(...validateRouteConfiguration(hcm.route_config, `${at}: filters[${i}].route_config`));
    } else if (type === TCP_PROXY) {
      const tp = decode<E.TcpProxy>(f.typed_config, problems, `${at}: filters[${i}].typed_config`);
      if (tp !== null && (tp.cluster ?? '') === '' && (tp.weighted_clusters?.clusters?.length ?? 0) === 0) problems.push(`${at}: filters[${i}] tcp_proxy needs cluster`);
    }
  });
  return problems;
}

/** Problems that make a route configuration unusable; [] when fine. */
export function validateRouteConfiguration(rc: E.RouteConfiguration, at = `route_configuration "${rc.name ?? ''}"`): string[] {
  const problems: string[] = [];
  (rc.virtual_hosts ?? []).forEach((vh, v) => {
    (vh.routes ?? []).forEach((r, i) => {
      const rat = `${at}: virtual_hosts[${vh.name ?? v}].routes[${r.name ?? i}]`;
      const m = r.match ?? {};
      if (m.path_match_policy !== undefined && m.path_match_policy !== null) problems.push(`${rat}.match.path_match_policy is not supported`);
      if ((m.query_parameters?.length ?? 0) > 0) problems.push(`${rat}.match.query_parameters is not supported`);
      if (m.case_sensitive?.value === false) problems.push(`${rat}.match.case_sensitive=false is not supported`);
      if (m.safe_regex !== undefined) checkRegex(m.safe_regex.regex ?? '', `${rat}.match.safe_regex`, problems);
      (m.headers ?? []).forEach((h, j) => {
        const hat = `${rat}.match.headers[${h.name ?? j}]`;
        if (h.invert_match === true) problems.push(`${hat}.invert_match is not supported`);
        if (h.string_match?.ignore_case === true) problems.push(`${hat}.string_match.ignore_case is not supported`);
        const re = h.safe_regex_match?.regex ?? h.string_match?.safe_regex?.regex;
        if (re !== undefined) checkRegex(re, `${hat}`, problems);
      });
      const a = r.route;
      if (a !== undefined && a !== null) {
        if ((a.cluster_header ?? '') !== '') problems.push(`${rat}.route.cluster_header is not supported`);
        if ((a.cluster_specifier_plugin ?? '') !== '') problems.push(`${rat}.route.cluster_specifier_plugin is not supported`);
        if ((a.cluster ?? '') === '' && (a.weighted_clusters?.clusters?.length ?? 0) === 0 && (a.cluster_header ?? '') === '') problems.push(`${rat}.route needs cluster or weighted_clusters`);
      } else if (r.redirect !== undefined && r.redirect !== null) {
        problems.push(`${rat}.redirect is not supported`);
      }
    });
  });
  return problems;
}

/** Problems that make a cluster unusable; [] when fine. */
export function validateCluster(c: E.Cluster): string[] {
  if (c.name === undefined || c.name === '') return ['cluster: name is empty'];
  const t = c.type ?? 'STATIC';
  if (!['EDS', 'STATIC', 'STRICT_DNS', 'LOGICAL_DNS', 'ORIGINAL_DST'].includes(t)) return [`cluster "${c.name}": type ${t} is not supported`];
  if (c.cluster_type !== undefined && c.cluster_type !== null) return [`cluster "${c.name}": cluster_type (custom cluster types) is not supported`];
  const problems: string[] = [];
  const hpo = httpProtocolOptions(c, problems);
  if (hpo !== undefined) {
    const at = `cluster "${c.name}": typed_extension_protocol_options[${JSON.stringify(hpo.key)}]`;
    const o = hpo.options;
    // HTTP/3 has to be spoken: nothing nearer would reach an upstream that listens on QUIC only.
    if (o.explicit_http_config?.http3_protocol_options != null) problems.push(`${at}.explicit_http_config.http3_protocol_options is not supported (HTTP/3 upstreams)`);
    else if (o.explicit_http_config != null && o.explicit_http_config.http_protocol_options == null && o.explicit_http_config.http2_protocol_options == null) {
      problems.push(`${at}.explicit_http_config needs http_protocol_options or http2_protocol_options`);
    }
    if (o.explicit_http_config == null && o.use_downstream_protocol_config == null && o.auto_config == null) {
      problems.push(`${at} needs explicit_http_config, use_downstream_protocol_config or auto_config`);
    }
  }
  return problems;
}

/** Problems that make a load assignment unusable; [] when fine. */
export function validateLoadAssignment(cla: E.ClusterLoadAssignment): string[] {
  const problems: string[] = [];
  (cla.endpoints ?? []).forEach((loc, i) =>
    (loc.lb_endpoints ?? []).forEach((e, j) => {
      const sa = e.endpoint?.address?.socket_address;
      if (sa === undefined || (sa.address ?? '') === '' || !(Number(sa.port_value) > 0)) {
        problems.push(`cluster_load_assignment "${cla.cluster_name ?? ''}": endpoints[${i}].lb_endpoints[${j}].endpoint.address needs socket_address with address and port_value`);
      }
    }),
  );
  return problems;
}

function checkRegex(re: string, at: string, problems: string[]): void {
  try {
    new RegExp(re);
  } catch (e) {
    problems.push(`${at}: ${(e as Error).message}`);
  }
}

// ------------------------------------------------------------------ translation

export function translateXds(res: XdsResources, o: TranslateOptions): Translation {
  const warnings: string[] = [];
  const missing = new Set<string>();
  const services = new Map<string, ServiceSnapshot>();
  const routes: RouteSnapshot[] = [];
  const routeNamesOf = new Map<string, string[]>();
  const listeners: ListenerSnapshot[] = [];
  /** Route name -> its JSON: a route that two route configurations share is one route. */
  const usedRouteNames = new Map<string, string>();

  const service = (name: string, from: string): void => {
    if (services.has(name)) return;
    const c = res.clusters.get(name);
    if (c === undefined) {
      missing.add(`cds/${name}`);
      services.set(name, emptyService(name));
      warnings.push(`${from} names cluster "${name}", which has not arrived: it has no endpoints (503)`);
      return;
    }
    services.set(name, translateCluster(c, res, missing, warnings));
  };

  const routeConfig = (rc: E.RouteConfiguration, key: string): string[] => {
    let names = routeNamesOf.get(key);
    if (names !== undefined) return names;
    names = [];
    routeNamesOf.set(key, names);
    for (const r of translateRouteConfiguration(rc, warnings)) {
      const json = JSON.stringify({ ...r, name: '' });
      let name = r.name;
      for (let k = 2; usedRouteNames.has(name) && usedRouteNames.get(name) !== json; k++) name = `${r.name}#${k}`;
      names.push(name);
      if (usedRouteNames.has(name)) continue;
      usedRouteNames.set(name, json);
      routes.push({ ...r, name });
      for (const b of r.backends) service(b.service, `route "${name}"`);
    }
    return names;
  };

  /** The mesh's authorization policy (Bowline's control plane puts it on inbound listeners). */
  let policy: PolicySnapshot | undefined;
  /** MCP inspection settings (on every listener of Bowline's control plane). */
  let mcp: McpSettings | undefined;
  for (const l of res.listeners.values()) {
    const sa = l.address?.socket_address;
    if (sa === undefined || l.api_listener !== undefined) continue; // gRPC api_listeners are not for a proxy
    const name = l.name ?? '';
    const meta = bowlineMetadata(l.metadata);
    const chain = pickChain(l);
    const snap: ListenerSnapshot = {
      name,
      address: { host: sa.address ?? '0.0.0.0', port: Number(sa.port_value ?? 0) },
      direction: l.traffic_direction === 'INBOUND' ? 'inbound' : 'outbound',
      protocol: (meta['protocol'] as ListenerProtocol | undefined) ?? 'detect',
      routes: [],
      detectTimeoutMs: (meta['detectTimeoutMs'] as number | undefined) ?? DEFAULT_DETECT_TIMEOUT_MS,
    };
    if (typeof meta['defaultService'] === 'string') snap.defaultService = meta['defaultService'];
    if (meta['mcpTraffic'] === true) snap.mcp = true;
    if (snap.direction === 'inbound' && meta['policy'] !== undefined && policy === undefined) policy = readPolicy(meta['policy'], name).policy;
    if (meta['mcp'] !== undefined && mcp === undefined) mcp = readMcp(meta['mcp'], name).mcp;
    // Connections redirected here go where they were going (their SO_ORIGINAL_DST), within this
    // listener: Envoy hands them to a per-port listener instead (those are not bound, below).
    if (l.use_original_dst?.value === true) snap.originalDst = true;
    if ((l.filter_chains?.length ?? 0) > 1) warnings.push(`listener "${name}": ${l.filter_chains!.length} filter chains; only the first without a filter_chain_match (or the default chain) is used`);
    for (const f of chain?.filters ?? []) {
      const type = anyType(f.typed_config);
      if (type === HCM) {
        const hcm = unpackAny(f.typed_config!).message as E.HttpConnectionManager;
        if (hcm.route_config !== undefined) snap.routes = routeConfig(hcm.route_config, `inline/${name}`);
        else {
          const rdsName = hcm.rds?.route_config_name ?? '';
          const rc = res.routes.get(rdsName);
          if (rc === undefined) missing.add(`rds/${rdsName}`);
          else snap.routes = routeConfig(rc, rdsName);
        }
        if (snap.protocol === 'opaque') snap.protocol = 'detect';
      } else if (type === TCP_PROXY) {
        const tp = unpackAny(f.typed_config!).message as E.TcpProxy;
        const cluster = tp.cluster ?? tp.weighted_clusters?.clusters?.[0]?.name ?? '';
        if ((tp.weighted_clusters?.clusters?.length ?? 0) > 1) warnings.push(`listener "${name}": tcp_proxy weighted_clusters: only the first cluster is used`);
        snap.protocol = 'opaque';
        snap.defaultService = cluster;
      } else if (type !== '') {
        warnings.push(`listener "${name}": network filter ${f.name ?? type} is not supported and is skipped`);
      }
    }
    if (snap.defaultService !== undefined) service(snap.defaultService, `listener "${name}"`);
    if (l.bind_to_port !== undefined && l.bind_to_port !== null && l.bind_to_port.value !== true) {
      // Reached only through an original-destination hand-off (Istio's per-port outbound
      // listeners): its routes and clusters are kept, the listener itself is not bound.
      warnings.push(`listener "${name}": bind_to_port false (served by original-destination hand-off, not supported yet); not bound`);
      continue;
    }
    if (snap.protocol === 'opaque' && snap.defaultService === undefined) {
      warnings.push(`listener "${name}": no filter Bowline can run; it is left out`);
      continue;
    }
    listeners.push(snap);
  }

  // Clusters nobody routes to yet are still known (a later route may name them; EDS keeps them warm).
  for (const c of res.clusters.values()) if (c.name !== undefined && !services.has(c.name)) services.set(c.name, translateCluster(c, res, missing, warnings));

  const missingList = [...missing].sort();
  const complete = missingList.length === 0;
  if (!complete && !o.allowMissing) return { snapshot: null, missing: missingList, warnings };
  // Route names of listeners that still wait for their RDS stay empty: those listeners answer 404.
  return {
    snapshot: {
      version: o.version,
      zone: o.zone,
      listeners,
      services: [...services.values()],
      routes,
      http: { ...DEFAULT_HTTP_SETTINGS },
      opaquePorts: [],
      ...(policy === undefined ? {} : { policy }),
      ...(mcp === undefined ? {} : { mcp }),
    },
    missing: missingList,
    warnings,
  };
}

/**
 * The chain a listener serves, since Bowline does not dispatch on filter_chain_match yet: a chain
 * without a match; else one that matches only on protocol hints (application_protocols,
 * transport_protocol: what detection decides anyway), preferring HTTP; else the default chain; else
 * the first.
 */
function pickChain(l: E.Listener): E.FilterChain | undefined {
  const chains = l.filter_chains ?? [];
  const keys = (c: E.FilterChain): string[] => Object.keys(c.filter_chain_match ?? {});
  const isHttp = (c: E.FilterChain): boolean => (c.filters ?? []).some((f) => anyType(f.typed_config) === HCM);
  const unmatched = chains.find((c) => keys(c).length === 0);
  if (unmatched !== undefined) return unmatched;
  const hinted = chains.filter((c) => keys(c).every((k) => k === 'application_protocols' || k === 'transport_protocol'));
  return hinted.find(isHttp) ?? hinted[0] ?? l.default_filter_chain ?? chains[0];
}

function anyType(a: E.Any | undefined): string {
  const url = a?.type_url ?? '';
  return url.slice(url.lastIndexOf('/') + 1);
}

function decode<T>(a: E.Any | undefined, problems: string[], at: string): T | null {
  try {
    return unpackAny(a ?? {}).message as T;
  } catch (e) {
    problems.push(`${at}: ${(e as Error).message}`);
    return null;
  }
}

// ------------------------------------------------------------------ routes

function translateRouteConfiguration(rc: E.RouteConfiguration, warnings: string[]): RouteSnapshot[] {
  const out: RouteSnapshot[] = [];
  for (const vh of rc.virtual_hosts ?? []) {
    const hostnames = translateDomains(vh.domains ?? [], `route_configuration "${rc.name ?? ''}" virtual host "${vh.name ?? ''}"`, warnings);
    let prev: RouteSnapshot | null = null;
    let prevKey = '';
    (vh.routes ?? []).forEach((r, i) => {
      const name = r.name !== undefined && r.name !== '' ? r.name : `${vh.name ?? rc.name ?? 'route'}/${i}`;
      const match = translateMatch(r.match ?? {});
      const built = translateRoute(r, vh, name, hostnames, warnings);
      if (built === null) return;
      // Consecutive Envoy routes with one name and one action are one route with several matches
      // (how `bowline control` writes a route with several matches).
      const key = JSON.stringify([name, built.backends, built.requestTimeoutMs, built.retry ?? null]);
      if (prev !== null && key === prevKey) {
        prev.matches.push(match);
        return;
      }
      built.matches = [match];
      out.push(built);
      prev = built;
      prevKey = key;
    });
  }
  return out;
}

function translateDomains(domains: string[], at: string, warnings: string[]): string[] {
  if (domains.includes('*')) return [];
  const out = new Set<string>();
  for (const d of domains) {
    let h = d.toLowerCase();
    if (h.startsWith('[')) {
      warnings.push(`${at}: domain ${d}: IPv6 literals are not matched as host names`);
      continue;
    }
    h = h.replace(/:(\d+|\*)$/, '');
    if (h.includes('*') && !h.startsWith('*.')) {
      warnings.push(`${at}: domain ${d}: only "*." wildcards are supported`);
      continue;
    }
    out.add(h);
  }
  return [...out];
}

function translateMatch(m: E.RouteMatch): RouteMatchSnapshot {
  const out: RouteMatchSnapshot = { headers: [] };
  let path: PathMatch | undefined;
  if (m.path !== undefined) path = { kind: 'exact', value: m.path };
  else if (m.path_separated_prefix !== undefined) path = { kind: 'prefix', value: m.path_separated_prefix };
  else if (m.safe_regex !== undefined) path = { kind: 'regex', value: m.safe_regex.regex ?? '' };
  else if (m.prefix !== undefined && m.prefix !== '' && m.prefix !== '/') path = { kind: 'string-prefix', value: m.prefix };
  if (path !== undefined) out.path = path;
  for (const h of m.headers ?? []) {
    const name = (h.name ?? '').toLowerCase();
    const hm = headerMatch(name, h);
    if (name === ':method' && hm.kind === 'exact') out.method = hm.value.toUpperCase();
    else if (!name.startsWith(':')) out.headers.push(hm);
  }
  if (m.grpc !== undefined && m.grpc !== null) out.headers.push({ name: 'content-type', kind: 'regex', value: 'application/grpc.*' });
  return out;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function headerMatch(name: string, h: E.HeaderMatcher): HeaderMatch {
  const sm = h.string_match;
  if (h.present_match === true) return { name, kind: 'present', value: '' };
  if (h.exact_match !== undefined) return { name, kind: 'exact', value: h.exact_match };
  if (h.safe_regex_match !== undefined) return { name, kind: 'regex', value: h.safe_regex_match.regex ?? '' };
  if (h.prefix_match !== undefined) return { name, kind: 'regex', value: `${escapeRe(h.prefix_match)}.*` };
  if (h.suffix_match !== undefined) return { name, kind: 'regex', value: `.*${escapeRe(h.suffix_match)}` };
  if (sm !== undefined) {
    if (sm.exact !== undefined) return { name, kind: 'exact', value: sm.exact };
    if (sm.safe_regex !== undefined) return { name, kind: 'regex', value: sm.safe_regex.regex ?? '' };
    if (sm.prefix !== undefined) return { name, kind: 'regex', value: `${escapeRe(sm.prefix)}.*` };
    if (sm.suffix !== undefined) return { name, kind: 'regex', value: `.*${escapeRe(sm.suffix)}` };
    if (sm.contains !== undefined) return { name, kind: 'regex', value: `.*${escapeRe(sm.contains)}.*` };
  }
  return { name, kind: 'present', value: '' };
}

function translateRoute(r: E.Route, vh: E.VirtualHost, name: string, hostnames: string[], warnings: string[]): RouteSnapshot | null {
  const meta = bowlineMetadata(r.metadata);
  // `bowline control` writes a listener's default service as a last route; the listener says it too.
  if (meta['listenerDefault'] === true) return null;
  const a = r.route;
  let backends: { service: string; weight: number }[];
  if (a !== undefined && a !== null) {
    const wc = a.weighted_clusters?.clusters;
    backends = wc !== undefined && wc.length > 0 ? wc.map((c) => ({ service: c.name ?? '', weight: c.weight?.value ?? 0 })) : [{ service: a.cluster ?? '', weight: 1 }];
  } else if (r.direct_response !== undefined && r.direct_response !== null) {
    // Bowline answers no direct responses yet: such a route goes to a service with no endpoints (503).
    const status = r.direct_response.status ?? 0;
    warnings.push(`route "${name}": direct_response ${status} is answered with 503 (no endpoints)`);
    backends = [{ service: `direct-response-${status}`, weight: 1 }];
  } else {
    warnings.push(`route "${name}": no route action Bowline can run; skipped`);
    return null;
  }
  const out: RouteSnapshot = {
    name,
    hostnames,
    matches: [],
    backends,
    requestTimeoutMs: typeof meta['requestTimeoutMs'] === 'number' ? meta['requestTimeoutMs'] : durationMs(a?.timeout) ?? ENVOY_ROUTE_TIMEOUT_MS,
  };
  if (meta['mcp'] === true) out.mcp = true;
  const idle = typeof meta['idleTimeoutMs'] === 'number' ? meta['idleTimeoutMs'] : durationMs(a?.idle_timeout);
  if (idle !== undefined) out.idleTimeoutMs = idle;
  if (meta['retry'] !== undefined) {
    out.retry = meta['retry'] as RetryPolicy;
    if (typeof meta['responseTimeoutMs'] === 'number') out.responseTimeoutMs = meta['responseTimeoutMs'];
  } else {
    if (typeof meta['responseTimeoutMs'] === 'number') out.responseTimeoutMs = meta['responseTimeoutMs'];
    const rp = a?.retry_policy ?? vh.retry_policy;
    if (rp !== undefined && rp !== null) {
      out.retry = translateRetry(rp, name, warnings);
      const perTry = durationMs(rp.per_try_timeout);
      if (perTry !== undefined && perTry > 0) out.responseTimeoutMs = perTry;
    }
  }
  return out;
}

const RETRY_ON: Record<string, RetryCondition> = {
  '5xx': '5xx',
  'gateway-error': 'gateway-error',
  'connect-failure': 'connect-failure',
  reset: 'reset',
  'refused-stream': 'reset',
  'reset-before-request': 'reset',
  'retriable-status-codes': 'retriable-status-codes',
  // gRPC conditions: a grpc-status in the response headers (Envoy's x-envoy-retry-grpc-on names).
  cancelled: 'cancelled',
  'deadline-exceeded': 'deadline-exceeded',
  internal: 'internal',
  'resource-exhausted': 'resource-exhausted',
  unavailable: 'unavailable',
};

function translateRetry(rp: E.RetryPolicy, route: string, warnings: string[]): RetryPolicy {
  const on = new Set<RetryCondition>();
  const ignored: string[] = [];
  for (const c of (rp.retry_on ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const mapped = RETRY_ON[c];
    if (mapped !== undefined) on.add(mapped);
    else ignored.push(c);
  }
  if (ignored.length > 0) warnings.push(`route "${route}": retry_on ${ignored.join(',')} not supported`);
  const base = durationMs(rp.retry_back_off?.base_interval) ?? 25;
  return {
    on: [...on],
    statusCodes: (rp.retriable_status_codes ?? []).map(Number),
    maxRetries: rp.num_retries?.value ?? 1,
    backoffBaseMs: base,
    backoffMaxMs: durationMs(rp.retry_back_off?.max_interval) ?? base * 10,
    maxBodyBytes: DEFAULT_RETRY_POLICY.maxBodyBytes,
    // Envoy retries any method; so does a route translated from Envoy's configuration.
    nonIdempotent: true,
    budget: { ...DEFAULT_RETRY_POLICY.budget },
  };
}

// ------------------------------------------------------------------ clusters and endpoints

function emptyService(name: string): ServiceSnapshot {
  return { name, endpoints: [], pool: { ...DEFAULT_POOL_SETTINGS }, connectTimeoutMs: ENVOY_CONNECT_TIMEOUT_MS };
}

function translateCluster(c: E.Cluster, res: XdsResources, missing: Set<string>, warnings: string[]): ServiceSnapshot {
  const name = c.name ?? '';
  const meta = bowlineMetadata(c.metadata);
  const svc = emptyService(name);
  svc.connectTimeoutMs = durationMs(c.connect_timeout) ?? ENVOY_CONNECT_TIMEOUT_MS;
  // From Envoy's fields for every cluster, Bowline's included: they carry the whole meaning.
  svc.protocol = envoyProtocol(c, warnings);
  if (meta['v'] !== undefined) {
    // Written by `bowline control`: its settings where given, Bowline's defaults for the rest.
    svc.balancer = (meta['balancer'] as BalancerKind | undefined) ?? DEFAULT_BALANCER;
    svc.zoneLocality = (meta['zoneLocality'] as ServiceSnapshot['zoneLocality']) ?? { ...DEFAULT_ZONE_LOCALITY };
    svc.failureAccrual = (meta['failureAccrual'] as FailureAccrualSettings | undefined) ?? { ...DEFAULT_FAILURE_ACCRUAL };
    svc.failurePenalty = (meta['failurePenalty'] as ServiceSnapshot['failurePenalty']) ?? { ...DEFAULT_FAILURE_PENALTY, statuses: [...DEFAULT_FAILURE_PENALTY.statuses] };
    svc.queue = (meta['queue'] as ServiceSnapshot['queue']) ?? { ...DEFAULT_QUEUE };
    svc.retry = (meta['retry'] as RetryPolicy | undefined) ?? { ...DEFAULT_RETRY_POLICY, on: [...DEFAULT_RETRY_POLICY.on], statusCodes: [], budget: { ...DEFAULT_RETRY_POLICY.budget } };
    svc.timeouts = (meta['timeouts'] as ServiceSnapshot['timeouts']) ?? { ...DEFAULT_TIMEOUTS };
    svc.pool = (meta['pool'] as ServiceSnapshot['pool']) ?? { ...DEFAULT_POOL_SETTINGS };
    attachEndpoints(svc, c, res, missing, warnings);
    return svc;
  }
  svc.balancer = envoyBalancer(c, warnings);
  const cb = c.circuit_breakers?.thresholds?.find((t) => (t.priority ?? 'DEFAULT') === 'DEFAULT');
  svc.queue = {
    maxInFlight: cb?.max_requests?.value ?? DEFAULT_QUEUE.maxInFlight,
    capacity: cb?.max_pending_requests?.value ?? DEFAULT_QUEUE.capacity,
    failFastMs: DEFAULT_QUEUE.failFastMs,
  };
  svc.failureAccrual = envoyOutlierDetection(c);
  attachEndpoints(svc, c, res, missing, warnings);
  return svc;
}

function attachEndpoints(svc: ServiceSnapshot, c: E.Cluster, res: XdsResources, missing: Set<string>, warnings: string[]): void {
  const name = svc.name;
  const type = c.type ?? 'STATIC';
  let cla: E.ClusterLoadAssignment | undefined;
  if (type === 'EDS') {
    const edsName = c.eds_cluster_config?.service_name || name;
    cla = res.endpoints.get(edsName);
    if (cla === undefined) missing.add(`eds/${edsName}`);
  } else if (type === 'ORIGINAL_DST') {
    warnings.push(`cluster "${name}": ORIGINAL_DST is not supported yet; it has no endpoints (503)`);
  } else {
    cla = c.load_assignment;
  }
  if (cla !== undefined) svc.endpoints = translateEndpoints(cla);
}

/**
 * The cluster's HttpProtocolOptions (an Any in typed_extension_protocol_options, found by its type as
 * Envoy does), decoded; undefined when it has none. A bad one is added to `problems` (validateCluster).
 */
function httpProtocolOptions(c: E.Cluster, problems: string[] = []): { key: string; options: E.HttpProtocolOptions } | undefined {
  for (const [key, any] of Object.entries(c.typed_extension_protocol_options ?? {})) {
    const type = anyType(any);
    if (type !== HTTP_PROTOCOL_OPTIONS && !HTTP_PROTOCOL_OPTIONS_KEYS.has(key)) continue; // another extension's options (TCP, thrift ...)
    const at = `cluster "${c.name ?? ''}": typed_extension_protocol_options[${JSON.stringify(key)}]`;
    if (type !== HTTP_PROTOCOL_OPTIONS) {
      problems.push(`${at}: must hold ${HTTP_PROTOCOL_OPTIONS}, got ${type === '' ? 'no type_url' : type}`);
      return undefined;
    }
    const options = decode<E.HttpProtocolOptions>(any, problems, at);
    return options === null ? undefined : { key, options };
  }
  return undefined;
}

/**
 * The HTTP version requests go upstream in, with Envoy's meaning: HttpProtocolOptions' explicit
 * HTTP/1.1 or HTTP/2 ('h2c': prior knowledge, no TLS ALPN), or the downstream's version ('auto');
 * without it the deprecated Cluster fields (http2_protocol_options, protocol_selection); with
 * neither, HTTP/1.1, Envoy's default.
 */
function envoyProtocol(c: E.Cluster, warnings: string[]): UpstreamProtocol {
  const name = c.name ?? '';
  const hpo = httpProtocolOptions(c);
  if (hpo !== undefined) {
    const o = hpo.options;
    const ignored = (['common_http_protocol_options', 'upstream_http_protocol_options', 'header_validation_config'] as const).filter((k) => o[k] != null);
    if (ignored.length > 0) warnings.push(`cluster "${name}": HttpProtocolOptions ${ignored.join(', ')} ignored`);
    if ((o.http_filters?.length ?? 0) > 0) warnings.push(`cluster "${name}": upstream HTTP filters ${o.http_filters!.map((f) => f.name ?? '?').join(', ')} are not supported and are skipped`);
    if (o.explicit_http_config != null) return o.explicit_http_config.http2_protocol_options != null ? 'h2c' : 'http1';
    if (o.use_downstream_protocol_config != null) return 'auto';
    if (o.auto_config != null) {
      warnings.push(`cluster "${name}": HttpProtocolOptions auto_config (ALPN) is not supported; requests go upstream in the version the client spoke`);
      return 'auto';
    }
  }
  if (c.protocol_selection === 'USE_DOWNSTREAM_PROTOCOL') return 'auto';
  return c.http2_protocol_options != null ? 'h2c' : 'http1';
}

function envoyBalancer(c: E.Cluster, warnings: string[]): BalancerKind {
  for (const p of c.load_balancing_policy?.policies ?? []) {
    const t = anyType(p.typed_extension_config?.typed_config);
    if (t.endsWith('.LeastRequest')) return 'least-request';
    if (t.endsWith('.RoundRobin')) return 'round-robin';
  }
  switch (c.lb_policy ?? 'ROUND_ROBIN') {
    case 'ROUND_ROBIN':
      return 'round-robin';
    case 'LEAST_REQUEST':
      return 'least-request';
    default:
      warnings.push(`cluster "${c.name ?? ''}": lb_policy ${c.lb_policy} is not supported; P2C over peak-EWMA is used`);
      return DEFAULT_BALANCER;
  }
}

/** Envoy ejects only with outlier_detection; its defaults: 5 in a row, 30 s base, 300 s max, 10%. */
function envoyOutlierDetection(c: E.Cluster): FailureAccrualSettings {
  const od = c.outlier_detection;
  if (od === undefined || od === null) return { ...DEFAULT_FAILURE_ACCRUAL, mode: 'off' };
  const consecutiveEnforced = (od.enforcing_consecutive_5xx?.value ?? 100) > 0;
  const percentEnforced = (od.enforcing_failure_percentage?.value ?? 0) > 0;
  return {
    ...DEFAULT_FAILURE_ACCRUAL,
    mode: consecutiveEnforced ? 'consecutive' : percentEnforced ? 'success-rate' : 'off',
    consecutiveFailures: od.consecutive_5xx?.value ?? 5,
    minBackoffMs: durationMs(od.base_ejection_time) ?? 30_000,
    maxBackoffMs: Math.max(durationMs(od.max_ejection_time) ?? 300_000, durationMs(od.base_ejection_time) ?? 30_000),
    maxEjectionPercent: od.max_ejection_percent?.value ?? 10,
    successRateThreshold: 1 - (od.failure_percentage_threshold?.value ?? 85) / 100,
    successRateMinRequests: od.failure_percentage_request_volume?.value ?? 50,
  };
}

function translateEndpoints(cla: E.ClusterLoadAssignment): EndpointSnapshot[] {
  const out: EndpointSnapshot[] = [];
  const seen = new Set<string>();
  for (const loc of cla.endpoints ?? []) {
    const zone = loc.locality?.zone ?? '';
    for (const e of loc.lb_endpoints ?? []) {
      const hs = e.health_status ?? 'UNKNOWN';
      if (hs === 'UNHEALTHY' || hs === 'DRAINING' || hs === 'TIMEOUT') continue;
      const sa = e.endpoint?.address?.socket_address;
      if (sa === undefined) continue;
      const key = `${sa.address}:${sa.port_value}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const ep: EndpointSnapshot = { address: { host: sa.address ?? '', port: Number(sa.port_value ?? 0) }, zone, weight: e.load_balancing_weight?.value ?? 1 };
      const id = bowlineMetadata(e.metadata)['identity'];
      if (typeof id === 'string') ep.identity = id;
      out.push(ep);
    }
  }
  return out;
}

/** MCP settings in a listener's io.bowline metadata, checked field by field. */
export function readMcp(v: unknown, at: string): { mcp?: McpSettings; problems: string[] } {
  const problems: string[] = [];
  const isStrings = (x: unknown): x is string[] => Array.isArray(x) && x.every((e) => typeof e === 'string');
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { problems: [`${at}: must be a struct`] };
  const o = v as Record<string, unknown>;
  for (const k of ['inspectAll', 'audit']) if (typeof o[k] !== 'boolean') problems.push(`${at}.${k}: must be a boolean`);
  for (const k of ['maxBodyBytes', 'maxNames']) if (typeof o[k] !== 'number' || !((o[k] as number) >= 1)) problems.push(`${at}.${k}: must be a number >= 1`);
  if (o['oversizedBody'] !== 'reject' && o['oversizedBody'] !== 'pass') problems.push(`${at}.oversizedBody: must be reject or pass`);
  const policies = Array.isArray(o['policies']) ? (o['policies'] as Record<string, unknown>[]) : null;
  if (policies === null) problems.push(`${at}.policies: must be a list`);
  policies?.forEach((p, i) => {
    const t = p?.['target'] as Record<string, unknown> | undefined;
    if (typeof p?.['name'] !== 'string' || (t?.['kind'] !== 'server' && t?.['kind'] !== 'route') || typeof t?.['name'] !== 'string') problems.push(`${at}.policies[${i}]: needs a name and a target { kind: server|route, name }`);
    const rules = Array.isArray(p?.['rules']) ? (p['rules'] as Record<string, unknown>[]) : null;
    if (rules === null) problems.push(`${at}.policies[${i}].rules: must be a list`);
    rules?.forEach((r, j) => {
      const rat = `${at}.policies[${i}].rules[${j}]`;
      if (typeof r?.['name'] !== 'string') problems.push(`${rat}.name: must be a string`);
      for (const k of ['tools', 'resources', 'prompts']) if (!isStrings(r?.[k])) problems.push(`${rat}.${k}: must be a list of strings`);
      if (r?.['identities'] !== undefined && !isStrings(r['identities'])) problems.push(`${rat}.identities: must be a list of SPIFFE ID patterns`);
      const nets = r?.['networks'];
      if (nets !== undefined && !(Array.isArray(nets) && nets.every((n: Record<string, unknown>) => typeof n?.['cidr'] === 'string' && isStrings(n['except'])))) problems.push(`${rat}.networks: must be a list of { cidr, except }`);
    });
  });
  if (problems.length > 0) return { problems };
  const mcp = v as McpSettings;
  for (const p of findSnapshotProblems({ version: '', zone: '', listeners: [], services: [], routes: [], http: { ...DEFAULT_HTTP_SETTINGS }, opaquePorts: [], mcp })) {
    if (p.path[0] === 'mcp' && !p.reason.startsWith('no ')) problems.push(`${at}.${p.path.slice(1).join('.')}: ${p.reason}`);
  }
  return problems.length > 0 ? { problems } : { mcp, problems };
}

const DEFAULT_POLICIES = ['all-unauthenticated', 'all-authenticated', 'cluster-authenticated', 'deny'];

/** The authorization policy in a listener's io.bowline metadata, checked field by field. */
export function readPolicy(v: unknown, at: string): { policy?: PolicySnapshot; problems: string[] } {
  const problems: string[] = [];
  const isStrings = (x: unknown): x is string[] => Array.isArray(x) && x.every((e) => typeof e === 'string');
  const o = (v ?? {}) as Record<string, unknown>;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { problems: [`${at}: must be a struct`] };
  if (!DEFAULT_POLICIES.includes(o['defaultPolicy'] as string)) problems.push(`${at}.defaultPolicy: must be one of ${DEFAULT_POLICIES.join(', ')}`);
  if (!isStrings(o['clusterNetworks'])) problems.push(`${at}.clusterNetworks: must be a list of CIDRs`);
  if (typeof o['audit'] !== 'boolean') problems.push(`${at}.audit: must be a boolean`);
  const servers = Array.isArray(o['servers']) ? (o['servers'] as Record<string, unknown>[]) : null;
  if (servers === null) problems.push(`${at}.servers: must be a list`);
  servers?.forEach((srv, i) => {
    if (typeof srv?.['name'] !== 'string' || (typeof srv['port'] !== 'number') === (typeof srv['listener'] !== 'string')) problems.push(`${at}.servers[${i}]: needs a name and a port or a listener`);
  });
  const authz = Array.isArray(o['authorizations']) ? (o['authorizations'] as Record<string, unknown>[]) : null;
  if (authz === null) problems.push(`${at}.authorizations: must be a list`);
  authz?.forEach((a, i) => {
    const t = a?.['target'] as Record<string, unknown> | undefined;
    if (typeof a?.['name'] !== 'string' || (t?.['kind'] !== 'server' && t?.['kind'] !== 'route') || typeof t?.['name'] !== 'string') problems.push(`${at}.authorizations[${i}]: needs a name and a target { kind: server|route, name }`);
    if (a?.['identities'] !== undefined && !isStrings(a['identities'])) problems.push(`${at}.authorizations[${i}].identities: must be a list of SPIFFE ID patterns`);
    const nets = a?.['networks'];
    if (nets !== undefined && !(Array.isArray(nets) && nets.every((n: Record<string, unknown>) => typeof n?.['cidr'] === 'string' && isStrings(n['except'])))) problems.push(`${at}.authorizations[${i}].networks: must be a list of { cidr, except }`);
  });
  if (problems.length > 0) return { problems };
  const policy = v as PolicySnapshot;
  // The same checks as a policy from a file (CIDRs, identity patterns); references are checked against the whole config later.
  for (const p of findSnapshotProblems({ version: '', zone: '', listeners: [], services: [], routes: [], http: { ...DEFAULT_HTTP_SETTINGS }, opaquePorts: [], policy })) {
    if (p.path[0] === 'policy' && !p.reason.startsWith('no ')) problems.push(`${at}.${p.path.slice(1).join('.')}: ${p.reason}`);
  }
  return problems.length > 0 ? { problems } : { policy, problems };
}
