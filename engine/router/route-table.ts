// Route tables compiled once per snapshot and listener; matching reads the request head in place
// (paths compared as bytes) and makes strings only of header values a route actually matches on.

import type { HeaderMatch, RouteSnapshot } from '../config/snapshot';
import type { HeadInfo } from '../http1/head-parser';
import type { CompiledRetry } from '../retry/retry-policy';
import type { Cluster } from '../cluster';
import { WeightedRotation } from '../balance/weighted-rotation';

export interface WeightedCluster {
  cluster: Cluster;
  weight: number;
}

const enum PathKind {
  None = 0,
  Prefix,
  Exact,
  StringPrefix,
  Regex,
}

interface CompiledMatch {
  pathKind: PathKind;
  path: Buffer;
  pathRe: RegExp | undefined;
  method: string | undefined;
  headers: { name: string; kind: HeaderMatch['kind']; value: string; re: RegExp | undefined }[];
}

export class CompiledRoute {
  readonly name: string;
  readonly backends: WeightedCluster[];
  readonly requestTimeoutMs: number;
  /** 0 = the backend service's. */
  readonly responseTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** The route's own retry policy; null = the backend service's. */
  readonly retry: CompiledRetry | null;
  private readonly exactHosts: Set<string>;
  private readonly wildcardSuffixes: string[];
  private readonly anyHost: boolean;
  private readonly matches: CompiledMatch[];
  private readonly rotation: WeightedRotation<WeightedCluster>;
  /** True when the route matches every request (no hosts, no match conditions). */
  readonly catchAll: boolean;
  /** The route carries MCP: its requests are inspected. */
  readonly mcp: boolean;

  constructor(r: RouteSnapshot, clusters: ReadonlyMap<string, Cluster>, retry: CompiledRetry | null = null) {
    this.name = r.name;
    this.requestTimeoutMs = r.requestTimeoutMs;
    this.responseTimeoutMs = r.responseTimeoutMs ?? 0;
    this.idleTimeoutMs = r.idleTimeoutMs ?? 0;
    this.retry = retry;
    this.mcp = r.mcp === true;
    this.backends = r.backends
      .filter((b) => b.weight > 0)
      .map((b) => ({ cluster: clusters.get(b.service)!, weight: b.weight }));
    this.rotation = new WeightedRotation(this.backends, this.backends.map((b) => b.weight));
    this.exactHosts = new Set(r.hostnames.filter((h) => !h.startsWith('*.')));
    this.wildcardSuffixes = r.hostnames.filter((h) => h.startsWith('*.')).map((h) => h.slice(1));
    this.anyHost = r.hostnames.length === 0;
    this.matches = r.matches.map((m) => ({
      pathKind: m.path === undefined ? PathKind.None : PATH_KINDS[m.path.kind],
      // A trailing slash of a PathPrefix is not significant (Gateway API: "/abc/" matches "/abc").
      path: Buffer.from(m.path !== undefined && m.path.kind === 'prefix' && m.path.value.length > 1 ? m.path.value.replace(/\/+$/, '') : m.path?.value ?? '', 'latin1'),
      pathRe: m.path?.kind === 'regex' ? new RegExp(`^(?:${m.path.value})$`) : undefined,
      method: m.method,
      headers: m.headers.map((hm) => ({ ...hm, re: hm.kind === 'regex' ? new RegExp(`^(?:${hm.value})$`) : undefined })),
    }));
    this.catchAll = this.anyHost && (this.matches.length === 0 || this.matches.every((m) => m.pathKind === PathKind.None && m.method === undefined && m.headers.length === 0));
  }

  matchesHost(host: string): boolean {
    if (this.anyHost || this.exactHosts.has(host)) return true;
    for (const s of this.wildcardSuffixes) {
      if (host.length > s.length && host.endsWith(s)) return true;
    }
    return false;
  }

  matchesRequest(buf: Buffer, h: HeadInfo, pathStart: number, pathEnd: number, method: string): boolean {
    if (this.matches.length === 0) return true;
    for (const m of this.matches) {
      if (m.method !== undefined && m.method !== method) continue;
      if (m.pathKind !== PathKind.None && !matchPath(m, buf, pathStart, pathEnd)) continue;
      let ok = true;
      for (const hm of m.headers) {
        const i = h.find(buf, hm.name);
        if (hm.kind === 'present') ok = i !== -1;
        else if (i === -1) ok = false;
        else if (hm.kind === 'exact') ok = h.value(buf, i) === hm.value;
        else ok = hm.re!.test(h.value(buf, i));
        if (!ok) break;
      }
      if (ok) return true;
    }
    return false;
  }

  /**
   * The same match for a request whose head is a header object (HTTP/2): `path` holds the path
   * without its query as latin1 bytes; header values are read from `headers` (lower-case names,
   * repeated fields joined with ", " as HTTP/1 would show them).
   */
  matchesFields(path: Buffer, method: string, headers: Record<string, string | string[] | undefined>): boolean {
    if (this.matches.length === 0) return true;
    for (const m of this.matches) {
      if (m.method !== undefined && m.method !== method) continue;
      if (m.pathKind !== PathKind.None && !matchPath(m, path, 0, path.length)) continue;
      let ok = true;
      for (const hm of m.headers) {
        const raw = headers[hm.name];
        const v = raw === undefined ? undefined : typeof raw === 'string' ? raw : raw.join(', ');
        if (hm.kind === 'present') ok = v !== undefined;
        else if (v === undefined) ok = false;
        else if (hm.kind === 'exact') ok = v === hm.value;
        else ok = hm.re!.test(v);
        if (!ok) break;
      }
      if (ok) return true;
    }
    return false;
  }

  /** A backend by weight, interleaved and deterministic (so small tests see exact shares). */
  pickBackend(): WeightedCluster | null {
    return this.rotation.pick() ?? null;
  }
}

const PATH_KINDS = { prefix: PathKind.Prefix, exact: PathKind.Exact, 'string-prefix': PathKind.StringPrefix, regex: PathKind.Regex } as const;

function matchPath(m: CompiledMatch, buf: Buffer, s: number, e: number): boolean {
  switch (m.pathKind) {
    case PathKind.Prefix:
      return pathMatches(buf, s, e, m.path, false);
    case PathKind.Exact:
      return pathMatches(buf, s, e, m.path, true);
    case PathKind.StringPrefix: {
      const want = m.path;
      if (e - s < want.length) return false;
      for (let i = 0; i < want.length; i++) if (buf[s + i] !== want[i]) return false;
      return true;
    }
    default:
      return m.pathRe!.test(buf.toString('latin1', s, e));
  }
}

/** Gateway API PathPrefix semantics: the prefix matches whole path segments ("/api" matches "/api/x", not "/apix"). */
function pathMatches(buf: Buffer, s: number, e: number, want: Buffer, exact: boolean): boolean {
  const n = want.length;
  if (e - s < n) return false;
  if (exact && e - s !== n) return false;
  for (let i = 0; i < n; i++) if (buf[s + i] !== want[i]) return false;
  if (exact || e - s === n) return true;
  return want[n - 1] === 0x2f || buf[s + n] === 0x2f;
}

export class RouteTable {
  /** The single catch-all route, when the table is just that (the one-line mode): no matching work. */
  readonly only: CompiledRoute | null;
  readonly needsHost: boolean;

  constructor(readonly routes: CompiledRoute[]) {
    this.only = routes.length === 1 && routes[0].catchAll ? routes[0] : null;
    this.needsHost = routes.some((r) => !r.matchesHost(''));
  }

  match(buf: Buffer, h: HeadInfo, host: string, pathStart: number, pathEnd: number, method: string): CompiledRoute | null {
    if (this.only !== null) return this.only;
    for (const r of this.routes) {
      if (r.matchesHost(host) && r.matchesRequest(buf, h, pathStart, pathEnd, method)) return r;
    }
    return null;
  }

  /** match() for a header object (HTTP/2); see CompiledRoute.matchesFields. */
  matchFields(host: string, path: Buffer, method: string, headers: Record<string, string | string[] | undefined>): CompiledRoute | null {
    if (this.only !== null) return this.only;
    for (const r of this.routes) {
      if (r.matchesHost(host) && r.matchesFields(path, method, headers)) return r;
    }
    return null;
  }
}
