// Checks an EngineSnapshot for problems that types cannot express (dangling references, duplicate
// names, clashing listener addresses, out-of-range numbers) before any worker compiles it.
// Pure: no I/O, no clock; safe to call on any thread and from any config source.

import { isIP } from 'node:net';
import { type EngineSnapshot, GRPC_RETRY_CODES, type ListenerSnapshot, type RetryPolicy, type RouteSnapshot, type ServiceSnapshot, type SocketAddress } from './snapshot';

/** One step of a path into the snapshot: an object key or an array index. */
export type PathSegment = string | number;

export interface SnapshotProblem {
  /** Where the problem is, e.g. ['routes', 2, 'backends', 0, 'service']. */
  path: PathSegment[];
  /** What is wrong, without the path. */
  reason: string;
}

/** Human-readable problems, each `path: reason`; empty when the snapshot is usable. */
export function validateSnapshot(s: EngineSnapshot): string[] {
  return findSnapshotProblems(s).map(formatProblem);
}

export function formatProblem(p: SnapshotProblem): string {
  const path = formatPath(p.path);
  return path === '' ? p.reason : `${path}: ${p.reason}`;
}

/** ['routes', 2, 'backends', 0, 'service'] -> 'routes[2].backends[0].service'. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** The same checks as validateSnapshot, with paths kept structured so a source can map them to its own fields. */
export function findSnapshotProblems(s: EngineSnapshot): SnapshotProblem[] {
  const problems: SnapshotProblem[] = [];
  const report = (path: PathSegment[], reason: string): void => {
    problems.push({ path, reason });
  };

  if (typeof s.version !== 'string' || s.version === '') report(['version'], 'must not be empty');
  checkHttp(s, report);
  if (s.zoneTransferUsdPerGb !== undefined && !(Number.isFinite(s.zoneTransferUsdPerGb) && s.zoneTransferUsdPerGb >= 0)) {
    report(['zoneTransferUsdPerGb'], `must be a number >= 0, got ${s.zoneTransferUsdPerGb}`);
  }
  s.opaquePorts.forEach((port, i) => checkPort(['opaquePorts', i], port, 1, report));

  const serviceNames = checkUniqueNames('service', 'services', s.services, report);
  const routeNames = checkUniqueNames('route', 'routes', s.routes, report);
  checkUniqueNames('listener', 'listeners', s.listeners, report);

  s.services.forEach((svc, i) => checkService(svc, ['services', i], report));
  s.routes.forEach((route, i) => checkRoute(route, ['routes', i], serviceNames, report));

  if (s.policy !== undefined) checkPolicy(s, report);
  if (s.mcp !== undefined) checkMcp(s, report);
  const opaquePorts = new Set(s.opaquePorts);
  const bound: { listener: ListenerSnapshot; host: string }[] = [];
  s.listeners.forEach((l, i) => {
    const at: PathSegment[] = ['listeners', i];
    checkListener(l, at, opaquePorts, routeNames, serviceNames, report);
    if (!Number.isInteger(l.address.port) || l.address.port === 0) return; // port 0 picks a free port: never clashes
    const host = normalizeHost(l.address.host);
    const clash = bound.find((b) => b.listener.address.port === l.address.port && hostsOverlap(b.host, host));
    if (clash !== undefined) {
      report([...at, 'address'], `${formatAddress(l.address)} overlaps listener "${clash.listener.name}" (${formatAddress(clash.listener.address)})`);
    }
    bound.push({ listener: l, host });
  });
  return problems;
}

type Report = (path: PathSegment[], reason: string) => void;

const DIRECTIONS = new Set(['inbound', 'outbound']);
const PROTOCOLS = new Set(['detect', 'http1', 'opaque']);
const HEADER_KINDS = new Set(['exact', 'regex', 'present']);
// RFC 9110 token characters: header names and methods.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HOSTNAME = /^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;

function checkUniqueNames(kind: string, field: string, items: readonly { name: string }[], report: Report): Set<string> {
  const seen = new Set<string>();
  items.forEach((item, i) => {
    if (typeof item.name !== 'string' || item.name === '') {
      report([field, i, 'name'], 'must not be empty');
    } else if (seen.has(item.name)) {
      report([field, i, 'name'], `duplicate ${kind} name "${item.name}"`);
    }
    seen.add(item.name);
  });
  return seen;
}

function checkHttp(s: EngineSnapshot, report: Report): void {
  const h = s.http;
  if (!Number.isInteger(h.maxHeadBytes) || h.maxHeadBytes < 1) report(['http', 'maxHeadBytes'], `must be a positive integer, got ${h.maxHeadBytes}`);
  checkDuration(['http', 'headTimeoutMs'], h.headTimeoutMs, report);
  checkDuration(['http', 'keepAliveTimeoutMs'], h.keepAliveTimeoutMs, report);
  checkDuration(['http', 'responseTimeoutMs'], h.responseTimeoutMs, report);
}

function checkListener(
  l: ListenerSnapshot,
  at: PathSegment[],
  opaquePorts: ReadonlySet<number>,
  routeNames: ReadonlySet<string>,
  serviceNames: ReadonlySet<string>,
  report: Report,
): void {
  checkAddress([...at, 'address'], l.address, 0, report);
  if (!DIRECTIONS.has(l.direction)) report([...at, 'direction'], `must be "inbound" or "outbound", got "${l.direction}"`);
  if (!PROTOCOLS.has(l.protocol)) report([...at, 'protocol'], `must be one of "detect", "http1", "opaque", got "${l.protocol}"`);
  checkDuration([...at, 'detectTimeoutMs'], l.detectTimeoutMs, report);

  const listed = new Set<string>();
  l.routes.forEach((name, k) => {
    if (!routeNames.has(name)) report([...at, 'routes', k], `no route named "${name}"`);
    else if (listed.has(name)) report([...at, 'routes', k], `route "${name}" is listed twice`);
    listed.add(name);
  });

  if (l.defaultService !== undefined) {
    if (!serviceNames.has(l.defaultService)) report([...at, 'defaultService'], `no service named "${l.defaultService}"`);
  } else if (l.protocol === 'opaque') {
    report([...at, 'defaultService'], 'an opaque listener needs a defaultService to forward to');
  } else if (opaquePorts.has(l.address.port)) {
    report([...at, 'defaultService'], `port ${l.address.port} is in opaquePorts, so the listener is opaque and needs a defaultService`);
  }
}

function checkService(svc: ServiceSnapshot, at: PathSegment[], report: Report): void {
  checkDuration([...at, 'connectTimeoutMs'], svc.connectTimeoutMs, report);
  if (!Number.isInteger(svc.pool.maxIdlePerEndpoint) || svc.pool.maxIdlePerEndpoint < 0) {
    report([...at, 'pool', 'maxIdlePerEndpoint'], `must be an integer >= 0, got ${svc.pool.maxIdlePerEndpoint}`);
  }
  checkDuration([...at, 'pool', 'idleTimeoutMs'], svc.pool.idleTimeoutMs, report);
  checkServicePolicies(svc, at, report);

  const seen = new Set<string>();
  let totalWeight = 0;
  let weightsValid = true;
  svc.endpoints.forEach((ep, j) => {
    const epAt = [...at, 'endpoints', j];
    if (checkAddress([...epAt, 'address'], ep.address, 1, report)) {
      const key = formatAddress({ host: normalizeHost(ep.address.host), port: ep.address.port });
      if (seen.has(key)) report([...epAt, 'address'], `duplicate endpoint ${formatAddress(ep.address)}`);
      seen.add(key);
    }
    if (checkWeight([...epAt, 'weight'], ep.weight, report)) totalWeight += ep.weight;
    else weightsValid = false;
  });
  // An empty list is allowed (requests get 503); a non-empty list where nothing can be picked is a mistake.
  if (svc.endpoints.length > 0 && weightsValid && totalWeight === 0) {
    report([...at, 'endpoints'], 'every endpoint has weight 0; use an empty list to take the service out of traffic');
  }
}

function checkRoute(route: RouteSnapshot, at: PathSegment[], serviceNames: ReadonlySet<string>, report: Report): void {
  route.hostnames.forEach((h, k) => {
    if (!HOSTNAME.test(h)) report([...at, 'hostnames', k], `"${h}" is not a lower-case host name without port (a leading "*." is the only wildcard)`);
  });
  route.matches.forEach((m, k) => {
    const mAt = [...at, 'matches', k];
    if (m.path !== undefined) {
      const kind = m.path.kind as string;
      if (kind !== 'prefix' && kind !== 'exact' && kind !== 'string-prefix' && kind !== 'regex') {
        report([...mAt, 'path', 'kind'], `must be "prefix", "string-prefix", "exact" or "regex"`);
      } else if (kind === 'regex') {
        try {
          new RegExp(m.path.value);
        } catch (err) {
          report([...mAt, 'path', 'value'], (err as Error).message);
        }
      } else if (!m.path.value.startsWith('/') && !(kind === 'string-prefix' && m.path.value === '')) {
        report([...mAt, 'path', 'value'], `must start with "/", got "${m.path.value}"`);
      }
    }
    if (m.method !== undefined && (!TOKEN.test(m.method) || m.method !== m.method.toUpperCase())) {
      report([...mAt, 'method'], `must be an upper-case method name, got "${m.method}"`);
    }
    m.headers.forEach((h, j) => {
      const hAt = [...mAt, 'headers', j];
      if (!TOKEN.test(h.name) || h.name !== h.name.toLowerCase()) report([...hAt, 'name'], `must be a lower-case header name, got "${h.name}"`);
      if (!HEADER_KINDS.has(h.kind)) report([...hAt, 'kind'], `must be "exact", "regex" or "present"`);
      if (h.kind === 'regex') {
        try {
          new RegExp(h.value);
        } catch (err) {
          report([...hAt, 'value'], (err as Error).message); // "Invalid regular expression: /(/: Unterminated group"
        }
      }
    });
  });

  if (route.backends.length === 0) report([...at, 'backends'], 'a route needs at least one backend');
  let totalWeight = 0;
  let weightsValid = true;
  route.backends.forEach((b, k) => {
    if (!serviceNames.has(b.service)) report([...at, 'backends', k, 'service'], `no service named "${b.service}"`);
    if (checkWeight([...at, 'backends', k, 'weight'], b.weight, report)) totalWeight += b.weight;
    else weightsValid = false;
  });
  if (route.backends.length > 0 && weightsValid && totalWeight === 0) report([...at, 'backends'], 'every backend has weight 0, so no request could be sent');
  checkDuration([...at, 'requestTimeoutMs'], route.requestTimeoutMs, report);
  if (route.responseTimeoutMs !== undefined) checkDuration([...at, 'responseTimeoutMs'], route.responseTimeoutMs, report);
  if (route.idleTimeoutMs !== undefined) checkDuration([...at, 'idleTimeoutMs'], route.idleTimeoutMs, report);
  if (route.retry !== undefined) checkRetry(route.retry, [...at, 'retry'], report);
}

const BALANCERS = new Set(['p2c-ewma', 'round-robin', 'least-request']);
const ACCRUAL_MODES = new Set(['consecutive', 'success-rate', 'off']);
const RETRY_CONDITIONS = new Set(['5xx', 'gateway-error', 'connect-failure', 'reset', 'retriable-status-codes', ...Object.keys(GRPC_RETRY_CODES)]);
const UPSTREAM_PROTOCOLS = new Set(['http1', 'h2c', 'auto']);

function checkServicePolicies(svc: ServiceSnapshot, at: PathSegment[], report: Report): void {
  if (svc.balancer !== undefined && !BALANCERS.has(svc.balancer)) report([...at, 'balancer'], `must be one of "p2c-ewma", "round-robin", "least-request", got "${svc.balancer}"`);
  if (svc.protocol !== undefined && !UPSTREAM_PROTOCOLS.has(svc.protocol)) report([...at, 'protocol'], `must be one of "http1", "h2c", "auto", got "${String(svc.protocol)}"`);
  const z = svc.zoneLocality;
  if (z !== undefined) {
    const zAt = [...at, 'zoneLocality'];
    if (!(z.highLoad > 0)) report([...zAt, 'highLoad'], `must be > 0, got ${z.highLoad}`);
    if (!(z.lowLoad >= 0 && z.lowLoad < z.highLoad)) report([...zAt, 'lowLoad'], `must be >= 0 and below highLoad (${z.highLoad}), got ${z.lowLoad}`);
    if (!(z.loadWindowMs >= 1)) report([...zAt, 'loadWindowMs'], `must be >= 1, got ${z.loadWindowMs}`);
  }
  const f = svc.failureAccrual;
  if (f !== undefined) {
    const fAt = [...at, 'failureAccrual'];
    if (!ACCRUAL_MODES.has(f.mode)) report([...fAt, 'mode'], `must be "consecutive", "success-rate" or "off", got "${f.mode}"`);
    if (!(Number.isInteger(f.consecutiveFailures) && f.consecutiveFailures >= 1)) report([...fAt, 'consecutiveFailures'], `must be an integer >= 1, got ${f.consecutiveFailures}`);
    checkDuration([...fAt, 'minBackoffMs'], f.minBackoffMs, report);
    checkDuration([...fAt, 'maxBackoffMs'], f.maxBackoffMs, report);
    if (f.maxBackoffMs < f.minBackoffMs) report([...fAt, 'maxBackoffMs'], `must be >= minBackoffMs (${f.minBackoffMs}), got ${f.maxBackoffMs}`);
    checkRatio([...fAt, 'jitter'], f.jitter, report);
    if (!(f.maxEjectionPercent >= 0 && f.maxEjectionPercent <= 100)) report([...fAt, 'maxEjectionPercent'], `must be from 0 to 100, got ${f.maxEjectionPercent}`);
    checkRatio([...fAt, 'successRateThreshold'], f.successRateThreshold, report);
    if (!(f.successRateMinRequests >= 1)) report([...fAt, 'successRateMinRequests'], `must be >= 1, got ${f.successRateMinRequests}`);
    if (!(Number.isInteger(f.successRateWindow) && f.successRateWindow >= f.successRateMinRequests)) {
      report([...fAt, 'successRateWindow'], `must be an integer >= the minimum requests (${f.successRateMinRequests}), got ${f.successRateWindow}`);
    }
  }
  const p = svc.failurePenalty;
  if (p !== undefined) {
    p.statuses.forEach((st, k) => checkStatus([...at, 'failurePenalty', 'statuses', k], st, report));
    checkDuration([...at, 'failurePenalty', 'latencyMs'], p.latencyMs, report);
    checkDuration([...at, 'failurePenalty', 'maxLatencyMs'], p.maxLatencyMs, report);
  }
  const q = svc.queue;
  if (q !== undefined) {
    if (!(Number.isInteger(q.maxInFlight) && q.maxInFlight >= 1)) report([...at, 'queue', 'maxInFlight'], `must be an integer >= 1, got ${q.maxInFlight}`);
    if (!(Number.isInteger(q.capacity) && q.capacity >= 0)) report([...at, 'queue', 'capacity'], `must be an integer >= 0, got ${q.capacity}`);
    checkDuration([...at, 'queue', 'failFastMs'], q.failFastMs, report);
  }
  if (svc.retry !== undefined) checkRetry(svc.retry, [...at, 'retry'], report);
  const t = svc.timeouts;
  if (t !== undefined) {
    checkDuration([...at, 'timeouts', 'requestMs'], t.requestMs, report);
    checkDuration([...at, 'timeouts', 'responseMs'], t.responseMs, report);
    checkDuration([...at, 'timeouts', 'idleMs'], t.idleMs, report);
  }
}

function checkRetry(r: RetryPolicy, at: PathSegment[], report: Report): void {
  r.on.forEach((c, k) => {
    if (!RETRY_CONDITIONS.has(c)) report([...at, 'on', k], `must be one of ${[...RETRY_CONDITIONS].map((x) => `"${x}"`).join(', ')}, got "${c}"`);
  });
  r.statusCodes.forEach((st, k) => checkStatus([...at, 'statusCodes', k], st, report));
  if (r.statusCodes.length > 0 && !r.on.includes('retriable-status-codes')) {
    report([...at, 'statusCodes'], 'is only used with "retriable-status-codes" in "on"; add it there');
  }
  if (!(Number.isInteger(r.maxRetries) && r.maxRetries >= 0)) report([...at, 'maxRetries'], `must be an integer >= 0, got ${r.maxRetries}`);
  checkDuration([...at, 'backoffBaseMs'], r.backoffBaseMs, report);
  checkDuration([...at, 'backoffMaxMs'], r.backoffMaxMs, report);
  if (r.backoffMaxMs < r.backoffBaseMs) report([...at, 'backoffMaxMs'], `must be >= the base backoff (${r.backoffBaseMs}), got ${r.backoffMaxMs}`);
  if (!(Number.isInteger(r.maxBodyBytes) && r.maxBodyBytes >= 0)) report([...at, 'maxBodyBytes'], `must be an integer >= 0, got ${r.maxBodyBytes}`);
  checkRatio([...at, 'budget', 'ratio'], r.budget.ratio, report);
  if (!(r.budget.minPerSecond >= 0)) report([...at, 'budget', 'minPerSecond'], `must be >= 0, got ${r.budget.minPerSecond}`);
  if (!(r.budget.windowMs >= 1)) report([...at, 'budget', 'windowMs'], `must be >= 1, got ${r.budget.windowMs}`);
}

function checkRatio(at: PathSegment[], v: number, report: Report): void {
  if (!(v >= 0 && v <= 1)) report(at, `must be from 0 to 1, got ${v}`);
}

function checkStatus(at: PathSegment[], v: number, report: Report): void {
  if (!(Number.isInteger(v) && v >= 100 && v <= 599)) report(at, `must be an HTTP status from 100 to 599, got ${v}`);
}

function checkAddress(at: PathSegment[], a: SocketAddress, minPort: number, report: Report): boolean {
  let ok = true;
  if (typeof a.host !== 'string' || a.host === '') {
    report(at, 'host must not be empty');
    ok = false;
  }
  return checkPort(at, a.port, minPort, report) && ok;
}

function checkPort(at: PathSegment[], port: number, minPort: number, report: Report): boolean {
  if (Number.isInteger(port) && port >= minPort && port <= 65535) return true;
  report(at, `port must be an integer from ${minPort} to 65535, got ${port}`);
  return false;
}

function checkDuration(at: PathSegment[], ms: number, report: Report): void {
  if (!Number.isFinite(ms) || ms < 0) report(at, `must be a duration in ms >= 0, got ${ms}`);
}

function checkWeight(at: PathSegment[], weight: number, report: Report): boolean {
  if (Number.isFinite(weight) && weight >= 0) return true;
  report(at, `must be a number >= 0, got ${weight}`);
  return false;
}

function normalizeHost(host: string): string {
  const h = host.toLowerCase();
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}

// Whether binding both hosts on one port would fail: the same host, or a wildcard that covers the
// other ('::' is dual-stack in Node, so it covers IPv4 as well). Host names are only compared as
// written: what they resolve to is not known here.
function hostsOverlap(a: string, b: string): boolean {
  if (a === b || a === '::' || b === '::') return true;
  if (a === '0.0.0.0') return isIP(b) === 4;
  if (b === '0.0.0.0') return isIP(a) === 4;
  return false;
}

export function formatAddress(a: SocketAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

function checkPolicy(s: EngineSnapshot, report: Report): void {
  const p = s.policy!;
  const servers = new Set<string>();
  const listeners = new Set(s.listeners.map((l) => l.name));
  p.servers.forEach((srv, i) => {
    if (servers.has(srv.name)) report(['policy', 'servers', i, 'name'], `duplicate server name "${srv.name}"`);
    servers.add(srv.name);
    if ((srv.port === undefined) === (srv.listener === undefined)) report(['policy', 'servers', i], 'a server names a port or a listener (one of them)');
    if (srv.listener !== undefined && !listeners.has(srv.listener)) report(['policy', 'servers', i, 'listener'], `no listener named "${srv.listener}"`);
  });
  const routes = new Set(s.routes.map((r) => r.name));
  p.authorizations.forEach((a, i) => {
    const at: PathSegment[] = ['policy', 'authorizations', i];
    if (a.target.kind === 'server' && !servers.has(a.target.name)) report([...at, 'target', 'name'], `no server named "${a.target.name}"`);
    if (a.target.kind === 'route' && !routes.has(a.target.name) && ![...routes].some((r) => r.startsWith(`${a.target.name}/`))) report([...at, 'target', 'name'], `no route named "${a.target.name}"`);
    checkClients(a, at, report);
  });
}

/** Identity patterns and networks of an authorization or an MCP rule. */
function checkClients(a: { identities?: string[]; networks?: { cidr: string; except: string[] }[] }, at: PathSegment[], report: Report): void {
  (a.identities ?? []).forEach((id, k) => {
    if (id !== '*' && !/^spiffe:\/\/[^/]+(\/[^/]+)*$/.test(id)) report([...at, 'identities', k], `must be "*" or a SPIFFE ID pattern (spiffe://domain/path, "*" segments allowed), got "${id}"`);
  });
  (a.networks ?? []).forEach((n, k) => {
    for (const [j, c] of [n.cidr, ...n.except].entries()) {
      const [addr, bits] = c.split('/');
      const fam = isIP(addr ?? '');
      if (fam === 0 || (bits !== undefined && !(Number(bits) >= 0 && Number(bits) <= (fam === 4 ? 32 : 128)))) report([...at, 'networks', k, j === 0 ? 'cidr' : 'except'], `"${c}" is not an address or CIDR`);
    }
  });
}

function checkMcp(s: EngineSnapshot, report: Report): void {
  const m = s.mcp!;
  const servers = new Set((s.policy?.servers ?? []).map((x) => x.name));
  const routes = new Set(s.routes.map((r) => r.name));
  const names = new Set<string>();
  m.policies.forEach((p, i) => {
    const at: PathSegment[] = ['mcp', 'policies', i];
    if (names.has(p.name)) report([...at, 'name'], `duplicate MCP policy name "${p.name}"`);
    names.add(p.name);
    if (p.target.kind === 'server' && !servers.has(p.target.name)) report([...at, 'target', 'name'], `no server named "${p.target.name}" (servers are declared under policy.servers)`);
    if (p.target.kind === 'route' && !routes.has(p.target.name) && ![...routes].some((r) => r.startsWith(`${p.target.name}/`))) report([...at, 'target', 'name'], `no route named "${p.target.name}"`);
    p.rules.forEach((r, j) => checkClients(r, [...at, 'rules', j], report));
  });
}
