// The YAML config file source: parses `bowline proxy --config FILE` (and the mesh file of `bowline
// control`, which is the same language), checks it against the JSON Schema, translates it into an
// EngineSnapshot and validates that. Loaded only by the processes that read a file, never by the
// engine itself. Every problem is reported as
// `FILE: field.path: reason` (or `FILE:LINE:COL: reason` for YAML syntax) naming the file's own
// fields, never the snapshot's. Runs on the main thread; loadConfigFile reads synchronously.

import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseSocketAddress } from './socket-address';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { LineCounter, parseDocument } from 'yaml';
import { DEFAULT_BALANCER,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_FAILURE_ACCRUAL,
  DEFAULT_FAILURE_PENALTY,
  DEFAULT_QUEUE,
  DEFAULT_RETRY_POLICY,
  DEFAULT_TIMEOUTS,
  DEFAULT_ZONE_LOCALITY,
  DEFAULT_ZONE_TRANSFER_USD_PER_GB,
  type RetryPolicy,
  DEFAULT_DETECT_TIMEOUT_MS,
  DEFAULT_HTTP_SETTINGS,
  DEFAULT_POOL_SETTINGS,
  DEFAULT_MCP_SETTINGS,
  type McpRuleSnapshot,
  type McpSettings,
  type AuthorizationSnapshot,
  type EndpointSnapshot,
  type EngineSnapshot,
  type HeaderMatch,
  type IdentitySnapshot,
  type ListenerSnapshot,
  type RouteMatchSnapshot,
  type RouteSnapshot,
  type ServiceSnapshot,
  type SocketAddress,
  type WeightedBackend,
} from '../snapshot';
import { findSnapshotProblems, formatPath, type PathSegment } from '../validate-snapshot';
import {
  AJV_OPTIONS,
  CONFIG_FILE_SCHEMA,
  type BackendRefConfig,
  type ConfigFile,
  type MatchConfig,
  type McpConfig,
  type RetryConfig,
  type RouteConfig,
  type RuleConfig,
  type ServiceConfig,
} from './schema';

export interface ConfigProblem {
  /** Path of the offending field in the file, e.g. 'services[0].endpoints[1].address'; '' for the whole file. */
  field: string;
  reason: string;
  /** 1-based position, for YAML syntax errors. */
  line?: number;
  col?: number;
}

/** A config file that cannot be used. `field`, `reason`, `line` and `col` describe the first problem; the message lists all. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'CONFIG_INVALID';
  readonly file: string;
  readonly field: string;
  readonly reason: string;
  readonly line: number | undefined;
  readonly col: number | undefined;
  readonly problems: readonly ConfigProblem[];

  constructor(file: string, problems: readonly ConfigProblem[]) {
    const all = problems.length > 0 ? problems : [{ field: '', reason: 'invalid config' }];
    super(formatProblems(file, all));
    const first = all[0]!;
    this.file = file;
    this.field = first.field;
    this.reason = first.reason;
    this.line = first.line;
    this.col = first.col;
    this.problems = all;
  }
}

const MAX_LISTED_PROBLEMS = 25;

function formatProblems(file: string, problems: readonly ConfigProblem[]): string {
  const lines = problems.slice(0, MAX_LISTED_PROBLEMS).map((p) => {
    if (p.line !== undefined) return `${file}:${p.line}:${p.col ?? 1}: ${p.reason}`;
    return p.field === '' ? `${file}: ${p.reason}` : `${file}: ${p.field}: ${p.reason}`;
  });
  if (problems.length > MAX_LISTED_PROBLEMS) lines.push(`${file}: ... and ${problems.length - MAX_LISTED_PROBLEMS} more problems`);
  return lines.join('\n');
}

/** Reads and parses a config file; throws ConfigError (also when the file cannot be read). */
export function loadConfigFile(file: string, version = 'file-1'): EngineSnapshot {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [{ field: '', reason: `cannot read the file: ${(err as Error).message}` }]);
  }
  return parseConfigText(text, file, version);
}

/** Parses config text; `file` only names the source in errors. Throws ConfigError. */
export function parseConfigText(text: string, file: string, version: string): EngineSnapshot {
  const data = parseYaml(text, file);
  if (data === null || data === undefined) {
    throw new ConfigError(file, [{ field: '', reason: 'the file is empty; it needs at least "listeners" and "services"' }]);
  }
  const validate = configValidator();
  if (!validate(data)) {
    const problems = describeSchemaErrors(validate.errors ?? [], data);
    throw new ConfigError(file, problems.length > 0 ? problems : [{ field: '', reason: 'does not match the config schema' }]);
  }
  const { snapshot, problems, origins } = translate(data as ConfigFile, version);
  // A field that failed translation (e.g. an unparsable address, kept as host '' port 0) would
  // also fail validation: report it once.
  const reported = new Set(problems.map((p) => p.field));
  for (const p of findSnapshotProblems(snapshot)) {
    const field = formatPath(toFilePath(p.path, origins));
    if (!reported.has(field)) problems.push({ field, reason: p.reason });
  }
  if (problems.length > 0) throw new ConfigError(file, problems);
  return snapshot;
}

function parseYaml(text: string, file: string): unknown {
  // A .json file (what tools generate for large meshes) is read with JSON.parse, ten times faster than
  // the YAML parser; a syntax error is then reported by the YAML parser, with its line and column.
  if (file.endsWith('.json')) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      // fall through
    }
  }
  const lineCounter = new LineCounter();
  // prettyErrors adds a code frame to the message; we print our own FILE:LINE:COL prefix instead.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => {
        const { line, col } = lineCounter.linePos(e.pos[0]);
        return { field: '', reason: e.message, line: Math.max(line, 1), col: Math.max(col, 1) };
      }),
    );
  }
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError(file, [{ field: '', reason: (err as Error).message }]);
  }
}

// ---------------------------------------------------------------------------------------------
// Schema errors

let compiledValidator: ValidateFunction | undefined;

// The validator compiled at build time (gen-validator.ts); else compiled here on first use.
function configValidator(): ValidateFunction {
  if (compiledValidator === undefined) {
    try {
      compiledValidator = require('./config-validator') as ValidateFunction;
    } catch {
      const { default: Ajv } = require('ajv') as typeof import('ajv');
      compiledValidator = new Ajv(AJV_OPTIONS).compile(CONFIG_FILE_SCHEMA);
    }
  }
  return compiledValidator;
}

function describeSchemaErrors(errors: readonly ErrorObject[], root: unknown): ConfigProblem[] {
  // "unknown field adress (did you mean address?)" already explains "address is missing".
  const guessed = new Set<string>();
  for (const e of errors) {
    if (e.keyword !== 'additionalProperties') continue;
    const allowed = Object.keys(((e.parentSchema as Record<string, unknown> | undefined)?.['properties'] ?? {}) as object);
    const guess = closestName(String(e.params['additionalProperty']), allowed);
    if (guess !== undefined) guessed.add(`${e.instancePath}/${guess}`);
  }
  return errors
    .filter((e) => e.keyword !== 'required' || !guessed.has(`${e.instancePath}/${String(e.params['missingProperty'])}`))
    .flatMap((e) => describeSchemaError(e, root));
}

function describeSchemaError(e: ErrorObject, root: unknown): ConfigProblem[] {
  const path = pointerToPath(e.instancePath, root);
  const at = (segments: PathSegment[], reason: string): ConfigProblem[] => [{ field: formatPath(segments), reason }];
  const params = e.params as Record<string, unknown>;
  const schema = (e.parentSchema ?? {}) as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const prop = String(params['additionalProperty']);
      const allowed = Object.keys((schema['properties'] ?? {}) as object);
      const guess = closestName(prop, allowed);
      const hint = guess !== undefined ? ` (did you mean "${guess}"?)` : `; known fields: ${allowed.join(', ')}`;
      return at([...path, prop], `unknown field "${prop}"${hint}`);
    }
    case 'required': {
      const description = schema['description']; // set on conditional requirements
      const why = typeof description === 'string' ? ` (${description})` : '';
      return at([...path, String(params['missingProperty'])], `required field is missing${why}`);
    }
    case 'type':
      return at(path, `must be ${typeNames(String(params['type']))}, got ${describeValue(e.data)}`);
    case 'enum': {
      const allowed = (params['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ');
      return at(path, `must be one of ${allowed}; got ${describeValue(e.data)}`);
    }
    case 'const':
      return at(path, `must be ${JSON.stringify(params['allowedValue'])}, got ${describeValue(e.data)}`);
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return at(path, `must be ${String(params['comparison'])} ${String(params['limit'])}, got ${describeValue(e.data)}`);
    case 'minItems':
      return at(path, params['limit'] === 1 ? 'must have at least one entry' : `must have at least ${String(params['limit'])} entries`);
    case 'minLength':
      return at(path, params['limit'] === 1 ? 'must not be empty' : `must be at least ${String(params['limit'])} characters`);
    case 'pattern': {
      const description = schema['description'];
      const want = typeof description === 'string' ? description : `text matching /${String(params['pattern'])}/`;
      return at(path, `must be ${want}, got ${describeValue(e.data)}`);
    }
    case 'if':
      return []; // the failing branch reports the actual problem
    default:
      return at(path, e.message ?? 'is invalid');
  }
}

// '/services/0/endpoints/1/address' -> ['services', 0, 'endpoints', 1, 'address']; walks the data so
// that a numeric segment is an index only where the value really is a list.
function pointerToPath(pointer: string, root: unknown): PathSegment[] {
  if (pointer === '') return [];
  const path: PathSegment[] = [];
  let node: unknown = root;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node) && /^\d+$/.test(key)) {
      path.push(Number(key));
      node = node[Number(key)];
    } else {
      path.push(key);
      node = node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined;
    }
  }
  return path;
}

const TYPE_NAMES: Record<string, string> = {
  object: 'a mapping (key: value)',
  array: 'a list',
  string: 'a string',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
  null: 'empty',
};

function typeNames(types: string): string {
  return types
    .split(',')
    .map((t) => TYPE_NAMES[t] ?? t)
    .join(' or ');
}

function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'an empty value';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  return String(v);
}

/** The known name a typo most likely meant (case, '_' and '-' ignored, then up to 2 edits), if any. */
function closestName(typed: string, known: readonly string[]): string | undefined {
  const squash = (s: string): string => s.toLowerCase().replace(/[_-]/g, '');
  const t = squash(typed);
  let best: string | undefined;
  let bestDistance = Math.min(2, Math.floor(t.length / 3));
  for (const name of known) {
    const d = editDistance(t, squash(name));
    if (d <= bestDistance && (best === undefined || d < bestDistance)) {
      best = name;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

// ---------------------------------------------------------------------------------------------
// Translation into an EngineSnapshot

/** Where snapshot items came from in the file, so snapshot problems can name the file's fields. */
interface Origins {
  /** Per snapshot route. */
  routes: { route: PathSegment[]; rule: PathSegment[]; ruleNamed: boolean; ruleTimeout: boolean; ruleRetry: boolean }[];
  /** Per listener: snapshot routes[k] came from file routes[listenerRoutes[i][k]]. */
  listenerRoutes: number[][];
}

interface Translation {
  snapshot: EngineSnapshot;
  problems: ConfigProblem[];
  origins: Origins;
}

function translate(file: ConfigFile, version: string): Translation {
  const problems: ConfigProblem[] = [];
  const origins: Origins = { routes: [], listenerRoutes: [] };
  const address = (path: PathSegment[], text: string, minPort: number): SocketAddress => {
    try {
      return parseSocketAddress(text, minPort);
    } catch (err) {
      problems.push({ field: formatPath(path), reason: (err as Error).message });
      return { host: '', port: 0 };
    }
  };

  const services: ServiceSnapshot[] = file.services.map((svc, i) => ({
    name: svc.name,
    endpoints: svc.endpoints.map((ep, j) => {
      const e: EndpointSnapshot = { address: address(['services', i, 'endpoints', j, 'address'], ep.address, 1), zone: ep.zone ?? '', weight: ep.weight ?? 1 };
      const id = ep.identity ?? svc.identity;
      if (id !== undefined) e.identity = id;
      return e;
    }),
    pool: { ...DEFAULT_POOL_SETTINGS, ...svc.pool },
    connectTimeoutMs: svc.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    // Filled in like every default, so that the mesh round-trips through xDS exactly.
    protocol: svc.protocol ?? 'auto',
    ...translateServicePolicies(svc),
  }));

  const routes: RouteSnapshot[] = [];
  /** File route name -> names of the snapshot routes it expanded into. */
  const expanded = new Map<string, string[]>();
  (file.routes ?? []).forEach((r, i) => {
    const at: PathSegment[] = ['routes', i];
    const names = translateRoute(r, at, routes, origins, problems);
    // Checked here, not only on the snapshot: "r" and "r" with rules expand to different names.
    if (expanded.has(r.name)) problems.push({ field: formatPath([...at, 'name']), reason: `duplicate route name "${r.name}"` });
    else expanded.set(r.name, names);
  });

  const listeners: ListenerSnapshot[] = file.listeners.map((l, i) => {
    const names: string[] = [];
    const from: number[] = [];
    (l.routes ?? []).forEach((ref, k) => {
      // A route name expands to all its rules; anything else ("<route>/<rule>", or an unknown
      // name that validation will report) is kept as written. Names cannot contain "/", so the
      // two never collide.
      for (const name of expanded.get(ref) ?? [ref]) {
        names.push(name);
        from.push(k);
      }
    });
    origins.listenerRoutes.push(from);
    const listener: ListenerSnapshot = {
      name: l.name,
      address: address(['listeners', i, 'address'], l.address, 0),
      direction: l.direction ?? 'outbound',
      protocol: l.protocol ?? 'detect',
      routes: names,
      detectTimeoutMs: l.detectTimeoutMs ?? DEFAULT_DETECT_TIMEOUT_MS,
    };
    if (l.defaultService !== undefined) listener.defaultService = l.defaultService;
    if (l.originalDst === true) listener.originalDst = true;
    if (l.mcp === true) listener.mcp = true;
    return listener;
  });

  const proxy = file.proxy ?? {};
  const snapshot: EngineSnapshot = {
    version,
    // The zone may come from the environment (a pod's topology label, passed down by the injector).
    zone: proxy.zone ?? process.env['BOWLINE_ZONE'] ?? '',
    zoneTransferUsdPerGb: proxy.zoneTransferUsdPerGb ?? DEFAULT_ZONE_TRANSFER_USD_PER_GB,
    listeners,
    services,
    routes,
    http: { ...DEFAULT_HTTP_SETTINGS, ...proxy.http },
    opaquePorts: [...(proxy.opaquePorts ?? [])],
  };
  if (proxy.identity !== undefined) {
    const id = readIdentity(proxy.identity, problems);
    if (id !== null) snapshot.identity = id;
  }
  if (file.policy !== undefined) {
    const p = file.policy;
    snapshot.policy = {
      defaultPolicy: p.defaultPolicy ?? 'all-unauthenticated',
      // RFC 1918 and unique-local addresses: where cluster-authenticated trusts clients without identity.
      clusterNetworks: [...(p.clusterNetworks ?? ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fd00::/8'])],
      audit: p.audit ?? false,
      servers: (p.servers ?? []).map((x) => ({ ...x })),
      authorizations: (p.authorizationPolicies ?? []).map((a) => {
        const out: AuthorizationSnapshot = { name: a.name, target: { kind: a.targetRef.kind === 'Server' ? 'server' : 'route', name: a.targetRef.name } };
        if (a.meshTLS !== undefined) out.identities = [...a.meshTLS.identities];
        if (a.network !== undefined) out.networks = a.network.networks.map((n) => ({ cidr: n.cidr, except: [...(n.except ?? [])] }));
        return out;
      }),
    };
  }
  if (file.mcp !== undefined) snapshot.mcp = translateMcp(file.mcp);
  return { snapshot, problems, origins };
}

function translateMcp(m: McpConfig): McpSettings {
  return {
    inspectAll: m.inspectAll ?? DEFAULT_MCP_SETTINGS.inspectAll,
    maxBodyBytes: m.maxBodyBytes ?? DEFAULT_MCP_SETTINGS.maxBodyBytes,
    oversizedBody: m.oversizedBody ?? DEFAULT_MCP_SETTINGS.oversizedBody,
    maxNames: m.maxNames ?? DEFAULT_MCP_SETTINGS.maxNames,
    audit: m.audit ?? false,
    policies: (m.policies ?? []).map((p) => ({
      name: p.name,
      target: { kind: p.targetRef.kind === 'Server' ? 'server' : 'route', name: p.targetRef.name },
      rules: p.rules.map((r, i) => {
        const out: McpRuleSnapshot = { name: r.name ?? String(i), tools: [...(r.tools ?? [])], resources: [...(r.resources ?? [])], prompts: [...(r.prompts ?? [])] };
        if (r.meshTLS !== undefined) out.identities = [...r.meshTLS.identities];
        if (r.network !== undefined) out.networks = r.network.networks.map((n) => ({ cidr: n.cidr, except: [...(n.except ?? [])] }));
        return out;
      }),
    })),
  };
}

/** Appends the snapshot routes of one file route (one per rule) and returns their names. */
function translateRoute(
  r: RouteConfig,
  at: PathSegment[],
  out: RouteSnapshot[],
  origins: Origins,
  problems: ConfigProblem[],
): string[] {
  const hostnames = (r.hostnames ?? []).map(normalizeHostname);
  if (r.rules !== undefined) {
    if (r.matches !== undefined || r.backendRefs !== undefined) {
      const field = r.matches !== undefined ? 'matches' : 'backendRefs';
      problems.push({ field: formatPath([...at, field]), reason: 'a route has either "rules" or "matches"/"backendRefs", not both' });
    }
    return r.rules.map((rule, q) => {
      const name = `${r.name}/${rule.name ?? String(q)}`;
      out.push({
        name,
        hostnames: [...hostnames],
        matches: translateMatches(rule.matches),
        backends: translateBackends(rule.backendRefs),
        requestTimeoutMs: rule.timeoutMs ?? r.timeoutMs ?? 0,
        ...routePolicies(rule, r),
        ...(r.mcp === true ? { mcp: true } : {}),
      });
      origins.routes.push({
        route: at,
        rule: [...at, 'rules', q],
        ruleNamed: rule.name !== undefined,
        ruleTimeout: rule.timeoutMs !== undefined,
        ruleRetry: rule.retry !== undefined,
      });
      return name;
    });
  }
  if (r.backendRefs === undefined) {
    problems.push({ field: formatPath([...at, 'backendRefs']), reason: 'required field is missing (or give "rules")' });
  }
  out.push({
    name: r.name,
    hostnames,
    matches: translateMatches(r.matches),
    backends: translateBackends(r.backendRefs ?? []),
    requestTimeoutMs: r.timeoutMs ?? 0,
    ...routePolicies(r, r),
    ...(r.mcp === true ? { mcp: true } : {}),
  });
  origins.routes.push({ route: at, rule: at, ruleNamed: false, ruleTimeout: false, ruleRetry: false });
  return [r.name];
}

/**
 * The proxy's identity from PEM files (a certificate chain, its key, the trust bundle): checked to
 * parse, to match, and to carry one SPIFFE ID, which becomes the proxy's identity.
 */
function readIdentity(f: NonNullable<ConfigFile['proxy']>['identity'] & object, problems: ConfigProblem[]): IdentitySnapshot | null {
  const read = (field: string, file: string): string | null => {
    try {
      return readFileSync(file, 'utf8');
    } catch (e) {
      problems.push({ field: `proxy.identity.${field}`, reason: `cannot read ${file}: ${(e as Error).message}` });
      return null;
    }
  };
  const chain = read('certificateChainFile', f.certificateChainFile);
  const key = read('privateKeyFile', f.privateKeyFile);
  const bundle = read('trustBundleFile', f.trustBundleFile);
  if (chain === null || key === null || bundle === null) return null;
  try {
    const leaf = new X509Certificate(chain);
    if (!leaf.checkPrivateKey(createPrivateKey(key))) {
      problems.push({ field: 'proxy.identity.privateKeyFile', reason: 'the key does not match the certificate' });
      return null;
    }
    const ids = (leaf.subjectAltName ?? '').split(',').map((x) => x.trim()).filter((x) => x.startsWith('URI:spiffe://'));
    if (ids.length !== 1) {
      problems.push({ field: 'proxy.identity.certificateChainFile', reason: `the certificate must carry exactly one SPIFFE ID (URI SAN), found ${ids.length}` });
      return null;
    }
    new X509Certificate(bundle);
    return { spiffeId: ids[0]!.slice(4), certChainPem: chain, keyPem: key, trustBundlePem: bundle, files: [f.certificateChainFile, f.privateKeyFile, f.trustBundleFile] };
  } catch (e) {
    problems.push({ field: 'proxy.identity', reason: (e as Error).message });
    return null;
  }
}

/** Balancing, failure accrual, queueing, retry and timeout settings of a service, defaults filled in. */
function translateServicePolicies(svc: ServiceConfig): Partial<ServiceSnapshot> {
  const za = svc.zoneLocality ?? {};
  const fa = svc.failureAccrual ?? {};
  const sr = fa.successRate ?? {};
  const fp = svc.failurePenalty ?? {};
  const q = svc.queue ?? {};
  const d = DEFAULT_FAILURE_ACCRUAL;
  return {
    balancer: svc.balancer ?? DEFAULT_BALANCER,
    zoneLocality: {
      enabled: za.enabled ?? DEFAULT_ZONE_LOCALITY.enabled,
      highLoad: za.highLoad ?? DEFAULT_ZONE_LOCALITY.highLoad,
      lowLoad: za.lowLoad ?? DEFAULT_ZONE_LOCALITY.lowLoad,
      loadWindowMs: za.loadWindowMs ?? DEFAULT_ZONE_LOCALITY.loadWindowMs,
    },
    failureAccrual: {
      mode: fa.mode ?? d.mode,
      consecutiveFailures: fa.consecutiveFailures ?? d.consecutiveFailures,
      minBackoffMs: fa.minBackoffMs ?? d.minBackoffMs,
      maxBackoffMs: fa.maxBackoffMs ?? d.maxBackoffMs,
      jitter: fa.jitter ?? d.jitter,
      maxEjectionPercent: fa.maxEjectionPercent ?? d.maxEjectionPercent,
      successRateThreshold: sr.threshold ?? d.successRateThreshold,
      successRateMinRequests: sr.minRequests ?? d.successRateMinRequests,
      successRateWindow: sr.window ?? d.successRateWindow,
    },
    failurePenalty: {
      enabled: fp.enabled ?? DEFAULT_FAILURE_PENALTY.enabled,
      statuses: [...(fp.statuses ?? DEFAULT_FAILURE_PENALTY.statuses)],
      latencyMs: fp.latencyMs ?? DEFAULT_FAILURE_PENALTY.latencyMs,
      maxLatencyMs: fp.maxLatencyMs ?? DEFAULT_FAILURE_PENALTY.maxLatencyMs,
    },
    queue: {
      maxInFlight: q.maxInFlight ?? DEFAULT_QUEUE.maxInFlight,
      capacity: q.capacity ?? DEFAULT_QUEUE.capacity,
      failFastMs: q.failFastMs ?? DEFAULT_QUEUE.failFastMs,
    },
    retry: translateRetry(svc.retry),
    timeouts: {
      requestMs: svc.requestTimeoutMs ?? DEFAULT_TIMEOUTS.requestMs,
      responseMs: svc.responseTimeoutMs ?? DEFAULT_TIMEOUTS.responseMs,
      idleMs: svc.idleTimeoutMs ?? DEFAULT_TIMEOUTS.idleMs,
    },
  };
}

/** A retry block with the defaults of DEFAULT_RETRY_POLICY for what it leaves out. */
function translateRetry(r: RetryConfig | undefined): RetryPolicy {
  const d = DEFAULT_RETRY_POLICY;
  if (r === undefined) return { ...d, on: [...d.on], statusCodes: [...d.statusCodes], budget: { ...d.budget } };
  return {
    on: [...(r.on ?? d.on)],
    statusCodes: [...(r.statusCodes ?? d.statusCodes)],
    maxRetries: r.maxRetries ?? d.maxRetries,
    backoffBaseMs: r.backoff?.baseMs ?? d.backoffBaseMs,
    backoffMaxMs: r.backoff?.maxMs ?? d.backoffMaxMs,
    maxBodyBytes: r.maxBodyBytes ?? d.maxBodyBytes,
    nonIdempotent: r.nonIdempotent ?? d.nonIdempotent,
    budget: {
      ratio: r.budget?.ratio ?? d.budget.ratio,
      minPerSecond: r.budget?.minPerSecond ?? d.budget.minPerSecond,
      windowMs: r.budget?.windowMs ?? d.budget.windowMs,
    },
  };
}

/** Per-attempt and idle timeouts and the retry policy of a rule, falling back to its route's. */
function routePolicies(rule: RouteConfig | RuleConfig, route: RouteConfig): Partial<RouteSnapshot> {
  const out: Partial<RouteSnapshot> = {};
  const response = rule.responseTimeoutMs ?? route.responseTimeoutMs;
  const idle = rule.idleTimeoutMs ?? route.idleTimeoutMs;
  const retry = rule.retry ?? route.retry;
  if (response !== undefined) out.responseTimeoutMs = response;
  if (idle !== undefined) out.idleTimeoutMs = idle;
  if (retry !== undefined) out.retry = translateRetry(retry);
  return out;
}

const PATH_KINDS = { PathPrefix: 'prefix', Exact: 'exact' } as const;
const HEADER_KINDS = { Exact: 'exact', RegularExpression: 'regex', Present: 'present' } as const;

function translateMatches(matches: MatchConfig[] | undefined): RouteMatchSnapshot[] {
  return (matches ?? []).map((m) => {
    const match: RouteMatchSnapshot = {
      headers: (m.headers ?? []).map(
        (h): HeaderMatch => ({ name: h.name.toLowerCase(), kind: HEADER_KINDS[h.type ?? 'Exact'], value: h.value ?? '' }),
      ),
    };
    if (m.path !== undefined) match.path = { kind: PATH_KINDS[m.path.type ?? 'PathPrefix'], value: m.path.value };
    if (m.method !== undefined) match.method = m.method.toUpperCase();
    return match;
  });
}

function translateBackends(refs: BackendRefConfig[]): WeightedBackend[] {
  return refs.map((b) => ({ service: b.name, weight: b.weight ?? 1 }));
}

// Host names match the Host header without its port: 'Web.Local:8080' -> 'web.local'.
function normalizeHostname(h: string): string {
  const lower = h.toLowerCase();
  return lower.startsWith('[') ? lower : lower.replace(/:\d*$/, '');
}

const TIMEOUT_FIELDS: Record<string, string> = { requestMs: 'requestTimeoutMs', responseMs: 'responseTimeoutMs', idleMs: 'idleTimeoutMs' };
const SUCCESS_RATE_FIELDS: Record<string, string> = { successRateThreshold: 'threshold', successRateMinRequests: 'minRequests', successRateWindow: 'window' };

/** A path inside a snapshot RetryPolicy, as written in the file's retry block. */
function retryFilePath(rest: readonly PathSegment[]): PathSegment[] {
  if (rest[0] === 'backoffBaseMs') return ['backoff', 'baseMs'];
  if (rest[0] === 'backoffMaxMs') return ['backoff', 'maxMs'];
  return [...rest];
}

/** Maps a snapshot path (from findSnapshotProblems) to the file field it came from. */
function toFilePath(path: readonly PathSegment[], origins: Origins): PathSegment[] {
  const [top, index, field, ...rest] = path;
  switch (top) {
    case 'listeners':
      if (field === 'address') return ['listeners', index!, 'address'];
      if (field === 'routes' && typeof rest[0] === 'number') {
        return ['listeners', index!, 'routes', origins.listenerRoutes[index as number]?.[rest[0]] ?? rest[0]];
      }
      return [...path];
    case 'services':
      // endpoints[j].address.{host,port} is one "HOST:PORT" string in the file.
      if (field === 'endpoints') return path[4] === 'address' ? path.slice(0, 5) : [...path];
      if (field === 'timeouts') return ['services', index!, TIMEOUT_FIELDS[rest[0] as string] ?? String(rest[0])];
      if (field === 'failureAccrual' && typeof rest[0] === 'string' && rest[0].startsWith('successRate')) {
        return ['services', index!, 'failureAccrual', 'successRate', SUCCESS_RATE_FIELDS[rest[0]] ?? rest[0]];
      }
      if (field === 'retry') return ['services', index!, 'retry', ...retryFilePath(rest)];
      return [...path];
    case 'routes': {
      const o = origins.routes[index as number];
      if (o === undefined) return [...path];
      if (field === 'name') return [...(o.ruleNamed ? o.rule : o.route), 'name'];
      if (field === 'hostnames') return [...o.route, 'hostnames', ...rest];
      if (field === 'requestTimeoutMs') return [...(o.ruleTimeout ? o.rule : o.route), 'timeoutMs'];
      if (field === 'backends') return [...o.rule, 'backendRefs', ...rest.map((s) => (s === 'service' ? 'name' : s))];
      if (field === 'matches') return [...o.rule, 'matches', ...rest.map((s) => (s === 'kind' ? 'type' : s))];
      if (field === 'retry') return [...(o.ruleRetry ? o.rule : o.route), 'retry', ...retryFilePath(rest)];
      return [...o.rule, ...path.slice(2)];
    }
    case 'zone':
    case 'zoneTransferUsdPerGb':
      return ['proxy', top];
    case 'policy': {
      // authorizations[i].{target,identities,networks} are targetRef, meshTLS.identities and network.networks in the file.
      if (index !== 'authorizations' || field === undefined) return [...path];
      const [f, ...more] = rest;
      const tail = f === 'target' ? ['targetRef', ...more] : f === 'identities' ? ['meshTLS', 'identities', ...more] : f === 'networks' ? ['network', 'networks', ...more] : f === undefined ? [] : [f, ...more];
      return ['policy', 'authorizationPolicies', field, ...tail];
    }
    case 'mcp': {
      // policies[i].target and rules[j].{identities,networks} are targetRef, meshTLS.identities and network.networks in the file.
      if (index !== 'policies' || field === undefined) return [...path];
      const [f, ...more] = rest;
      if (f === 'target') return ['mcp', 'policies', field, 'targetRef', ...more];
      if (f === 'rules' && more.length >= 2) {
        const [j, g, ...tail] = more;
        const mapped = g === 'identities' ? ['meshTLS', 'identities'] : g === 'networks' ? ['network', 'networks'] : [g!];
        return ['mcp', 'policies', field, 'rules', j!, ...mapped, ...tail];
      }
      return [...path];
    }
    case 'http':
    case 'opaquePorts':
      return ['proxy', ...path];
    default:
      return [...path];
  }
}

// ---------------------------------------------------------------------------------------------
// Addresses


export { parseSocketAddress };
