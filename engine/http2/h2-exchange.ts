// One HTTP/2 request stream from a client: routed and authorized from its header object, admitted by
// the service's queue, balanced, sent as an HTTP/2 stream or an HTTP/1.1 exchange (UpstreamCall), its
// body forwarded with flow control both ways and its trailers passed on. gRPC is understood: the
// grpc-status (trailers or trailers-only) classifies the response and feeds the balancer, grpc-timeout
// bounds the request, retryable gRPC codes are retried where the route says so, and local replies
// are gRPC statuses. A client's RST_STREAM cancels the upstream attempt.

import { Outcome } from '../balance/balancer';
import { Admission, type QueueWaiter, type RequestQueue } from '../balance/request-queue';
import type { Cluster } from '../cluster';
import type { ListenerRuntime, ProxyContext } from '../context';
import { ErrorCode, errorInfo, grpcStatusFor } from '../errors';
import { hostWithoutPort } from '../http1/authority';
import { BodyReplay } from '../http1/request-replay';
import { parseRetryAfter } from '../http1/request-replay';
import type { Http1Upstream } from '../http1/upstream';
import type { HttpStats, ResponseStats } from '../metrics/registry';
import type { Endpoint } from '../pool/endpoint';
import { AttemptFailure, type CompiledRetry } from '../retry/retry-policy';
import type { CompiledRoute } from '../router/route-table';
import { grpcServerFailure, grpcShed, grpcStatusOf, isGrpc, parseGrpcTimeout } from './grpc';
import { H1Call, http1RequestHead } from './h1-call';
import { debugEnabled, debugLog } from '../debug';
import { H2Error } from './codec/frames';
import type { H2ServerStream, OutHeaders, StreamOwner } from './codec/server-stream';
import { type CallOwner, H2Call, type HeaderBlock, type UpstreamCall } from './upstream-call';
import { type McpCall, type McpOrigin, McpScope, ResponseMode, Wants } from '../mcp/inspector';
import { h2McpHead, McpBodyHold } from './h2-mcp';


/** Linkerd's headers: the caller's mesh identity for the app; the HTTP version a peer proxy upgraded from. */
export const CLIENT_ID_HEADER = 'l5d-client-id';
export const ORIG_PROTO_HEADER = 'l5d-orig-proto';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'TRACE']);
const DEBUG = debugEnabled('h2');

/** What an exchange needs of the client connection that carries it. */
export interface H2Connection {
  readonly lr: ListenerRuntime;
  readonly peerIdentity: string | null;
  readonly remoteAddress: string;
  /** Where the client was going when it was redirected to the proxy; null: not redirected. */
  readonly originalDst: [string, number] | null;
  exchangeDone(x: H2Exchange): void;
  statsFor(authority: string, route: CompiledRoute | null, cluster: Cluster | null, zone: string): HttpStats;
}

const enum State {
  Start = 0,
  Queued,
  /** An attempt in flight, or a retry waiting out its backoff. */
  Active,
  Done,
}

export class H2Exchange implements CallOwner, QueueWaiter, StreamOwner {
  private state = State.Start;
  private readonly lr: ListenerRuntime;
  private readonly method: string;
  private readonly authority: string;
  private readonly grpc: boolean;
  private reqDone: boolean;
  private call: UpstreamCall | null = null;
  private callIsH2 = false;
  private responded = false;
  private waitForTrailers = false;
  /** The whole answer was handed to the client's stream (the stream's close is then no cancel). */
  private responseEnded = false;
  private trailers: HeaderBlock | null = null;
  /** The request goes to the app as HTTP/1.1 (a peer proxy carried it over HTTP/2). */
  private origHttp1 = false;

  private route: CompiledRoute | null = null;
  private cluster: Cluster | null = null;
  private endpoint: Endpoint | null = null;
  private stats: HttpStats | null = null;
  private responseStats: ResponseStats | null = null;
  private status = 0;
  /** grpc-status of a trailers-only answer (-1: none). */
  private headGrpc = -1;
  /** The verdict for the balancer waits for the trailers (a gRPC answer). */
  private outcomeAtEnd = false;

  private retry: CompiledRetry | null = null;
  private retries = 0;
  private body: BodyReplay | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private previousEndpoint: Endpoint | null = null;
  private probe = false;
  /** Attempts replayed after a refusal (not processed upstream): bounded, and no retry spent. */
  private replayed = 0;
  private slot: RequestQueue | null = null;

  // MCP: the inspected request's call and response handling; a POST body held for inspection, and
  // the body to send ahead of the stream's own once it was inspected.
  private mcpCall: McpCall | null = null;
  private mcpMode = ResponseMode.Pass;
  private hold: McpBodyHold | null = null;
  private preBody: Buffer | null = null;
  /** preBody is the whole body (else its start: the rest streams after it, and it is not retried). */
  private preBodyComplete = true;

  private readonly reqStartMs: number;
  private attemptStartMs = 0;
  private deadlineMs = 0;
  private responseTimeoutMs = 0;
  private responseDeadlineMs = 0;
  private idleTimeoutMs = 0;
  private ioTicks = 0;
  /** The client's stream did not take the last chunk (its window is closed): the upstream is paused. */
  private clientFull = false;
  private sweptTicks = 0;
  private idleSinceMs = 0;
  private sentBytes = 0;
  private receivedBytes = 0;

  constructor(
    private readonly ctx: ProxyContext,
    private readonly conn: H2Connection,
    private readonly stream: H2ServerStream,
    private readonly headers: HeaderBlock,
    endStream: boolean,
  ) {
    this.lr = conn.lr;
    this.reqStartMs = ctx.clock.now();
    this.method = String(headers[':method'] ?? '');
    this.authority = String(headers[':authority'] ?? headers['host'] ?? '');
    this.grpc = isGrpc(headers['content-type']);
    this.reqDone = endStream;
    stream.owner = this;
  }

  /** Routes, authorizes and admits the request. */
  start(): void {
    const h = this.headers;
    const lr = this.lr;
    const now = this.reqStartMs;
    if (lr.direction === 'inbound') {
      // The proxy's word alone reaches the app: a client's own copy is dropped.
      delete h[CLIENT_ID_HEADER];
      if (h[ORIG_PROTO_HEADER] !== undefined) {
        this.origHttp1 = h[ORIG_PROTO_HEADER] === 'HTTP/1.1' || h[ORIG_PROTO_HEADER] === 'HTTP/1.0';
        delete h[ORIG_PROTO_HEADER];
      }
      if (this.conn.peerIdentity !== null) h[CLIENT_ID_HEADER] = this.conn.peerIdentity;
    }
    if (this.method === 'CONNECT') {
      // Tunnels over HTTP/2 (RFC 8441) are not proxied.
      this.reply(ErrorCode.BadRequestLine);
      return;
    }
    const rawPath = String(h[':path'] ?? '/');
    const q = rawPath.indexOf('?');
    const path = q === -1 ? rawPath : rawPath.slice(0, q);
    const host = hostWithoutPort(this.authority);
    // The one-line table (a single catch-all) needs no path bytes: none are made per request then.
    const route = lr.table.only ?? lr.table.matchFields(host, Buffer.from(path, 'latin1'), this.method, h);
    let cluster: Cluster | null;
    if (route !== null) cluster = route.pickBackend()?.cluster ?? null;
    else cluster = this.ctx.clusterFor(lr, this.conn.originalDst);
    this.route = route;
    this.cluster = cluster;
    const authz = lr.authorizer;
    if (authz !== null) {
      const peer = this.conn.peerIdentity;
      const address = this.conn.remoteAddress;
      const d = authz.decide(lr.name, lr.snapshot.address.port, peer, address, path);
      this.ctx.authzDecision('http', d, peer, address, path);
      if (!d.allowed) {
        this.reply(ErrorCode.Unauthorized);
        return;
      }
    }
    if (route === null && cluster === null) {
      this.reply(ErrorCode.NoRoute);
      return;
    }
    if (cluster === null || cluster.endpoints.length === 0) {
      this.reply(ErrorCode.NoEndpoints);
      return;
    }
    const mcp = this.ctx.mcp;
    const server = mcp === null ? '' : (lr.authorizer?.serverName(lr.name, lr.snapshot.address.port) ?? '');
    const scope = mcp === null ? McpScope.None : mcp.scope(route?.name ?? '', route !== null && route.mcp, lr.snapshot.mcp === true, server);
    const routeMcp = scope !== McpScope.None;
    if (mcp !== null && (routeMcp || mcp.settings.inspectAll)) {
      const head = h2McpHead(h, this.method, rawPath);
      const wants = mcp.wants(scope, head);
      const origin: McpOrigin = { direction: lr.direction, route: route?.name ?? '', server, identity: this.conn.peerIdentity, address: this.conn.remoteAddress };
      // An inspected answer must be readable: no content coding (an absent Accept-Encoding would allow any).
      if (wants !== Wants.No) h['accept-encoding'] = 'identity';
      if (wants === Wants.Stream) this.mcpCall = mcp.follow(head, origin);
      else if (wants === Wants.Body) {
        // The body is read to its end (or the limit) before anything goes upstream.
        this.hold = new McpBodyHold(head, origin, routeMcp, mcp.settings.maxBodyBytes);
        if (this.reqDone) this.collectDone(false);
        return;
      }
    }
    this.admit(now);
  }

  /** The held body is complete (or too large): inspected; then answered here, or sent on. */
  private collectDone(oversized: boolean): void {
    const hold = this.hold!;
    this.hold = null;
    const { verdict, body } = hold.judge(this.ctx.mcp!, oversized);
    if (verdict.replyStatus !== 0) {
      this.jsonReply(verdict.replyStatus, verdict.replyBody);
      return;
    }
    this.mcpCall = verdict.call;
    this.preBody = verdict.body ?? body;
    this.preBodyComplete = !oversized;
    if (!oversized) this.headers['content-length'] = String(this.preBody.length);
    this.admit(this.ctx.clock.now());
  }

  /** A local MCP answer (a JSON-RPC error, or the answers to refused calls). */
  private jsonReply(status: number, body: Buffer | null): void {
    if (this.stats === null) {
      this.stats = this.conn.statsFor(this.authority, this.route, this.cluster, '');
      this.stats.requests++;
      this.stats.inFlight++;
    }
    this.status = status;
    const s = this.stream;
    if (!s.destroyed && !s.headersSent) {
      try {
        if (body === null) s.respond({ ':status': status, 'l5d-proxy-error': 'mcp' }, { endStream: true });
        else {
          s.respond({ ':status': status, 'content-type': 'application/json', 'content-length': String(body.length), 'l5d-proxy-error': 'mcp' });
          s.end(body);
        }
      } catch {
        // Closed meanwhile.
      }
    }
    if (!this.reqDone) s.resume();
    this.finish(status < 300, status < 300 ? '' : 'mcp', -1);
  }

  /** Timeouts, retries and the queue's admission, once the request may go on. */
  private admit(now: number): void {
    const h = this.headers;
    const route = this.route;
    const cluster = this.cluster!;
    const lr = this.lr;
    const t = cluster.timeouts;
    const requestTimeoutMs = (route !== null && route.requestTimeoutMs) || t.requestMs;
    this.deadlineMs = requestTimeoutMs > 0 ? now + requestTimeoutMs : 0;
    // The client's own deadline bounds the whole exchange too (gRPC's grpc-timeout).
    const grpcTimeoutMs = this.grpc ? parseGrpcTimeout(h['grpc-timeout']) : -1;
    if (grpcTimeoutMs > 0 && (this.deadlineMs === 0 || now + grpcTimeoutMs < this.deadlineMs)) this.deadlineMs = now + grpcTimeoutMs;
    this.responseTimeoutMs = (route !== null && route.responseTimeoutMs) || t.responseMs || lr.http.responseTimeoutMs;
    this.idleTimeoutMs = (route !== null && route.idleTimeoutMs) || t.idleMs;
    this.idleSinceMs = now;
    const retry = (route !== null && route.retry) || cluster.retry;
    if (retry.maxRetries > 0) {
      this.retry = retry;
      retry.budget.deposit(now);
      const cl = Number(h['content-length'] ?? -1);
      if (!this.reqDone && !(cl > retry.maxBodyBytes)) this.body = new BodyReplay(retry.maxBodyBytes);
      if (this.body !== null && this.preBody !== null) this.body.add(this.preBody, false);
    }
    switch (cluster.queue.admit(this, now)) {
      case Admission.Go:
        this.slot = cluster.queue;
        this.state = State.Active;
        this.attempt(now);
        return;
      case Admission.Queued:
        this.state = State.Queued;
        this.stream.pause();
        return;
      case Admission.Shed:
        cluster.counters.shed.value++;
        this.reply(ErrorCode.LoadShed);
        return;
      default:
        cluster.counters.failFast.value++;
        this.reply(ErrorCode.FailFast);
    }
  }

  onSlot(): void {
    if (this.state !== State.Queued) {
      this.cluster?.queue.release();
      return;
    }
    this.slot = this.cluster!.queue;
    this.state = State.Active;
    this.guard(() => this.attempt(this.ctx.clock.now()));
  }

  onFailFast(): void {
    if (this.state !== State.Queued) return;
    this.cluster!.counters.failFast.value++;
    this.reply(ErrorCode.FailFast);
  }

  /** One attempt: an endpoint from the balancer, a call on it, the body so far replayed into it. */
  private attempt(now: number): void {
    const cluster = this.cluster!;
    const b = cluster.balancer;
    const e = b.pickAvoiding(this.previousEndpoint);
    this.probe = b.lastPickWasProbe;
    if (e === null) {
      this.reply(ErrorCode.NoEndpoints);
      return;
    }
    if (e.identity !== null && this.ctx.meshTls === null) {
      this.reply(ErrorCode.NoIdentity);
      return;
    }
    this.endpoint = e;
    if (this.stats === null) {
      this.stats = this.conn.statsFor(this.authority, this.route, cluster, e.zone);
      this.stats.requests++;
      this.stats.inFlight++;
    }
    e.inFlight++;
    const traffic = e.traffic;
    if (traffic !== null) traffic.requests.value++;
    this.attemptStartMs = now;
    this.responseDeadlineMs = this.responseTimeoutMs > 0 ? now + this.responseTimeoutMs : 0;
    this.sentBytes = 0;
    this.receivedBytes = 0;
    const replay = this.body;
    const bodyFollows = !this.reqDone || (replay !== null && replay.bytes > 0) || (this.preBody !== null && this.preBody.length > 0);
    const proto = cluster.snapshot.protocol ?? 'auto';
    // A meshed endpoint is another Bowline: HTTP/2 over mutual TLS unless the service says http1.
    // Elsewhere HTTP/2 unless the service says http1, or a peer proxy carried an HTTP/1 request here (auto).
    const h2 = e.identity !== null ? proto !== 'http1' : proto === 'h2c' || (proto === 'auto' && !this.origHttp1);
    const h = this.headers;
    if (h2 && e.identity !== null && this.origHttp1) h[ORIG_PROTO_HEADER] = 'HTTP/1.1';
    this.callIsH2 = h2;
    this.call = h2
      ? new H2Call(this.ctx, this, e, this.lr.dstTcp, h, !bodyFollows, now)
      : new H1Call(this.ctx, this, e as Endpoint<Http1Upstream>, this.lr.dstTcp, this.lr.http.maxHeadBytes, http1RequestHead(h, bodyFollows && h['content-length'] === undefined, ''), bodyFollows && h['content-length'] === undefined, this.method === 'HEAD', now);
    if (replay !== null && this.retries + this.replayed > 0) {
      for (const c of replay.chunks) {
        this.sentBytes += c.length;
        this.call.write(c);
      }
    } else if (this.preBody !== null && this.preBody.length > 0) {
      // An inspected body (whole, or its start when it was too large to inspect).
      this.sentBytes += this.preBody.length;
      this.call.write(this.preBody);
    }
    if (this.reqDone) {
      if (bodyFollows) this.call.end();
    } else this.stream.resume();
  }

  onRequestData(chunk: Buffer): void {
    const hold = this.hold;
    if (hold !== null) {
      if (!hold.add(chunk)) this.collectDone(true);
      return;
    }
    this.ioTicks++;
    this.sentBytes += chunk.length;
    const body = this.body;
    if (body !== null) body.add(chunk, false);
    const call = this.call;
    if (call === null) {
      // No attempt in flight (a retry's backoff): the chunk waits in the replay, the client is held.
      this.stream.pause();
      return;
    }
    if (!call.write(chunk)) this.stream.pause();
  }

  onRequestEnd(): void {
    this.reqDone = true;
    if (this.hold !== null) {
      this.collectDone(false);
      return;
    }
    this.call?.end();
  }

  onCallDrain(): void {
    if (!this.reqDone && this.call !== null) this.stream.resume();
  }

  onClientDrain(): void {
    this.clientFull = false;
    this.call?.resume();
  }

  onCallHead(status: number, headers: HeaderBlock, endStream: boolean): void {
    this.ioTicks++;
    const now = this.ctx.clock.now();
    const cluster = this.cluster!;
    const e = this.endpoint!;
    const b = cluster.balancer;
    const g = endStream || headers['grpc-status'] !== undefined ? grpcStatusOf(headers) : -1;
    this.headGrpc = g;
    // Balancer feedback: latency to the response head (a shed answer counts as a slow one) and the
    // verdict, which for a gRPC answer with a body waits for its trailers.
    let rttMs = now - this.attemptStartMs;
    const shedAs = g >= 0 && grpcShed(g) ? (g === 14 ? 503 : 429) : status;
    if (b.penalizes(shedAs)) {
      const ra = headers['retry-after'];
      rttMs = Math.max(rttMs, b.penaltyMs(shedAs, typeof ra === 'string' ? parseRetryAfter(ra, Date.now()) : -1));
    }
    b.observe(e, rttMs);
    this.outcomeAtEnd = g < 0 && isGrpc(headers['content-type']) && !endStream;
    if (!this.outcomeAtEnd) b.outcome(e, status >= 500 || (g >= 0 && grpcServerFailure(g)) ? Outcome.Failure : Outcome.Success, this.probe);
    const r = this.retry;
    if (r !== null && ((status >= 400 && r.retriesStatus(status)) || (g > 0 && r.retriesGrpc(g)))) {
      const delay = this.retryDelay(-1, status);
      if (delay >= 0) {
        // Nothing of this answer has reached the client: drop it and try again.
        this.dropCall(-1);
        this.scheduleRetry(delay);
        return;
      }
    }
    this.status = status;
    this.responded = true;
    const rs = this.stats!.response(status);
    this.responseStats = rs;
    rs.latency.recordMs(now - this.reqStartMs);
    const call = this.mcpCall;
    if (call !== null) {
      const ct = headers['content-type'];
      const sid = headers['mcp-session-id'];
      const ce = headers['content-encoding'];
      this.mcpMode = call.onResponseHead(status, typeof ct === 'string' ? ct : '', typeof sid === 'string' ? sid : null, typeof ce === 'string' ? ce : '');
      if (call.statusOverride === 502) delete headers['content-encoding'];
      if (this.mcpMode === ResponseMode.Transform) {
        // The body is rewritten: its length changes, and it ends here when the upstream's did.
        delete headers['content-length'];
        if (call.statusOverride !== 0) {
          headers[':status'] = String(call.statusOverride);
          headers['content-type'] = call.contentTypeOverride;
        }
        try {
          this.stream.respond(headers as OutHeaders, { endStream: false });
          const pre = call.takeOut();
          if (pre !== null) this.stream.write(pre);
          if (endStream) {
            this.responseEnded = true;
            const rest = call.finish();
            this.mcpCall = null;
            this.stream.end(rest ?? undefined);
          }
        } catch {
          this.dropCall(Outcome.Cancelled);
          this.finish(false, 'client-closed', -1);
        }
        return;
      }
    }
    this.waitForTrailers = !endStream && this.callIsH2;
    this.responseEnded = endStream;
    try {
      this.stream.respond(headers as OutHeaders, { endStream, waitForTrailers: this.waitForTrailers });
    } catch (err) {
      // The client stream went away meanwhile (closed, reset).
      this.dropCall(Outcome.Cancelled);
      this.finish(false, 'client-closed', -1);
    }
  }

  onCallData(chunk: Buffer): boolean {
    this.ioTicks++;
    this.receivedBytes += chunk.length;
    const s = this.stream;
    if (s.destroyed || s.writableEnded) return true;
    let out: Buffer | null = chunk;
    if (this.mcpMode !== ResponseMode.Pass) {
      if (this.mcpMode === ResponseMode.Observe) this.mcpCall?.observe(chunk);
      else out = this.mcpCall?.transform(chunk) ?? null;
      if (out === null) return true;
    }
    const ok = s.write(out);
    if (!ok) this.clientFull = true;
    return ok;
  }

  onCallEnd(trailers: HeaderBlock | null): void {
    this.ioTicks++;
    const g = trailers !== null ? grpcStatusOf(trailers) : this.headGrpc;
    const e = this.endpoint!;
    this.call = null;
    e.inFlight--;
    this.flushTraffic(e);
    if (this.outcomeAtEnd) this.cluster!.balancer.outcome(e, g >= 0 && grpcServerFailure(g) ? Outcome.Failure : Outcome.Success, this.probe);
    const s = this.stream;
    const call = this.mcpCall;
    if (call !== null) {
      this.mcpCall = null;
      const rest = call.finish();
      if (this.mcpMode === ResponseMode.Transform && rest !== null && !s.destroyed && !s.writableEnded) s.write(rest);
    }
    if (!s.destroyed && !s.writableEnded) {
      this.trailers = trailers;
      this.responseEnded = true;
      // With waitForTrailers, end() asks for them ('wantTrailers'): sent then, or an empty end.
      s.end();
    }
    this.finish(this.status < 500 && (g <= 0), g > 0 ? 'grpc-status' : '', g);
  }

  onWantTrailers(): void {
    const t = this.trailers;
    this.trailers = null;
    try {
      // Empty trailers become an empty DATA frame with END_STREAM (node:http2 does that).
      this.stream.sendTrailers(t === null ? {} : (stripPseudo(t) as OutHeaders));
    } catch {
      // The stream closed meanwhile.
    }
  }

  onCallError(code: ErrorCode, started: boolean, refused: boolean): void {
    const e = this.endpoint;
    this.call = null;
    if (e !== null) {
      e.inFlight--;
      this.flushTraffic(e);
    }
    if (started || this.responded) {
      // Part of the answer went out: the client's stream is reset, as the upstream's was.
      this.resetClient(`upstream failed mid-answer: ${errorInfo(code).name}`);
      this.finish(false, errorInfo(code).name, -1);
      return;
    }
    const replayable = this.reqDone ? this.body === null || !this.body.overflow || this.body.bytes === 0 : false;
    // Refused streams (not processed upstream) go again once on a fresh connection: no retry spent.
    if (refused && this.replayed < 3 && e !== null && (this.preBody !== null ? this.preBodyComplete && this.reqDone : this.body !== null ? !this.body.overflow : this.reqDone && this.sentBytes === 0) && replayable) {
      this.replayed++;
      this.previousEndpoint = null;
      this.attempt(this.ctx.clock.now());
      return;
    }
    if (e !== null) {
      this.cluster!.balancer.outcome(e, code === ErrorCode.UpstreamConnectFailed ? Outcome.ConnectFailure : Outcome.Failure, this.probe);
      const f = code === ErrorCode.UpstreamConnectFailed ? AttemptFailure.Connect : code === ErrorCode.UpstreamReset ? AttemptFailure.Reset : AttemptFailure.BadResponse;
      const delay = this.retryDelay(f, 0);
      if (delay >= 0) {
        this.scheduleRetry(delay);
        return;
      }
    }
    this.reply(code);
  }

  /** The client reset its stream or went away: the upstream attempt is cancelled with it. */
  onClientClose(): void {
    // The whole answer was handed over: the upstream's end finishes the exchange (it may be under way).
    if (this.state === State.Done || this.responseEnded) return;
    if (this.state === State.Queued) this.cluster?.queue.cancel(this);
    this.clearRetryTimer();
    this.dropCall(Outcome.Cancelled);
    this.finish(false, this.grpc ? 'cancelled' : 'client-closed', -1);
  }

  /**
   * Whether the failed attempt is retried, and after how long (-1: not retried). `failure` is an
   * AttemptFailure, or -1 for an answer with `status`. Spends a retry from the budget when yes.
   */
  private retryDelay(failure: number, status: number): number {
    const r = this.retry;
    if (r === null || this.responded || this.state === State.Done) return -1;
    if (failure >= 0 && !r.retriesFailure(failure as AttemptFailure)) return -1;
    if (failure < 0 && status >= 400 && !r.retriesStatus(status) && !r.retriesGrpc(this.headGrpc)) return -1;
    if (failure !== AttemptFailure.Connect && !r.mayResend(IDEMPOTENT.has(this.method) || this.grpc)) return -1;
    // The body must be replayable from its start.
    if (this.preBody !== null ? !this.preBodyComplete || !this.reqDone : this.body !== null ? this.body.overflow : !this.reqDone || this.sentBytes > 0) return -1;
    const delay = r.nextDelay(this.retries, this.deadlineMs, this.ctx.clock.now(), this.ctx.rng());
    if (delay >= 0) this.retries++;
    return delay;
  }

  private scheduleRetry(delayMs: number): void {
    this.previousEndpoint = this.endpoint;
    this.retryTimer = setTimeout(retryFired, delayMs, this);
  }

  onRetryTimer(): void {
    this.retryTimer = null;
    if (this.state !== State.Active || this.call !== null) return;
    this.guard(() => {
      const now = this.ctx.clock.now();
      if (this.deadlineMs !== 0 && now > this.deadlineMs) this.reply(ErrorCode.RequestTimeout);
      else this.attempt(now);
    });
  }

  private clearRetryTimer(): void {
    if (this.retryTimer !== null) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
  }

  /** Ends the current attempt upstream; `outcome` goes to the balancer (-1: already reported). */
  private dropCall(outcome: Outcome | -1): void {
    const call = this.call;
    if (call === null) return;
    this.call = null;
    call.cancel();
    const e = this.endpoint!;
    e.inFlight--;
    this.flushTraffic(e);
    if (outcome !== -1 && this.cluster !== null) this.cluster.balancer.outcome(e, outcome, this.probe);
  }

  /** A local answer (no route, denied, timeouts, failures): a gRPC status for gRPC clients. */
  private reply(code: ErrorCode): void {
    const info = errorInfo(code);
    if (this.stats === null) {
      this.stats = this.conn.statsFor(this.authority, this.route, this.cluster, '');
      this.stats.requests++;
      this.stats.inFlight++;
    }
    const s = this.stream;
    const gs = this.grpc ? grpcStatusFor(code) : -1;
    const status = this.grpc ? 200 : info.status;
    this.status = status;
    if (!s.destroyed && !s.headersSent) {
      try {
        if (this.grpc) {
          s.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(gs), 'grpc-message': info.name, 'l5d-proxy-error': info.name }, { endStream: true });
        } else {
          s.respond({ ':status': info.status, 'content-type': 'text/plain', 'l5d-proxy-error': info.name });
          s.end(`${info.reason}: ${info.name}\n`);
        }
      } catch {
        // Closed meanwhile.
      }
    } else this.resetClient();
    // A request body still coming is read and dropped (flow control keeps granting it).
    if (!this.reqDone) s.resume();
    this.finish(false, info.name, gs);
  }

  private resetClient(why = ''): void {
    const s = this.stream;
    if (DEBUG) debugLog('h2', `stream ${s.id} ${String(this.headers[':path'])}: reset by the proxy (${why || new Error('reset').stack})`);
    if (!s.destroyed && !s.closed) s.close(H2Error.InternalError);
  }

  /** The exchange is over: metrics, the queue slot, the connection's bookkeeping. */
  private finish(success: boolean, error: string, grpcStatus: number): void {
    if (this.state === State.Done) return;
    this.state = State.Done;
    const call = this.mcpCall;
    if (call !== null) {
      this.mcpCall = null;
      call.abort();
    }
    this.hold = null;
    this.clearRetryTimer();
    const stats = this.stats;
    if (stats !== null) {
      const rs = this.responseStats ?? stats.response(this.status || (error === 'client-closed' || error === 'cancelled' ? 499 : 502));
      if (this.responseStats === null) rs.latency.recordMs(this.ctx.clock.now() - this.reqStartMs);
      if (grpcStatus >= 0) rs.countGrpc(grpcStatus);
      else if (success) rs.success++;
      else {
        rs.failure++;
        if (error !== '') rs.errors.set(error, (rs.errors.get(error) ?? 0) + 1);
      }
      if (grpcStatus > 0 && error !== '' && error !== 'grpc-status') rs.errors.set(error, (rs.errors.get(error) ?? 0) + 1);
      if (stats.inFlight > 0) stats.inFlight--;
    }
    const q = this.slot;
    if (q !== null) {
      this.slot = null;
      q.release();
    }
    this.body = null;
    this.conn.exchangeDone(this);
  }

  private flushTraffic(e: Endpoint): void {
    const t = e.traffic;
    if (t !== null) t.record(this.sentBytes, this.receivedBytes);
    this.sentBytes = this.receivedBytes = 0;
  }

  /** Timeouts, checked by the connection's sweep. */
  sweep(now: number): void {
    if (this.hold !== null) {
      // A body held for MCP inspection must arrive within the head timeout.
      if (now - this.reqStartMs > this.lr.http.headTimeoutMs) {
        this.hold = null;
        this.reply(ErrorCode.RequestTimeout);
      }
      return;
    }
    if (this.state === State.Queued) {
      if (this.deadlineMs !== 0 && now > this.deadlineMs) {
        this.cluster!.queue.cancel(this);
        this.reply(ErrorCode.RequestTimeout);
      }
      return;
    }
    if (this.state !== State.Active) return;
    if (this.deadlineMs !== 0 && now > this.deadlineMs) {
      this.timeout(ErrorCode.RequestTimeout);
      return;
    }
    const call = this.call;
    if (call === null) return;
    if (this.clientFull) {
      // A client that stopped reading (zero window) holds this stream and its upstream: reset after
      // the keep-alive timeout without progress.
      if (this.ioTicks !== this.sweptTicks) {
        this.sweptTicks = this.ioTicks;
        this.idleSinceMs = now;
      } else if (now - this.idleSinceMs > this.lr.http.keepAliveTimeoutMs) this.timeout(ErrorCode.IdleTimeout);
      return;
    }
    if (call.connecting && this.cluster !== null && now - this.attemptStartMs > this.cluster.connectTimeoutMs) {
      this.timeout(ErrorCode.ConnectTimeout);
    } else if (this.responseDeadlineMs !== 0 && !call.responseStarted && now > this.responseDeadlineMs) {
      this.timeout(ErrorCode.ResponseTimeout);
    } else if (this.idleTimeoutMs > 0) {
      if (this.ioTicks !== this.sweptTicks) {
        this.sweptTicks = this.ioTicks;
        this.idleSinceMs = now;
      } else if (now - this.idleSinceMs > this.idleTimeoutMs) {
        this.timeout(ErrorCode.IdleTimeout);
      }
    }
  }

  /** A deadline passed: the attempt is cancelled upstream, and retried when allowed. */
  private timeout(code: ErrorCode): void {
    const had = this.call !== null;
    this.dropCall(code === ErrorCode.ConnectTimeout ? Outcome.ConnectFailure : code === ErrorCode.RequestTimeout ? Outcome.Cancelled : Outcome.Failure);
    if (this.responded) {
      this.resetClient(`timeout mid-answer: ${errorInfo(code).name}`);
      this.finish(false, errorInfo(code).name, -1);
      return;
    }
    if (had && (code === ErrorCode.ConnectTimeout || code === ErrorCode.ResponseTimeout)) {
      const delay = this.retryDelay(code === ErrorCode.ConnectTimeout ? AttemptFailure.Connect : AttemptFailure.ResponseTimeout, 0);
      if (delay >= 0) {
        this.scheduleRetry(delay);
        return;
      }
    }
    this.clearRetryTimer();
    this.reply(code);
  }

  /** Shutdown: the client's stream is refused if nothing was answered yet, else reset. */
  abort(): void {
    if (this.state === State.Done) return;
    if (this.state === State.Queued) this.cluster?.queue.cancel(this);
    this.dropCall(Outcome.Cancelled);
    const s = this.stream;
    if (!s.destroyed && !s.closed) s.close(this.responded ? H2Error.InternalError : H2Error.RefusedStream);
    this.finish(false, 'shutdown', -1);
  }

  private guard(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.crash(e);
    }
  }

  /** A bug surfaced as an exception: counted and logged; this stream is reset, the connection lives on. */
  crash(e: unknown): void {
    this.ctx.internalError('h2-exchange', e);
    try {
      this.dropCall(Outcome.Cancelled);
      this.resetClient(`internal error: ${(e as Error)?.message}`);
    } finally {
      this.finish(false, 'internal-error', -1);
    }
  }
}

// Every entry point from outside (the client stream, the upstream call, timers) runs guarded: an
// exception (a bug) resets this stream and is counted, and never reaches the event loop, where it
// would take the worker and all its traffic down.
for (const name of ['onRequestData', 'onRequestEnd', 'onClientClose', 'onClientDrain', 'onWantTrailers', 'onCallHead', 'onCallData', 'onCallEnd', 'onCallError', 'onCallDrain', 'onSlot', 'onFailFast'] as const) {
  const f = H2Exchange.prototype[name] as (this: H2Exchange, a?: unknown, b?: unknown, c?: unknown) => unknown;
  (H2Exchange.prototype as unknown as Record<string, unknown>)[name] = function guarded(this: H2Exchange, a?: unknown, b?: unknown, c?: unknown): unknown {
    try {
      return f.call(this, a, b, c);
    } catch (e) {
      this.crash(e);
      return true;
    }
  };
}

function retryFired(x: H2Exchange): void {
  x.onRetryTimer();
}

function stripPseudo(t: HeaderBlock): HeaderBlock {
  for (const k of Object.keys(t)) if (k.charCodeAt(0) === 58) delete t[k];
  return t;
}
