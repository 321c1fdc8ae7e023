// MCP authorization: which clients (mesh identity, network) may call which tools, read which
// resources and get which prompts. Where an MCP policy targets a request's route (else its Server),
// every call that names a tool, resource or prompt is denied unless a rule grants it to the client;
// list results are filtered to what the client may use. Compiled once per snapshot.

import type { McpPolicySnapshot, McpSettings } from '../config/snapshot';
import { type ClientMatch, compileClients, matches } from '../policy/authorizer';
import { Target } from './jsonrpc';

interface CompiledRule {
  policy: string;
  rule: string;
  clients: ClientMatch;
  tools: RegExp | null;
  resources: RegExp | null;
  prompts: RegExp | null;
}

/** The rules that apply to one request: its route's MCP policies, else its Server's. */
export class McpGrants {
  constructor(
    readonly rules: readonly CompiledRule[],
    readonly audit: boolean,
  ) {}

  /** The rule granting `name` of `target` to the client, or null. */
  grant(target: Target, name: string, identity: string | null, address: string): CompiledRule | null {
    const subject = target === Target.Resource ? normalizeResourceUri(name) : name;
    for (const r of this.rules) {
      const re = target === Target.Tool ? r.tools : target === Target.Resource ? r.resources : r.prompts;
      if (re !== null && re.test(subject) && matches(r.clients, identity, address)) return r;
    }
    return null;
  }
}

export class McpPolicy {
  private readonly byRoute = new Map<string, McpGrants>();
  private readonly byServer = new Map<string, McpGrants>();
  /** Whether any policy exists (when none, nothing is ever denied). */
  readonly active: boolean;

  constructor(settings: McpSettings, routeNames: readonly string[]) {
    this.active = settings.policies.length > 0;
    const rules = (p: McpPolicySnapshot): CompiledRule[] =>
      p.rules.map((r) => ({
        policy: p.name,
        rule: r.name,
        clients: compileClients(r),
        tools: patterns(r.tools),
        resources: patterns(r.resources.map(normalizeResourceUri)),
        prompts: patterns(r.prompts),
      }));
    for (const p of settings.policies) {
      if (p.target.kind === 'server') {
        const prev = this.byServer.get(p.target.name);
        this.byServer.set(p.target.name, new McpGrants([...(prev?.rules ?? []), ...rules(p)], settings.audit));
        continue;
      }
      // A policy names a route as written in the file: every rule of it ("<route>/<rule>") counts.
      for (const name of routeNames) {
        if (name !== p.target.name && !name.startsWith(`${p.target.name}/`)) continue;
        const prev = this.byRoute.get(name);
        this.byRoute.set(name, new McpGrants([...(prev?.rules ?? []), ...rules(p)], settings.audit));
      }
    }
  }

  /** The grants that govern a request of `route` to `server` ('' when none); null: no MCP policy applies. */
  grantsFor(route: string, server: string): McpGrants | null {
    if (!this.active) return null;
    return this.byRoute.get(route) ?? (server === '' ? null : (this.byServer.get(server) ?? null));
  }
}

/** Glob patterns ("*": any run of characters) as one anchored regular expression; null when empty. */
function patterns(list: readonly string[]): RegExp | null {
  if (list.length === 0) return null;
  const alt = list.map((p) => p.split('*').map(escapeRe).join('.*'));
  return new RegExp(`^(?:${alt.join('|')})$`, 's');
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * A resource URI as rules see it: for a hierarchical URI, unreserved characters percent-decoded and
 * "." / ".." segments resolved, so that "file:///docs/../secret" cannot pass as something under
 * "file:///docs/"; other URIs as they are.
 */
export function normalizeResourceUri(uri: string): string {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*)([^?#]*)(.*)$/s.exec(uri);
  if (m === null) return uri;
  const [, prefix, path, rest] = m as unknown as [string, string, string, string];
  const decoded = path.replace(/%([0-9A-Fa-f]{2})/g, (x, hex: string) => {
    const c = String.fromCharCode(parseInt(hex, 16));
    return /[A-Za-z0-9\-._~/]/.test(c) ? c : x.toUpperCase();
  });
  const out: string[] = [];
  const segs = decoded.split('/');
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    if (seg === '.') continue;
    if (seg === '..') {
      if (out.length > 1) out.pop();
      continue;
    }
    out.push(seg);
  }
  let p = out.join('/');
  if ((decoded.endsWith('/.') || decoded.endsWith('/..')) && !p.endsWith('/')) p += '/';
  return prefix + p + rest;
}
