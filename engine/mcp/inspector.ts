// MCP inspection of Streamable HTTP (revisions 2025-03-26 to 2026-07-28): decides which requests are
// MCP, checks and authorizes the JSON-RPC messages of a request body, and gives each inspected
// request an McpCall that follows its response (a JSON body or an SSE stream, parsed as it flows) to
// count every operation's outcome and latency, filter list results and add the answers to refused
// batch entries. Protocol-neutral: the HTTP/1 and HTTP/2 exchanges feed it decoded body bytes.
// One per worker and snapshot; per-request work is a JSON parse of the body and map lookups.

import type { Direction, McpSettings } from '../config/snapshot';
import type { Counter, McpStats, MetricsRegistry } from '../metrics/registry';
import {
  BODY_TOO_LARGE,
  errorResponse,
  FORBIDDEN,
  HEADER_MISMATCH,
  idKey,
  INVALID_REQUEST,
  isStatelessRevision,
  Kind,
  KNOWN_METHODS,
  LIST_METHODS,
  type McpMessage,
  parseMcpBody,
  Target,
} from './jsonrpc';
import { type McpGrants, McpPolicy } from './policy';
import { formatSseEvent, type SseEvent, SseParser } from './sse-parser';
import { type LogFn, RateLimitedLog } from '../rate-limited-log';

/** What the proxy knows of a request from its head. */
export interface McpRequestHead {
  /** 'POST', 'GET', 'DELETE', ... */
  httpMethod: string;
  /** Lower-cased; '' when absent. */
  contentType: string;
  accept: string;
  /** MCP-Protocol-Version; '' when absent. */
  protocolVersion: string;
  mcpMethod: string | null;
  mcpName: string | null;
  sessionId: string | null;
  /** The request target has a `sessionId` query parameter (the legacy HTTP+SSE transport's message endpoint). */
  legacyQuery: boolean;
}

/** Who sent a request, and where it went. */
export interface McpOrigin {
  direction: Direction;
  route: string;
  /** The inbound Server covering the port ('' when none). */
  server: string;
  identity: string | null;
  address: string;
}

export const enum McpScope {
  /** Not MCP (inspectAll may still find MCP in it). */
  None = 0,
  /** Marked MCP (route or listener): inspected, observed, nothing denied. */
  Marked,
  /** An MCP policy governs it: deny by default, no request uninspected. */
  Governed,
}

export const enum Wants {
  No = 0,
  /** A POST: its body is buffered and inspected before it is sent on. */
  Body,
  /** A GET (SSE stream) or DELETE (session end): followed, not held. */
  Stream,
}

export interface McpVerdict {
  /** Non-zero: answer with this status and `replyBody` (JSON); nothing reaches the server. */
  replyStatus: number;
  replyBody: Buffer | null;
  /** A body to send instead of the original (a batch without its refused entries); null: as it came. */
  body: Buffer | null;
  /** Follows the response; null when there is nothing to follow. */
  call: McpCall | null;
}

export const enum ResponseMode {
  /** Forward as it is; nothing to read. */
  Pass = 0,
  /** Forward as it is; decoded body bytes go to observe(). */
  Observe,
  /** The body is rewritten: decoded bytes go to transform(), which returns what the client gets. */
  Transform,
}

const MAX_RESPONSE_JSON_BYTES = 8 * 1024 * 1024;
const MAX_ENDED_SESSIONS = 10_000;
const PASS: McpVerdict = Object.freeze({ replyStatus: 0, replyBody: null, body: null, call: null }) as McpVerdict;

export class McpInspector {
  readonly policy: McpPolicy;
  private readonly sessionsOpened = new Map<Direction, Counter>();
  private readonly sessionsActive = new Map<Direction, Counter>();
  private readonly streamsActive = new Map<Direction, Counter>();
  /** Sessions seen ending on this worker (a DELETE and a later 404 must not both count). */
  private readonly endedSessions = new Set<string>();
  /** Denials and audited calls (rate-limited: clients cause them). */
  private readonly decisions: RateLimitedLog;

  constructor(
    readonly settings: McpSettings,
    routeNames: readonly string[],
    readonly metrics: MetricsRegistry,
    log: LogFn,
    readonly now: () => number,
    /** Servers (policy.servers) marked MCP. */
    private readonly mcpServers: ReadonlySet<string> = new Set(),
  ) {
    this.policy = new McpPolicy(settings, routeNames);
    this.decisions = new RateLimitedLog(log, 'MCP decisions');
  }

  /**
   * Whether a route's requests are MCP: governed by an MCP policy (whether marked or not: a policy
   * must never be bypassed because a route was not marked), marked on the route or its listener, or not.
   */
  scope(route: string, routeMarked: boolean, listenerMarked: boolean, server: string): McpScope {
    if (this.policy.grantsFor(route, server) !== null) return McpScope.Governed;
    return routeMarked || listenerMarked || (server !== '' && this.mcpServers.has(server)) ? McpScope.Marked : McpScope.None;
  }

  /**
   * Whether a request is inspected: requests of an MCP route; with inspectAll, those that look like
   * MCP. The legacy HTTP+SSE transport passes untouched, except where a policy governs: there every
   * request with a body is inspected and every SSE stream followed (list answers filtered), whatever
   * it looks like.
   */
  wants(scope: McpScope, h: McpRequestHead): Wants {
    if (scope === McpScope.None && !this.settings.inspectAll) return Wants.No;
    const governed = scope === McpScope.Governed;
    switch (h.httpMethod) {
      case 'PUT':
      case 'PATCH':
        // Not MCP's methods; under a policy a body is inspected all the same (a server may not care).
        return governed ? Wants.Body : Wants.No;
      case 'POST':
        if (governed) return Wants.Body;
        if (scope === McpScope.Marked) return h.legacyQuery && h.sessionId === null && h.protocolVersion === '' ? Wants.No : Wants.Body;
        // Found by inspection: JSON bodies only, and not the legacy transport's message endpoint.
        return h.contentType.startsWith('application/json') && !h.legacyQuery ? Wants.Body : Wants.No;
      case 'GET':
        // A GET stream of Streamable HTTP carries a session (or a protocol version); the legacy
        // transport's SSE endpoint has neither and passes untouched (unless governed).
        return h.accept.includes('text/event-stream') && (governed || h.sessionId !== null || h.protocolVersion !== '') ? Wants.Stream : Wants.No;
      case 'DELETE':
        return h.sessionId !== null ? Wants.Stream : Wants.No;
      default:
        return Wants.No;
    }
  }

  /** A GET stream or a DELETE: followed for the stream and session gauges (and list filtering of replays). */
  follow(h: McpRequestHead, o: McpOrigin): McpCall {
    const grants = this.policy.grantsFor(o.route, o.server);
    return new McpCall(this, o, h, [], [], new Set(), grants !== null && !grants.audit ? grants : null, h.httpMethod === 'GET', false);
  }

  /**
   * A body past maxBodyBytes: refused (413) or passed uninspected, by the settings. On a route not
   * known to be MCP (inspectAll looking for MCP in JSON traffic) it always passes: it may be any API.
   */
  oversized(o: McpOrigin, routeMcp: boolean): McpVerdict {
    if (this.settings.oversizedBody === 'pass' || !routeMcp) {
      this.metrics.counter('mcp_uninspected_total', { direction: o.direction, reason: 'oversized-body' }).value++;
      return PASS;
    }
    this.rejected(o, 'body-too-large');
    return reply(413, errorResponse(null, BODY_TOO_LARGE, `Request body larger than ${this.settings.maxBodyBytes} bytes (the proxy's MCP inspection limit)`));
  }

  /** Inspects a POST's whole body: checks, authorization, metrics; the verdict says what to send. */
  inspect(h: McpRequestHead, body: Buffer, o: McpOrigin, routeMcp: boolean): McpVerdict {
    if (!h.contentType.startsWith('application/json')) {
      if (!routeMcp) return PASS;
      this.rejected(o, 'content-type');
      return reply(415, errorResponse(null, INVALID_REQUEST, `Unsupported Media Type: an MCP POST carries application/json, not "${h.contentType || 'nothing'}"`));
    }
    const parsed = parseMcpBody(body.toString('utf8'));
    if (!('messages' in parsed)) {
      if (!routeMcp) return PASS;
      this.rejected(o, parsed.code === INVALID_REQUEST ? 'invalid-request' : 'parse-error');
      return reply(400, errorResponse(null, parsed.code, parsed.message));
    }
    const msgs = parsed.messages;
    const mismatch = this.headerMismatch(h, parsed.batch, msgs);
    if (mismatch !== null) {
      this.rejected(o, 'header-mismatch');
      return reply(400, errorResponse(msgs.length === 1 ? msgs[0]!.id : null, HEADER_MISMATCH, mismatch));
    }
    const grants = this.policy.grantsFor(o.route, o.server);
    const pending: Pending[] = [];
    const unanswered: McpStats[] = [];
    const denied: Record<string, unknown>[] = [];
    const lists = new Set<string>();
    let kept: Record<string, unknown>[] | null = null;
    const start = this.now();
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i]!;
      const stats = this.statsFor(o, m);
      stats.requests++;
      if (grants !== null && m.target !== Target.None && !this.allowed(grants, m, o)) {
        stats.fail('denied');
        stats.latency.recordMs(0);
        if (m.kind === Kind.Request) denied.push(errorResponse(m.id, FORBIDDEN, `Forbidden: ${targetWord(m.target)} "${m.name}" is not allowed for this client by the proxy's MCP policy`));
        if (kept === null) kept = msgs.slice(0, i).map((x) => x.raw);
        continue;
      }
      if (kept !== null) kept.push(m.raw);
      if (m.kind === Kind.Request) {
        pending.push({ key: idKey(m.id), stats, method: m.method });
        if (grants !== null && !grants.audit && LIST_METHODS.has(m.method)) lists.add(idKey(m.id));
      } else {
        unanswered.push(stats);
      }
    }
    if (kept !== null && kept.length === 0) {
      // Nothing left to send: the proxy answers alone.
      if (denied.length === 0) return reply(202, null);
      return reply(200, parsed.batch ? denied : denied[0]!);
    }
    const call = new McpCall(this, o, h, pending, unanswered, lists, grants !== null && !grants.audit ? grants : null, false, parsed.batch);
    call.startMs = start;
    call.denied = denied;
    return { replyStatus: 0, replyBody: null, body: kept === null ? null : Buffer.from(JSON.stringify(kept)), call };
  }

  /**
   * MCP-Method / Mcp-Name (2026-07-28) must agree with the body: they are required from that
   * revision on, and checked whenever present, since an intermediary may route or authorize on them.
   */
  private headerMismatch(h: McpRequestHead, batch: boolean, msgs: McpMessage[]): string | null {
    const stateless = isStatelessRevision(h.protocolVersion);
    if (h.mcpMethod === null && h.mcpName === null && !stateless) return null;
    if (batch) return stateless ? `Revision ${h.protocolVersion} has no JSON-RPC batches` : 'Mcp-Method / Mcp-Name headers on a JSON-RPC batch';
    const m = msgs[0]!;
    if (m.kind === Kind.Response) return null;
    if (h.mcpMethod === null) return 'Mcp-Method header is required';
    if (h.mcpMethod !== m.method) return `Mcp-Method header "${h.mcpMethod}" does not match the body's method "${m.method}"`;
    if (m.target !== Target.None && m.method !== 'completion/complete') {
      if (h.mcpName === null) return `Mcp-Name header is required for ${m.method}`;
      if (h.mcpName !== m.name) return `Mcp-Name header "${h.mcpName}" does not match the body's ${m.target === Target.Resource ? 'uri' : 'name'} "${m.name}"`;
    } else if (h.mcpName !== null && m.target !== Target.None && h.mcpName !== m.name) {
      return `Mcp-Name header "${h.mcpName}" does not match the body`;
    }
    return null;
  }

  private allowed(grants: McpGrants, m: McpMessage, o: McpOrigin): boolean {
    const r = grants.grant(m.target, m.name, o.identity, o.address);
    if (r !== null) {
      this.metrics.counter('mcp_authz_allow_total', { direction: o.direction, route: o.route, policy: r.policy, rule: r.rule }).value++;
      return true;
    }
    const mode = grants.audit ? 'audit' : 'enforce';
    this.metrics.counter('mcp_authz_deny_total', { direction: o.direction, route: o.route, method: methodLabel(m.method), mode }).value++;
    this.decisions.info(grants.audit ? 'MCP authorization audit: would deny, allowed' : 'MCP call denied', { method: m.method, name: m.name, client: o.address, clientId: o.identity, route: o.route || null, server: o.server || null });
    return grants.audit;
  }

  statsFor(o: McpOrigin, m: McpMessage): McpStats {
    const method = m.kind === Kind.Response ? 'response' : methodLabel(m.method);
    // Which agent calls which tool: inbound calls over mesh TLS carry the caller's identity.
    return this.metrics.mcpStats(o.direction, o.route, method, m.target === Target.None ? '' : m.name, this.settings.maxNames, o.direction === 'inbound' ? (o.identity ?? '') : '');
  }

  private rejected(o: McpOrigin, reason: string): void {
    this.metrics.counter('mcp_rejected_total', { direction: o.direction, reason }).value++;
  }

  gauge(kind: 'streams' | 'sessions' | 'opened', d: Direction): Counter {
    const map = kind === 'streams' ? this.streamsActive : kind === 'sessions' ? this.sessionsActive : this.sessionsOpened;
    let c = map.get(d);
    if (c === undefined) {
      c = this.metrics.counter(kind === 'streams' ? 'mcp_streams_active' : kind === 'sessions' ? 'mcp_sessions_active' : 'mcp_sessions_opened_total', { direction: d });
      map.set(d, c);
    }
    return c;
  }

  sessionOpened(d: Direction): void {
    this.gauge('opened', d).value++;
    this.gauge('sessions', d).value++;
  }

  sessionEnded(d: Direction, id: string): void {
    if (this.endedSessions.has(id)) return;
    if (this.endedSessions.size >= MAX_ENDED_SESSIONS) this.endedSessions.clear();
    this.endedSessions.add(id);
    this.gauge('sessions', d).value--;
  }
}

interface Pending {
  key: string;
  stats: McpStats;
  method: string;
}

/** One inspected request's response, followed as it flows. Owned by one exchange; not shared. */
export class McpCall {
  startMs = 0;
  /** Answers for refused batch entries, added to the response. */
  denied: Record<string, unknown>[] = [];
  /** Transform: the status the client gets instead (a 202 that must carry refused entries' answers). */
  statusOverride = 0;
  /** Transform: the content type the client gets ('' keeps the upstream's). */
  contentTypeOverride = '';
  private sse: SseParser | null = null;
  private json: Buffer[] | null = null;
  private jsonBytes = 0;
  private mode = ResponseMode.Pass;
  private streamOpen = false;
  private out: Buffer[] = [];
  private ended = false;
  /** Transform: the upstream's body is dropped (the answer was replaced). */
  private discard = false;
  private status = 0;

  constructor(
    private readonly inspector: McpInspector,
    private readonly origin: McpOrigin,
    private readonly head: McpRequestHead,
    private readonly pending: Pending[],
    /** Notifications and client responses: answered by the HTTP status alone. */
    private readonly unanswered: McpStats[],
    /** Ids of list requests whose results are filtered. */
    private readonly lists: Set<string>,
    /** The grants list results are filtered by; null: none (no policy, or audit). */
    private readonly grants: McpGrants | null,
    /** A GET stream: list results in it (replays after a resumption) are filtered by shape. */
    private readonly getStream: boolean,
    private readonly batch: boolean,
  ) {
    this.startMs = inspector.now();
  }

  /** The response head arrived: how its body is to be handled. */
  onResponseHead(status: number, contentType: string, sessionId: string | null, contentEncoding = ''): ResponseMode {
    const ins = this.inspector;
    const d = this.origin.direction;
    const now = ins.now();
    this.status = status;
    if (this.head.sessionId !== null && (status === 404 || (this.head.httpMethod === 'DELETE' && status >= 200 && status < 300))) ins.sessionEnded(d, this.head.sessionId);
    if (sessionId !== null && this.head.sessionId === null && status < 300 && this.pending.some((p) => p.method === 'initialize')) ins.sessionOpened(d);
    for (const s of this.unanswered) {
      s.latency.recordMs(now - this.startMs);
      if (status >= 200 && status < 300) s.success++;
      else s.fail(`http-${status}`);
    }
    this.unanswered.length = 0;
    if (status < 200 || status >= 300) {
      this.failPending(`http-${status}`);
      this.ended = true;
      return (this.mode = ResponseMode.Pass);
    }
    const ct = contentType.toLowerCase();
    const transform = this.denied.length > 0 || this.lists.size > 0 || (this.getStream && this.grants !== null);
    if (contentEncoding !== '' && contentEncoding.toLowerCase() !== 'identity') {
      // Compressed although the proxy asked for identity: unreadable here. Counted; and where the
      // answer had to be filtered or completed, it is replaced rather than passed on unfiltered.
      this.failPending('content-encoding');
      this.ended = true;
      if (!transform) return (this.mode = ResponseMode.Pass);
      this.statusOverride = 502;
      this.contentTypeOverride = 'application/json';
      this.out.push(Buffer.from(JSON.stringify(errorResponse(null, -32603, `The server's answer was compressed (${contentEncoding}) and could not be inspected by the proxy`))));
      this.discard = true;
      return (this.mode = ResponseMode.Transform);
    }
    if (ct.startsWith('text/event-stream')) {
      this.streamOpen = true;
      ins.gauge('streams', d).value++;
      this.sse = new SseParser((ev) => this.onEvent(ev));
      if (transform && this.denied.length > 0) {
        // The refused entries' answers lead the stream (an event without an id leaves resumption alone).
        for (const e of this.denied) this.out.push(formatSseEvent({ id: null, event: '', data: JSON.stringify(e), retry: -1 }));
      }
      return (this.mode = transform ? ResponseMode.Transform : ResponseMode.Observe);
    }
    if (ct.startsWith('application/json')) {
      this.json = [];
      return (this.mode = transform ? ResponseMode.Transform : ResponseMode.Observe);
    }
    if (this.denied.length > 0 && status === 202) {
      // Everything sent on was a notification or a response: the refused requests' answers become the body.
      this.statusOverride = 200;
      this.contentTypeOverride = 'application/json';
      return (this.mode = ResponseMode.Transform);
    }
    return (this.mode = this.pending.length > 0 ? ResponseMode.Observe : ResponseMode.Pass);
  }

  /** Decoded body bytes, forwarded untouched by the caller. */
  observe(data: Buffer): void {
    if (this.sse !== null) this.sse.push(data);
    else if (this.json !== null) this.addJson(data);
  }

  /** Decoded body bytes; returns what the client gets now (possibly nothing). */
  transform(data: Buffer): Buffer | null {
    if (this.discard) return null;
    const sse = this.sse;
    if (sse !== null) {
      if (!sse.push(data)) {
        // An event past the parser's bound: it cannot be filtered, so it does not go out; the stream
        // ends here for the client with an error event (fail closed), and the rest is dropped.
        this.discard = true;
        this.out.push(formatSseEvent({ id: null, event: '', data: JSON.stringify(errorResponse(null, -32603, 'An event of the server\'s stream was too large to be inspected by the proxy')), retry: -1 }));
      }
    } else if (this.json !== null) this.addJson(data);
    return this.takeOut();
  }

  /** Bytes the client gets before any body byte (the refused entries' SSE events). */
  takeOut(): Buffer | null {
    const o = this.out;
    if (o.length === 0) return null;
    this.out = [];
    return o.length === 1 ? o[0]! : Buffer.concat(o);
  }

  /** The response ended: unanswered requests fail; in transform mode, the rest of the body. */
  finish(): Buffer | null {
    if (this.ended) return this.takeOut();
    this.ended = true;
    if (this.sse !== null) {
      this.sse.end();
      this.closeStream();
    } else if (this.json !== null) {
      const text = this.jsonBytes > MAX_RESPONSE_JSON_BYTES ? null : Buffer.concat(this.json).toString('utf8');
      this.json = null;
      let v: unknown = undefined;
      if (text !== null) {
        try {
          v = JSON.parse(text);
        } catch {
          v = undefined;
        }
      }
      if (v !== undefined) {
        const arr = Array.isArray(v) ? v : [v];
        for (const m of arr) this.onMessage(m);
        if (this.mode === ResponseMode.Transform) {
          const all = [...arr, ...this.denied];
          this.out.push(Buffer.from(JSON.stringify(this.batch || all.length > 1 ? all : all[0])));
        }
      } else if (this.mode === ResponseMode.Transform) {
        // Unreadable: the client must not get list results that were not filtered.
        this.out.push(Buffer.from(JSON.stringify(errorResponse(null, -32603, 'The server\'s response could not be inspected by the proxy'))));
      }
    } else if (this.statusOverride !== 0) {
      this.out.push(Buffer.from(JSON.stringify(this.batch ? this.denied : this.denied[0])));
    }
    this.failPending('no-response');
    return this.takeOut();
  }

  /** The exchange ended early (client gone, upstream reset): what was not answered fails. */
  abort(): void {
    if (this.ended) return;
    this.ended = true;
    this.closeStream();
    for (const s of this.unanswered) s.fail('aborted');
    this.unanswered.length = 0;
    this.failPending('aborted');
  }

  private closeStream(): void {
    if (this.streamOpen) {
      this.streamOpen = false;
      this.inspector.gauge('streams', this.origin.direction).value--;
    }
  }

  private addJson(data: Buffer): void {
    this.jsonBytes += data.length;
    // A copy: the bytes may lie in the upstream connection's read buffer, which its next read refills.
    if (this.jsonBytes <= MAX_RESPONSE_JSON_BYTES) this.json!.push(Buffer.from(data));
  }

  private failPending(error: string): void {
    const now = this.inspector.now();
    for (const p of this.pending) {
      p.stats.latency.recordMs(now - this.startMs);
      p.stats.fail(error);
    }
    this.pending.length = 0;
  }

  private onEvent(ev: SseEvent): void {
    const data = ev.data;
    const c = data.charCodeAt(0);
    let v: unknown = undefined;
    if (c === 0x7b || c === 0x5b) {
      try {
        v = JSON.parse(data);
      } catch {
        v = undefined;
      }
    }
    let changed = false;
    if (v !== undefined) {
      for (const m of Array.isArray(v) ? v : [v]) if (this.onMessage(m)) changed = true;
    }
    if (this.mode === ResponseMode.Transform) this.out.push(formatSseEvent(changed ? { ...ev, data: JSON.stringify(v) } : ev));
  }

  /** A JSON-RPC message of the response: matched to its request; a list result filtered in place (true: changed). */
  private onMessage(v: unknown): boolean {
    if (typeof v !== 'object' || v === null) return false;
    const o = v as Record<string, unknown>;
    if (o['method'] !== undefined || (o['result'] === undefined && o['error'] === undefined)) return false;
    const key = idKey(o['id']);
    let changed = false;
    const i = this.pending.findIndex((p) => p.key === key);
    if (i !== -1) {
      const p = this.pending[i]!;
      this.pending.splice(i, 1);
      p.stats.latency.recordMs(this.inspector.now() - this.startMs);
      const err = o['error'];
      if (err !== undefined) p.stats.fail(typeof err === 'object' && err !== null && typeof (err as Record<string, unknown>)['code'] === 'number' ? String((err as Record<string, unknown>)['code']) : 'error');
      else if (typeof o['result'] === 'object' && o['result'] !== null && (o['result'] as Record<string, unknown>)['isError'] === true) p.stats.fail('is-error');
      else p.stats.success++;
      if (this.lists.has(key)) changed = this.filter(o['result'], p.method);
    } else if (this.getStream && this.grants !== null) {
      changed = this.filter(o['result'], 'replay');
    }
    return changed;
  }

  /** Removes what the client may not use from a list result (true: something was removed). */
  private filter(result: unknown, method: string): boolean {
    const g = this.grants;
    if (g === null || typeof result !== 'object' || result === null) return false;
    const r = result as Record<string, unknown>;
    let removed = 0;
    const keep = (field: string, target: Target, key: string): void => {
      const list = r[field];
      if (!Array.isArray(list)) return;
      const out = list.filter((item) => {
        const name = typeof item === 'object' && item !== null ? (item as Record<string, unknown>)[key] : undefined;
        return typeof name === 'string' && g.grant(target, name, this.origin.identity, this.origin.address) !== null;
      });
      removed += list.length - out.length;
      r[field] = out;
    };
    keep('tools', Target.Tool, 'name');
    keep('prompts', Target.Prompt, 'name');
    keep('resources', Target.Resource, 'uri');
    keep('resourceTemplates', Target.Resource, 'uriTemplate');
    if (removed > 0) this.inspector.metrics.counter('mcp_list_filtered_total', { direction: this.origin.direction, route: this.origin.route, method }).value += removed;
    return removed > 0;
  }

  /** For tests and logs. */
  get responseStatus(): number {
    return this.status;
  }
}

function reply(status: number, body: unknown): McpVerdict {
  return { replyStatus: status, replyBody: body === null ? null : Buffer.from(JSON.stringify(body)), body: null, call: null };
}

function methodLabel(method: string): string {
  // Clients choose method names: only the spec's become labels.
  return KNOWN_METHODS.has(method) ? method : '_other';
}

function targetWord(t: Target): string {
  return t === Target.Tool ? 'tool' : t === Target.Resource ? 'resource' : 'prompt';
}
