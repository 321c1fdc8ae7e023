// One client connection speaking HTTP/1.1: parses request heads in place, routes each request, has
// the service's queue admit it, and forwards the request body as slices with back-pressure (the
// upstream half, attempts, retries and the response, is Http1Exchange). Pipelined requests are
// served one after another (responses in order); Upgrade and CONNECT become tunnels. Every refusal
// is a local reply from errors.ts; nothing here throws on bad input.

import { Outcome } from '../balance/balancer';
import { Admission, type QueueWaiter } from '../balance/request-queue';
import type { Cluster } from '../cluster';
import type { ListenerRuntime, ProxyContext, TrackedConnection } from '../context';
import { ErrorCode, errorInfo, grpcLocalReply, localReply } from '../errors';
import type { Authorizer } from '../policy/authorizer';
import type { Inbound } from '../io/inbound';
import type { HttpStats } from '../metrics/registry';
import type { Endpoint } from '../pool/endpoint';
import { RetryOn } from '../retry/retry-policy';
import type { CompiledRoute } from '../router/route-table';
import { hostWithoutPort, sameBytes } from './authority';
import { ChunkedScanner } from './chunked-scanner';
import { Http1Exchange, Phase } from './exchange';
import { BodyKind, ConnFlag, markConnectionNamedFields, Method, NEED_MORE, parseHead, PARSE_ERROR } from './head-parser';
import { giveHeadInfo } from './head-pool';
import { BodyReplay } from './request-replay';
import { BodyCollector, COLLECT_BAD, COLLECT_MORE, COLLECT_TOO_LARGE } from './body-collector';
import { jsonReply, readMcpHead, rebuildRequest } from './mcp-glue';
import { type McpOrigin, type McpRequestHead, McpScope, Wants } from '../mcp/inspector';
import type { UpstreamConnection } from './upstream';

/** Pipelined bytes buffered while a request is in flight before the client is paused. */
const MAX_STASH_BYTES = 64 * 1024;

const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');

/** Linkerd's header for the client's mesh identity, as the app sees it. */
const CLIENT_ID_HEADER = 'l5d-client-id';

const METHOD_NAMES = ['', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];

const IDEMPOTENT = new Set<Method>([Method.Get, Method.Head, Method.Put, Method.Delete, Method.Options, Method.Trace]);

export class Http1Downstream extends Http1Exchange implements TrackedConnection, QueueWaiter {
  private gen: number;
  private remaining = 0;
  private readonly chunked = new ChunkedScanner();
  /** While queued: where the head ends in buf. */
  private queuedEnd = 0;
  // authority cache: the last host bytes seen on this connection and their strings
  private hostBuf: Buffer | null = null;
  private hostStart = 0;
  private hostEnd = 0;
  private authority = '';
  private hostName = '';
  private cacheKey: object | null = null;
  private cacheZone = '';
  private cachedStats: HttpStats | null = null;
  private cachedRoute: CompiledRoute | null = null;
  private untracked = false;
  /** An MCP request's body being held for inspection. */
  private collector: BodyCollector | null = null;
  private mcpHead: McpRequestHead | null = null;
  private mcpOrigin: McpOrigin | null = null;
  private mcpRouteMarked = false;

  constructor(
    ctx: ProxyContext,
    inbound: Inbound,
    lr: ListenerRuntime,
    private readonly listener: string,
    /** The client's SPIFFE ID when it came over mesh TLS (checked against the trust bundle). */
    readonly peerIdentity: string | null = null,
  ) {
    super(ctx, inbound, lr);
    if (peerIdentity !== null) this.idHeader = Buffer.from(`${CLIENT_ID_HEADER}: ${peerIdentity}\r\n`, 'latin1');
    const socket = inbound.socket;
    this.gen = ctx.generation;
    inbound.sink = (chunk: Buffer) => {
      try {
        this.onData(chunk);
        this.keepAcrossReads();
      } catch (e) {
        this.ctx.internalError('http1-downstream', e);
        this.abort('internal-error');
      }
    };
    socket.on('end', () => this.onClientEnd());
    socket.on('error', () => this.onClientClose());
    socket.on('close', () => this.onClientClose());
    socket.on('drain', () => this.onClientDrain());
    ctx.track(this);
  }

  /** Entry point with bytes already read by protocol detection (and whether the client already half-closed). */
  start(first: Buffer | null, ended = false): void {
    if (first !== null && first.length > 0) this.inbound.sink(first);
    if (ended && this.phase !== Phase.Closed) this.onClientEnd();
  }

  /**
   * After a delivery: bytes kept for later (a partial head, pipelined requests, a queued request)
   * must not point into the socket's read buffer, which the next read refills; nor must the head of
   * a request that may be sent again (a retry, or a replay after a keep-alive race).
   */
  private keepAcrossReads(): void {
    const inbound = this.inbound;
    if (this.buf !== null) this.buf = inbound.retain(this.buf);
    if (this.phase === Phase.Queued) {
      this.reqHeadBuf = this.buf;
      return;
    }
    const head = this.reqHeadBuf;
    if (head !== null && inbound.isTransient(head)) {
      if ((this.phase === Phase.Body || this.phase === Phase.Wait) && this.mayResend()) {
        const h = this.h;
        this.reqHeadBuf = Buffer.from(head.subarray(h.base, h.base + h.headLen));
        h.base = 0;
      } else {
        this.reqHeadBuf = null;
      }
    }
  }

  private onData(chunk: Buffer): void {
    this.ioTicks++;
    switch (this.phase) {
      case Phase.Head:
        if (this.buf === null) {
          this.buf = chunk;
          this.h.reset(0);
        } else {
          this.buf = Buffer.concat([this.buf, chunk]);
        }
        this.processHeads();
        return;
      case Phase.Body:
        this.forwardRequestBody(chunk, 0);
        return;
      case Phase.Wait:
      case Phase.Queued:
        // Bytes of later requests (or, queued, of this one's body): keep them until their turn.
        this.buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
        if (this.buf.length > MAX_STASH_BYTES) this.pause();
        return;
      case Phase.Collect:
        this.collectBody(this.inbound.retain(chunk));
        return;
      case Phase.Tunnel:
        if (this.up !== null) {
          if (!this.up.write(chunk)) {
            this.waitingUpstreamDrain = true;
            this.pause();
          }
          this.inbound.afterWrite(this.up.socket, chunk.length);
        }
        return;
      default:
        return;
    }
  }

  private processHeads(): void {
    const buf = this.buf!;
    const h = this.h;
    const end = parseHead(buf, h, true, this.lr.http.maxHeadBytes);
    if (end === NEED_MORE) {
      // The slow-head clock starts when a head is first seen incomplete (no clock read per request).
      if (this.headStartMs < 0) this.headStartMs = this.ctx.clock.now();
      if (this.endedByClient) {
        // The client half-closed: this head can never complete.
        this.phase = Phase.Closed;
        this.socket.end();
        return;
      }
      if (h.base !== 0) {
        this.buf = buf.subarray(h.base);
        h.base = 0;
      }
      return;
    }
    if (end === PARSE_ERROR) {
      this.refuse(h.error);
      return;
    }
    this.headStartMs = -1;
    this.onRequestHead(buf, end);
  }

  private onRequestHead(buf: Buffer, end: number): void {
    const h = this.h;
    const ctx = this.ctx;
    const now = ctx.clock.now();
    this.reqStartMs = now;
    this.lastActiveMs = now;
    // Per-exchange state starts clean, whatever path (forward or local reply) this request takes.
    this.stats = null;
    this.responseStats = null;
    this.responseHeadSent = false;
    this.pendingHead = null;
    this.status = 0;
    this.retry = null;
    this.body = null;
    this.endpoint = null;
    if (this.gen !== ctx.generation) {
      const lr = ctx.listener(this.listener);
      this.gen = ctx.generation;
      this.cacheKey = null;
      if (lr === undefined) {
        // The listener was removed by a reload: its connections take no new requests.
        this.closeAfter = true;
        this.route = null;
        this.cluster = null;
        this.localReplyForRequest(ErrorCode.Draining, end);
        return;
      }
      this.lr = lr;
    }
    if ((h.conn & ConnFlag.Other) !== 0) markConnectionNamedFields(buf, h);
    // The client identity header is the proxy's word alone: a copy from outside never reaches the app.
    if (this.lr.direction === 'inbound') h.dropAll(buf, CLIENT_ID_HEADER);
    const isConnect = h.method === Method.Connect;
    this.closeAfter =
      ctx.draining || (h.conn & ConnFlag.Close) !== 0 || (h.versionMinor === 0 && (h.conn & ConnFlag.KeepAlive) === 0);
    this.upgrade = false;
    if ((h.conn & ConnFlag.Upgrade) !== 0 && h.upgradeField !== -1) {
      // h2c is never passed on (RFC 9113 section 3.1 was removed; the upstream may not expect it).
      const v = h.value(buf, h.upgradeField).trim().toLowerCase();
      this.upgrade = v !== 'h2c' && v !== '';
    }

    // Route.
    this.resolveAuthority(buf);
    let pathStart = h.base + h.targetStart;
    const pathEnd0 = h.base + h.targetEnd;
    if (buf[pathStart] !== 0x2f && !isConnect) {
      // absolute-form: skip scheme and authority
      const slash = buf.indexOf(0x2f, buf.indexOf('//', pathStart) + 2);
      pathStart = slash === -1 || slash > pathEnd0 ? pathEnd0 : slash;
    }
    let pathEnd = buf.indexOf(0x3f, pathStart);
    if (pathEnd === -1 || pathEnd > pathEnd0) pathEnd = pathEnd0;
    const lr = this.lr;
    const route = lr.table.match(buf, h, this.hostName, pathStart, pathEnd, METHOD_NAMES[h.method] || buf.toString('latin1', h.base, h.base + h.methodEnd));
    let cluster: Cluster | null;
    if (route !== null) {
      const b = route.pickBackend();
      cluster = b === null ? null : b.cluster;
    } else {
      cluster = this.ctx.clusterFor(lr, this.inbound.originalDst);
    }
    this.route = route;
    this.cluster = cluster;
    const authz = lr.authorizer;
    if (authz !== null && !this.authorize(authz, buf, pathStart, pathEnd0, end)) return;
    if (route === null && cluster === null) {
      this.localReplyForRequest(ErrorCode.NoRoute, end);
      return;
    }
    if (cluster === null || cluster.endpoints.length === 0) {
      this.localReplyForRequest(ErrorCode.NoEndpoints, end);
      return;
    }
    this.mcpCall = null;
    const mcp = ctx.mcp;
    const server = mcp === null ? '' : (lr.authorizer?.serverName(lr.name, lr.snapshot.address.port) ?? '');
    const scope = mcp === null ? McpScope.None : mcp.scope(route?.name ?? '', route !== null && route.mcp, lr.snapshot.mcp === true, server);
    const routeMcp = scope !== McpScope.None;
    if (mcp !== null && (routeMcp || mcp.settings.inspectAll) && !isConnect && !this.upgrade) {
      const head = readMcpHead(buf, h, METHOD_NAMES[h.method] || buf.toString('latin1', h.base, h.base + h.methodEnd), h.base + h.targetStart, pathEnd0);
      const wants = mcp.wants(scope, head);
      if (wants !== Wants.No) {
        const origin: McpOrigin = { direction: lr.direction, route: route?.name ?? '', server, identity: this.peerIdentity, address: this.socket.remoteAddress ?? '' };
        if (wants === Wants.Stream || h.bodyKind === BodyKind.None) {
          if (wants === Wants.Stream) this.mcpCall = mcp.follow(head, origin);
        } else {
          this.startCollect(buf, end, head, origin, routeMcp, now);
          return;
        }
      }
    }
    this.proceed(buf, end, now);
  }

  /** The request goes on (after MCP inspection, when it had one): policies, framing, admission. */
  private proceed(buf: Buffer, end: number, now: number): void {
    const h = this.h;
    const route = this.route;
    const cluster = this.cluster!;
    const lr = this.lr;
    const isConnect = h.method === Method.Connect;

    // Policies: the route's where it sets them, else the service's (else the proxy's).
    const t = cluster.timeouts;
    const requestTimeoutMs = (route !== null && route.requestTimeoutMs) || t.requestMs;
    this.deadlineMs = requestTimeoutMs > 0 ? now + requestTimeoutMs : 0;
    this.responseTimeoutMs = (route !== null && route.responseTimeoutMs) || t.responseMs || lr.http.responseTimeoutMs;
    this.idleTimeoutMs = (route !== null && route.idleTimeoutMs) || t.idleMs;
    this.idleSinceMs = now;
    this.sweptTicks = this.ioTicks;

    // Body framing.
    this.bodyKind = h.bodyKind;
    this.remaining = h.contentLength > 0 ? h.contentLength : 0;
    if (this.bodyKind === BodyKind.Chunked) this.chunked.reset();
    this.reqDone = this.bodyKind === BodyKind.None;
    this.replayable = this.reqDone && h.method !== Method.Post && h.method !== Method.Connect && h.method !== Method.Patch;
    this.idempotent = IDEMPOTENT.has(h.method);

    const retry = (route !== null && route.retry) || cluster.retry;
    this.retries = 0;
    this.previousEndpoint = null;
    this.pendingRetryMs = -1;
    if (retry.maxRetries > 0 && !isConnect && !this.upgrade) {
      this.retry = retry;
      retry.budget.deposit(now);
      // Bodies that fit are kept for a resend; for connection failures alone, only while connecting (see dispatch).
      if (!this.reqDone && retry.mask !== RetryOn.ConnectFailure && this.bodyFits(retry)) this.body = new BodyReplay(retry.maxBodyBytes);
    }

    switch (cluster.queue.admit(this, now)) {
      case Admission.Go:
        this.slot = cluster.queue;
        this.startExchange(buf, end, now);
        return;
      case Admission.Queued:
        this.phase = Phase.Queued;
        this.buf = buf;
        this.queuedEnd = end;
        this.pause();
        return;
      case Admission.Shed:
        cluster.counters.shed.value++;
        this.localReplyForRequest(ErrorCode.LoadShed, end);
        return;
      default:
        cluster.counters.failFast.value++;
        this.localReplyForRequest(ErrorCode.FailFast, end);
    }
  }

  /** An MCP POST: its body is held (up to the inspection limit) before anything is sent on. */
  private startCollect(buf: Buffer, end: number, head: McpRequestHead, origin: McpOrigin, routeMcp: boolean, now: number): void {
    const h = this.h;
    if (h.expectContinue) {
      // The body is wanted here before anything goes upstream: the proxy says continue itself (a
      // client would otherwise wait its timeout, a second for curl), and the upstream gets no Expect.
      h.dropAll(buf, 'expect');
      this.socket.write(CONTINUE);
    }
    const first = this.inbound.retain(buf.subarray(h.base));
    h.base = 0;
    this.phase = Phase.Collect;
    this.buf = null;
    this.bodyKind = h.bodyKind;
    this.collector = new BodyCollector(first, end - (buf.length - first.length), h.bodyKind === BodyKind.Chunked ? BodyKind.Chunked : BodyKind.Length, h.contentLength, this.chunked, this.ctx.mcp!.settings.maxBodyBytes);
    this.mcpHead = head;
    this.mcpOrigin = origin;
    this.mcpRouteMarked = routeMcp;
    const t = this.cluster!.timeouts;
    const requestTimeoutMs = (this.route !== null && this.route.requestTimeoutMs) || t.requestMs;
    this.deadlineMs = requestTimeoutMs > 0 ? now + requestTimeoutMs : 0;
    this.collectBody(null);
  }

  /** More of a held body (null: what came with the head); inspected once whole (or too large). */
  private collectBody(chunk: Buffer | null): void {
    const stop = this.collector!.add(chunk);
    if (stop === COLLECT_MORE) return;
    if (stop === COLLECT_BAD) {
      this.collector = null;
      this.phase = Phase.Body;
      this.requestBodyError(this.chunked.error);
      return;
    }
    this.collectDone(stop);
  }

  /** The body is whole (it ends at `stop` of the collected bytes), or too large: inspect, then answer or go on. */
  private collectDone(stop: number): void {
    const mcp = this.ctx.mcp!;
    const c = this.collector!;
    this.collector = null;
    const whole = c.whole();
    const end = c.bodyStart;
    const origin = this.mcpOrigin!;
    const tooLarge = stop === COLLECT_TOO_LARGE;
    const body = tooLarge ? null : c.body(whole, stop);
    const verdict = body === null || body.length > mcp.settings.maxBodyBytes ? mcp.oversized(origin, this.mcpRouteMarked) : mcp.inspect(this.mcpHead!, body, origin, this.mcpRouteMarked);
    this.mcpHead = null;
    this.mcpOrigin = null;
    this.phase = Phase.Head;
    this.buf = whole;
    if (verdict.replyStatus !== 0) {
      this.countLocalReply(verdict.replyStatus);
      // An oversized body was not read to its end: the connection cannot be read further.
      if (tooLarge) this.closeAfter = true;
      this.socket.write(jsonReply(verdict.replyStatus, verdict.replyBody, this.closeAfter));
      this.buf = !tooLarge && stop < whole.length ? whole.subarray(stop) : null;
      this.reqDone = true;
      this.endExchange();
      return;
    }
    this.mcpCall = verdict.call;
    const now = this.ctx.clock.now();
    if (!tooLarge && (verdict.body !== null || this.bodyKind === BodyKind.Chunked)) {
      // Sent on framed by length: the inspected body, or a batch without its refused entries.
      const rebuilt = rebuildRequest(whole, this.h, verdict.body ?? body!, stop < whole.length ? whole.subarray(stop) : null, this.lr.http.maxHeadBytes);
      if (rebuilt.end <= 0) {
        this.refuse(ErrorCode.HeadTooLarge);
        return;
      }
      this.proceed(rebuilt.buf, rebuilt.end, now);
      return;
    }
    // As it came (too large to inspect: the rest of the body streams after it).
    this.proceed(whole, end, now);
  }

  /** A request answered here after parsing, counted like any response. */
  private countLocalReply(status: number): void {
    const stats = this.statsFor(this.route, this.cluster, null);
    stats.requests++;
    const rs = stats.response(status);
    rs.latency.recordMs(this.ctx.clock.now() - this.reqStartMs);
    if (status < 300) rs.success++;
    else rs.failure++;
  }

  /** Inbound authorization of the request (false: it was answered 403, or PERMISSION_DENIED for gRPC). */
  private authorize(authz: Authorizer, buf: Buffer, pathStart: number, pathEnd: number, end: number): boolean {
    const lr = this.lr;
    const path = buf.toString('latin1', pathStart, pathEnd);
    const address = this.socket.remoteAddress ?? '';
    const d = authz.decide(lr.name, lr.snapshot.address.port, this.peerIdentity, address, path);
    this.ctx.authzDecision('http', d, this.peerIdentity, address, path);
    if (d.allowed) return true;
    const h = this.h;
    const ct = h.find(buf, 'content-type');
    const grpc = ct !== -1 && h.value(buf, ct).startsWith('application/grpc');
    this.localReplyForRequest(ErrorCode.Unauthorized, end, grpc);
    return false;
  }

  /** First attempt of an admitted request, and the body bytes that came with its head. */
  private startExchange(buf: Buffer, end: number, now: number): void {
    const endpoint = this.pickEndpoint();
    if (endpoint === null) {
      this.localReplyForRequest(ErrorCode.NoEndpoints, end);
      return;
    }
    if (endpoint.identity !== null && this.ctx.meshTls === null) {
      // Zero trust: a meshed endpoint is reached over mutual TLS or not at all.
      this.localReplyForRequest(ErrorCode.NoIdentity, end);
      return;
    }
    this.stats = this.statsFor(this.route, this.cluster, endpoint);
    this.stats.requests++;
    this.stats.inFlight++;
    this.dispatch(endpoint, buf, now);
    if (this.phase === Phase.Closed) return;
    this.phase = this.reqDone ? Phase.Wait : Phase.Body;
    if (end < buf.length) {
      if (this.reqDone) {
        this.buf = buf.subarray(end);
        if (this.buf.length > MAX_STASH_BYTES) this.pause();
      } else {
        this.buf = null;
        this.forwardRequestBody(buf, end);
      }
    } else {
      this.buf = null;
    }
  }

  private forwardRequestBody(buf: Buffer, start: number): void {
    const up = this.up;
    let stop: number;
    if (this.bodyKind === BodyKind.Length) {
      const len = buf.length - start;
      if (len < this.remaining) {
        this.remaining -= len;
        this.writeUp(up, start === 0 ? buf : buf.subarray(start));
        return;
      }
      stop = start + this.remaining;
      this.remaining = 0;
    } else {
      const r = this.chunked.scan(buf, start, buf.length);
      if (r === -2) {
        this.requestBodyError(this.chunked.error);
        return;
      }
      if (r === -1) {
        this.writeUp(up, start === 0 ? buf : buf.subarray(start));
        return;
      }
      stop = r;
    }
    if (stop > start) this.writeUp(up, start === 0 && stop === buf.length ? buf : buf.subarray(start, stop));
    this.reqDone = true;
    if (this.phase === Phase.Body) this.phase = Phase.Wait;
    if (stop < buf.length) {
      this.buf = buf.subarray(stop);
      if (this.buf.length > MAX_STASH_BYTES) this.pause();
    }
    if (this.pendingRetryMs >= 0) this.startPendingRetry();
  }

  /** Forwards a body slice (and keeps a copy for a resend); with no upstream (a retry pending), only keeps it. */
  private writeUp(up: UpstreamConnection | null, chunk: Buffer): void {
    this.sentBytes += chunk.length;
    const body = this.body;
    if (body !== null) body.add(chunk, this.inbound.isTransient(chunk));
    if (up === null) return;
    if (!up.socket.write(chunk)) {
      this.waitingUpstreamDrain = true;
      this.pause();
    }
    this.inbound.afterWrite(up.socket, chunk.length);
  }

  private requestBodyError(code: ErrorCode): void {
    // The upstream has part of a body it can never finish: it is not reusable.
    this.dropUpstream(Outcome.Cancelled);
    if (!this.responseHeadSent) {
      this.finishStats(errorInfo(code).status, false, errorInfo(code).name);
      this.ctx.metrics.countProtocolError(errorInfo(code).name);
      this.releaseSlot();
      this.socket.end(localReply(code, true));
      this.phase = Phase.Closed;
    } else {
      this.abort('request-body-error');
    }
  }

  protected pause(): void {
    if (!this.paused) {
      this.paused = true;
      this.inbound.pause();
    }
  }

  protected resume(): void {
    if (this.paused) {
      this.paused = false;
      this.inbound.resume();
    }
  }

  private onClientDrain(): void {
    if (this.up !== null) this.up.resumeReading();
  }

  private onClientEnd(): void {
    this.endedByClient = true;
    if (this.phase === Phase.Tunnel) {
      this.up?.socket.end();
      return;
    }
    if (this.phase === Phase.Head && this.up === null) {
      // Idle or mid-head: nothing to answer (a partial head is simply dropped).
      this.socket.end();
      this.phase = Phase.Closed;
      return;
    }
    if (this.phase === Phase.Body || this.phase === Phase.Collect) {
      // The client stopped sending mid-body: the request can never complete.
      this.abort('client-eof');
    }
    // Waiting for a response (or a queue slot, or a retry): answer it and any complete pipelined
    // requests, then close.
  }

  private onClientClose(): void {
    if (this.phase === Phase.Closed && this.up === null) {
      this.cleanup();
      return;
    }
    this.leaveQueueAndTimers();
    const up = this.up;
    const inExchange = this.stats !== null && this.stats.inFlight > 0 && this.phase !== Phase.Tunnel;
    this.dropUpstream(Outcome.Cancelled);
    if (inExchange && (up !== null || this.phase === Phase.Wait)) this.finishStats(this.status || 499, false, 'client-closed');
    this.phase = Phase.Closed;
    this.cleanup();
  }

  private cleanup(): void {
    this.leaveQueueAndTimers();
    this.releaseSlot();
    if (this.socket.destroyed === false) this.socket.destroy();
    if (!this.untracked) {
      this.untracked = true;
      this.ctx.untrack(this);
      giveHeadInfo(this.h);
    }
  }

  /** The queue gave this (queued) request a slot. Called from another exchange's release. */
  onSlot(): void {
    if (this.phase !== Phase.Queued) {
      this.cluster?.queue.release();
      return;
    }
    this.slot = this.cluster!.queue;
    try {
      const buf = this.buf!;
      this.buf = null;
      this.resume();
      this.startExchange(buf, this.queuedEnd, this.ctx.clock.now());
    } catch (e) {
      this.ctx.internalError('http1-downstream', e);
      this.abort('internal-error');
    }
  }

  /** The request waited in the queue past the fail-fast timeout. */
  onFailFast(): void {
    if (this.phase !== Phase.Queued) return;
    this.cluster!.counters.failFast.value++;
    this.localReplyForRequest(ErrorCode.FailFast, this.queuedEnd);
  }

  protected endExchange(): void {
    this.body = null;
    this.releaseSlot();
    if (this.closeAfter) {
      this.phase = Phase.Closed;
      this.socket.end();
      return;
    }
    this.phase = Phase.Head;
    this.waitingUpstreamDrain = false;
    this.resume();
    if (this.buf !== null) {
      this.h.reset(0);
      this.processHeads();
    } else if (this.endedByClient) {
      this.phase = Phase.Closed;
      this.socket.end();
    }
  }

  /** Answers a request that was parsed but is not forwarded (no route, no endpoint, shed, draining). */
  private localReplyForRequest(code: ErrorCode, end: number, grpc = false): void {
    const h = this.h;
    const buf = this.buf!;
    if (this.stats === null) {
      this.stats = this.statsFor(this.route, this.cluster, null);
      this.stats.requests++;
      this.stats.inFlight++;
    }
    this.finishStats(errorInfo(code).status, false, errorInfo(code).name);
    // Skip the request body so that the next pipelined request can be read: simplest and safe is
    // to close when the request has a body.
    if (h.bodyKind !== BodyKind.None) this.closeAfter = true;
    this.socket.write(grpc ? grpcLocalReply(code, this.closeAfter) : localReply(code, this.closeAfter));
    this.buf = end < buf.length ? buf.subarray(end) : null;
    this.reqDone = true;
    this.endExchange();
  }

  /** A malformed request: answer with its status and close (the stream is no longer framed). */
  private refuse(code: ErrorCode): void {
    const info = errorInfo(code);
    this.ctx.metrics.countProtocolError(info.name);
    this.phase = Phase.Closed;
    this.buf = null;
    this.socket.end(localReply(code, true));
  }

  protected abort(reason: string): void {
    this.pendingHead = null;
    this.leaveQueueAndTimers();
    if (this.stats !== null) this.finishStats(this.status || 502, false, reason);
    this.dropUpstream(Outcome.Cancelled);
    this.releaseSlot();
    this.phase = Phase.Closed;
    this.socket.destroy();
  }

  private resolveAuthority(buf: Buffer): void {
    const h = this.h;
    this.reqHeadBuf = buf;
    let s: number;
    let e: number;
    if (h.hostField !== -1) {
      s = h.base + h.valueStart(h.hostField);
      e = h.base + h.valueEnd(h.hostField);
    } else {
      s = e = 0;
    }
    const prev = this.hostBuf;
    if (prev !== null && e - s === this.hostEnd - this.hostStart && sameBytes(prev, this.hostStart, buf, s, e - s)) {
      return;
    }
    // A copy when the chunk is the socket's read buffer (refilled by the next read).
    this.hostBuf = this.inbound.isTransient(buf) ? Buffer.from(buf.subarray(s, e)) : buf;
    this.hostStart = this.hostBuf === buf ? s : 0;
    this.hostEnd = this.hostBuf === buf ? e : e - s;
    this.authority = e > s ? buf.toString('latin1', s, e) : '';
    this.hostName = hostWithoutPort(this.authority);
    this.cacheKey = null;
  }

  private statsFor(route: CompiledRoute | null, cluster: Cluster | null, endpoint: Endpoint | null): HttpStats {
    const zone = endpoint === null ? '' : endpoint.zone;
    const key = cluster ?? route;
    if (this.cacheKey === key && key !== null && this.cacheZone === zone && this.cachedStats !== null && this.cachedRoute === route) {
      return this.cachedStats;
    }
    const s = this.ctx.metrics.httpStats(this.lr.direction, this.authority, route?.name ?? '', cluster?.name ?? '', zone, this.peerIdentity ?? '');
    this.cacheKey = key;
    this.cacheZone = zone;
    this.cachedRoute = route;
    this.cachedStats = s;
    return s;
  }

  sweep(now: number): void {
    switch (this.phase) {
      case Phase.Head:
        if (this.headStartMs >= 0) {
          if (now - this.headStartMs > this.lr.http.headTimeoutMs) this.refuse(ErrorCode.HeadTimeout);
        } else if (now - this.lastActiveMs > this.lr.http.keepAliveTimeoutMs) {
          this.phase = Phase.Closed;
          this.socket.end();
        }
        return;
      case Phase.Collect:
        // A body held for MCP inspection must arrive within the request deadline, else the head timeout.
        if (now - this.reqStartMs > (this.deadlineMs !== 0 ? this.deadlineMs - this.reqStartMs : this.lr.http.headTimeoutMs)) {
          this.collector = null;
          this.closeAfter = true;
          this.phase = Phase.Body;
          this.finishStats(408, false, errorInfo(ErrorCode.RequestTimeout).name);
          this.socket.end(localReply(ErrorCode.RequestTimeout, true));
          this.phase = Phase.Closed;
        }
        return;
      case Phase.Queued:
        if (this.deadlineMs !== 0 && now > this.deadlineMs) {
          this.cluster!.queue.cancel(this);
          this.localReplyForRequest(ErrorCode.RequestTimeout, this.queuedEnd);
        }
        return;
      case Phase.Body:
      case Phase.Wait: {
        if (this.deadlineMs !== 0 && now > this.deadlineMs) {
          this.timeoutExchange(ErrorCode.RequestTimeout);
          return;
        }
        const up = this.up;
        if (up === null) return; // waiting out a retry backoff
        if (up.connecting && this.cluster !== null && now - up.connectStartMs > this.cluster.connectTimeoutMs) {
          this.timeoutExchange(ErrorCode.ConnectTimeout);
        } else if (this.responseDeadlineMs !== 0 && !up.responseStarted && now > this.responseDeadlineMs) {
          this.timeoutExchange(ErrorCode.ResponseTimeout);
        } else if (this.idleTimeoutMs > 0) {
          if (this.ioTicks !== this.sweptTicks) {
            this.sweptTicks = this.ioTicks;
            this.idleSinceMs = now;
          } else if (now - this.idleSinceMs > this.idleTimeoutMs) {
            this.timeoutExchange(ErrorCode.IdleTimeout);
          }
        }
        return;
      }
      default:
        return;
    }
  }

  get listenerName(): string {
    return this.listener;
  }

  drain(): void {
    if (this.phase === Phase.Head && this.headStartMs < 0) {
      this.phase = Phase.Closed;
      this.socket.end();
      return;
    }
    this.closeAfter = true;
  }

  destroy(): void {
    this.abort('shutdown');
  }

  openBytes(): void {
    // Client bytes are counted by the engine, upstream bytes by the upstream connection.
  }
}
