// Inbound authorization, in Linkerd's shapes: a Server names a port; traffic to it is denied unless
// an AuthorizationPolicy targeting the Server (or the request's route) authorizes the client, by its
// mesh identity (MeshTLSAuthentication), its network (NetworkAuthentication), or both. Ports without
// a Server follow the default policy. Route targets are matched on the request path normalised and
// lower-cased, so that "/%61dmin", "//admin", "/./admin" and "/ADMIN" cannot slip past a rule for
// "/admin". Compiled once per snapshot; a decision is a few comparisons.

import * as net from 'node:net';
import type { AuthorizationSnapshot, PathMatch, PolicySnapshot, RouteSnapshot } from '../config/snapshot';

export interface Decision {
  allowed: boolean;
  /** The Server's name ('' when the default policy decided). */
  server: string;
  /** The authorization that allowed it, the default policy's name, or '' when nothing did. */
  policy: string;
  /** Would have been denied; allowed because the policy is in audit mode. */
  audited: boolean;
}

interface CompiledAuthz extends ClientMatch {
  a: AuthorizationSnapshot;
}

interface RoutePolicy {
  /** Tests of the route's path matches, on the normalised, lower-cased path. */
  paths: ((path: string) => boolean)[];
  authz: CompiledAuthz[];
}

export class Authorizer {
  private readonly servers: { name: string; port: number | undefined; listener: string | undefined; authz: CompiledAuthz[] }[] = [];
  private readonly routes: RoutePolicy[] = [];
  private readonly cluster = new net.BlockList();

  constructor(
    private readonly p: PolicySnapshot,
    routes: readonly RouteSnapshot[],
    /**
     * Per inbound listener, the ports a Server's `port` may name besides the listener's own: those
     * of the workload behind it (its default service's endpoints), as Linkerd's Servers name the
     * container port, not the proxy's.
     */
    private readonly appPorts: ReadonlyMap<string, readonly number[]> = new Map(),
  ) {
    for (const c of p.clusterNetworks) addCidr(this.cluster, c);
    const compiled = p.authorizations.map(compileAuthz);
    for (const s of p.servers) this.servers.push({ name: s.name, port: s.port, listener: s.listener, authz: compiled.filter((c) => c.a.target.kind === 'server' && c.a.target.name === s.name) });
    // A policy targets a route by its name in the file: every rule of it ("<route>/<rule>") counts.
    const routeAuthz = compiled.filter((c) => c.a.target.kind === 'route');
    for (const r of routes) {
      const authz = routeAuthz.filter((c) => c.a.target.name === r.name || r.name.startsWith(`${c.a.target.name}/`));
      if (authz.length === 0) continue;
      this.routes.push({ paths: r.matches.length === 0 ? [() => true] : r.matches.map((m) => pathTest(m.path)), authz });
    }
  }

  private serverFor(listener: string, port: number): Authorizer['servers'][number] | undefined {
    const app = this.appPorts.get(listener);
    return this.servers.find((s) => s.listener === listener || (s.listener === undefined && (s.port === port || (app !== undefined && app.includes(s.port!)))));
  }

  /** The name of the Server that covers this listener's port ('' when none). */
  serverName(listener: string, port: number): string {
    return this.serverFor(listener, port)?.name ?? '';
  }

  /** Whether a client may reach this listener's port (and, for HTTP, `path`). */
  decide(listener: string, port: number, identity: string | null, address: string, path: string | null): Decision {
    const server = this.serverFor(listener, port);
    if (server === undefined) return this.byDefault(identity, address);
    if (path !== null && this.routes.length > 0) {
      // Routes with policies of their own decide their paths, and every one whose match covers
      // the path must allow it (a catch-all route's policy cannot open a narrower one's paths).
      const norm = normalizePath(path).toLowerCase();
      let allowedBy = '';
      for (const rp of this.routes) {
        if (!rp.paths.some((t) => t(norm))) continue;
        const c = rp.authz.find((x) => matches(x, identity, address));
        if (c === undefined) return this.denied(server.name, '');
        if (allowedBy === '') allowedBy = c.a.name;
      }
      if (allowedBy !== '') return { allowed: true, server: server.name, policy: allowedBy, audited: false };
    }
    for (const c of server.authz) {
      if (matches(c, identity, address)) return { allowed: true, server: server.name, policy: c.a.name, audited: false };
    }
    return this.denied(server.name, '');
  }

  /** Denied; in audit mode let through, and marked so that it is logged and counted. */
  private denied(server: string, policy: string): Decision {
    return this.p.audit ? { allowed: true, server, policy, audited: true } : { allowed: false, server, policy, audited: false };
  }

  private byDefault(identity: string | null, address: string): Decision {
    const d = this.p.defaultPolicy;
    const allowed = d === 'all-unauthenticated' || (d === 'all-authenticated' && identity !== null) || (d === 'cluster-authenticated' && (identity !== null || inList(this.cluster, address)));
    return allowed ? { allowed, server: '', policy: d, audited: false } : this.denied('', d);
  }
}

/** A route's path match, case-insensitive, as a test of normalised paths. */
function pathTest(m: PathMatch | undefined): (path: string) => boolean {
  if (m === undefined) return () => true;
  const v = m.value.toLowerCase();
  switch (m.kind) {
    case 'exact':
      return (p) => p === v;
    case 'string-prefix':
      return (p) => p.startsWith(v);
    case 'regex': {
      const re = new RegExp(`^(?:${m.value})$`, 'i');
      return (p) => re.test(p);
    }
    case 'prefix': {
      const base = v.replace(/\/+$/, '');
      return (p) => base === '' || p === base || p.startsWith(`${base}/`);
    }
  }
}

function compileAuthz(a: AuthorizationSnapshot): CompiledAuthz {
  return { a, ...compileClients(a) };
}

/** Which clients a rule names: mesh identities, networks, or both (absent: any). */
export interface ClientMatch {
  identities: RegExp[] | null;
  networks: { list: net.BlockList; except: net.BlockList } | null;
}

export function compileClients(a: { identities?: string[]; networks?: { cidr: string; except: string[] }[] }): ClientMatch {
  const identities = a.identities === undefined ? null : a.identities.map(identityPattern);
  let networks: ClientMatch['networks'] = null;
  if (a.networks !== undefined) {
    const list = new net.BlockList();
    const except = new net.BlockList();
    for (const n of a.networks) {
      addCidr(list, n.cidr);
      for (const e of n.except) addCidr(except, e);
    }
    networks = { list, except };
  }
  return { identities, networks };
}

export function matches(c: ClientMatch, identity: string | null, address: string): boolean {
  if (c.identities !== null && (identity === null || !c.identities.some((re) => re.test(identity)))) return false;
  if (c.networks !== null && (!inList(c.networks.list, address) || inList(c.networks.except, address))) return false;
  return true;
}

/** "*" is any identity; a "*" segment of a SPIFFE ID matches one path segment. */
function identityPattern(p: string): RegExp {
  if (p === '*') return /^spiffe:\/\/.+$/;
  return new RegExp(`^${p.split('*').map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[^/]+')}$`);
}

function addCidr(list: net.BlockList, cidr: string): void {
  const [addr, bits] = cidr.split('/');
  const family = net.isIP(addr!) === 6 ? 'ipv6' : 'ipv4';
  if (bits === undefined) list.addAddress(addr!, family);
  else list.addSubnet(addr!, Number(bits), family);
}

function inList(list: net.BlockList, address: string): boolean {
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  const family = net.isIP(a) === 6 ? 'ipv6' : 'ipv4';
  return net.isIP(a) !== 0 && list.check(a, family);
}

/**
 * A path as an authorization rule must see it, whichever way the app behind decodes it: the
 * absolute-form's scheme and authority dropped, unreserved characters percent-decoded ("%61" is
 * "a"), encoded and back slashes taken as slashes, ";params" cut from segments, repeated slashes
 * merged, "." and ".." segments resolved (RFC 3986 section 5.2.4).
 */
export function normalizePath(path: string): string {
  const q = path.search(/[?#]/);
  let p = q === -1 ? path : path.slice(0, q);
  const abs = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/]*/.exec(p);
  if (abs !== null) p = p.slice(abs[0].length);
  p = p.replace(/%([0-9A-Fa-f]{2})/g, (m, hex: string) => {
    const c = String.fromCharCode(parseInt(hex, 16));
    return /[A-Za-z0-9\-._~/\\;]/.test(c) ? c : m.toUpperCase();
  });
  p = p.replace(/\\/g, '/');
  const out: string[] = [];
  for (const raw of p.split('/')) {
    const semi = raw.indexOf(';');
    const seg = semi === -1 ? raw : raw.slice(0, semi);
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return `/${out.join('/')}${p.endsWith('/') && out.length > 0 ? '/' : ''}`;
}
