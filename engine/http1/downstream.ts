// One client connection speaking HTTP/1.1: parses request heads in place, routes each request, binds
// a pooled upstream connection, and forwards head and body slices with back-pressure both ways.
// Pipelined requests are served one after another (responses in order); Upgrade and CONNECT become
// tunnels. Every refusal is a local reply from errors.ts; nothing here throws on bad input.
// Reliability lives here too: the service's queue admits each request, the balancer picks an endpoint
// and hears the outcome, and a failed attempt is retried (within the policy and its budget) on a
// replay of the request while nothing of the response has reached the client.

import type * as net from 'node:net';
import { Outcome } from '../balance/balancer';
import { Admission, type QueueWaiter, type RequestQueue } from '../balance/request-queue';
import type { Inbound } from '../io/inbound';
import type { Cluster } from '../cluster';
import type { ListenerRuntime, ProxyContext, TrackedConnection } from '../context';
import { ErrorCode, errorInfo, localReply } from '../errors';
import type { HttpStats, ResponseStats } from '../metrics/registry';
import type { Endpoint } from '../pool/endpoint';
import type { CompiledRoute } from '../router/route-table';
import { AttemptFailure, type CompiledRetry, RetryOn } from '../retry/retry-policy';
import { retryBackoffMs } from '../retry/retry-budget';
import { ChunkedScanner } from './chunked-scanner';
import { BodyReplay, parseRetryAfter } from './request-replay';
import { hostWithoutPort, sameBytes } from './authority';
import { BodyKind, ConnFlag, type HeadInfo, markConnectionNamedFields, Method, NEED_MORE, parseHead, PARSE_ERROR } from './head-parser';
import { giveHeadInfo, takeHeadInfo } from './head-pool';
import { composeHead, CONNECTION_CLOSE, CONNECTION_KEEP_ALIVE, CONNECTION_UPGRADE, joinHeadAndBody, writeHead } from './head-writer';
import { type ExchangeOwner, Http1Upstream } from './upstream';

const enum Phase {
  /** Between requests (keep-alive idle) or reading a head. */
  Head = 0,
  /** Forwarding the request body. */
  Body,
  /** Request sent; waiting for the response to end. */
  Wait,
  /** Parsed, waiting for a slot in the service's balancer queue (the client is paused). */
  Queued,
  Tunnel,
  Closed,
}

/** Pipelined bytes buffered while a request is in flight before the client is paused. */
const MAX_STASH_BYTES = 64 * 1024;

const EMPTY = Buffer.alloc(0);

const METHOD_NAMES = ['', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];

const IDEMPOTENT = new Set<Method>([Method.Get, Method.Head, Method.Put, Method.Delete, Method.Options, Method.Trace]);

export class Http1Downstream implements ExchangeOwner, TrackedConnection, QueueWaiter {
  private lr: ListenerRuntime;
  private gen: number;
  private phase = Phase.Head;
  /** Unprocessed client bytes; a partial head starts at h.base. While queued: the whole request so far. */
  private buf: Buffer | null = null;
  private readonly h = takeHeadInfo();
  private bodyKind = BodyKind.None;
  private remaining = 0;
  private readonly chunked = new ChunkedScanner();
  private up: Http1Upstream | null = null;
  private reqDone = false;
  /** The client asked to close (or is HTTP/1.0 without keep-alive), or we decided to. */
  private closeAfter = false;
  private responseHeadSent = false;
  /** A response head not yet written: it leaves with the first body bytes, or at the end of the read. */
  private pendingHead: Buffer | null = null;
  private upgrade = false;
  private paused = false;
  private waitingUpstreamDrain = false;
  private endedByClient = false;
  /** Whether this request may be replayed on a fresh connection after a keep-alive race. */
  private replayable = false;
  /** The request head (h's offsets point into it); copied out of the read buffer only when a resend may need it. */
  private reqHeadBuf: Buffer | null = null;

  // timing (clock ms)
  private headStartMs = -1;
  private lastActiveMs: number;
  private reqStartMs = 0;
  private attemptStartMs = 0;
  private deadlineMs = 0;
  private responseDeadlineMs = 0;
  private responseTimeoutMs = 0;
  private idleTimeoutMs = 0;
  /** Bumped per chunk either way; the sweeper sees idleness by comparing it, with no clock read per chunk. */
  private ioTicks = 0;
  private sweptTicks = 0;
  private idleSinceMs = 0;

  // per-request routing results and metrics
  private route: CompiledRoute | null = null;
  private cluster: Cluster | null = null;
  private endpoint: Endpoint<Http1Upstream> | null = null;
  private stats: HttpStats | null = null;
  private status = 0;
  private responseStats: ResponseStats | null = null;
  /** Bytes of the current attempt, for zone traffic metrics. */
  private sentBytes = 0;
  private receivedBytes = 0;

  // reliability
  private retry: CompiledRetry | null = null;
  private retries = 0;
  private idempotent = false;
  private body: BodyReplay | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private previousEndpoint: Endpoint | null = null;
  /** The current attempt is its endpoint's recovery probe. */
  private probe = false;
  /** The queue whose slot this request holds. */
  private slot: RequestQueue | null = null;
  /** While queued: where the head ends in buf. */
  private queuedEnd = 0;
  /**
   * An attempt failed before the client finished sending the body: the rest is buffered, and the
   * retry (after this backoff) starts when it is complete. -1: none pending.
   */
  private pendingRetryMs = -1;
  private pendingRetryCode = ErrorCode.None;

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

  private readonly socket: net.Socket;

  constructor(
    private readonly ctx: ProxyContext,
    private readonly inbound: Inbound,
    lr: ListenerRuntime,
    private readonly listener: string,
  ) {
    const socket = inbound.socket;
    this.socket = socket;
    this.lr = lr;
    this.gen = ctx.generation;
    this.lastActiveMs = ctx.clock.now();
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

  /** Whether the current request may still have to be sent again (so its head is worth a copy). */
  private mayResend(): boolean {
    const up = this.up;
    if (this.replayable && up !== null && up.reused) return true;
    const r = this.retry;
    if (r === null) return false;
    // Connection failures are the only retry of the default policy: past connect, no copy is needed.
    return r.mask !== RetryOn.ConnectFailure || up === null || up.connecting;
  }

  // ------------------------------------------------------------------ client side

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
      case Phase.Tunnel:
        if (this.up !== null) {
          if (!this.up.write(chunk)) {
            this.waitingUpstreamDrain = true;
            this.pause();
          }
          this.inbound.afterWrite(this.up.socket);
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
      cluster = lr.defaultCluster;
    }
    this.route = route;
    this.cluster = cluster;
    if (route === null && cluster === null) {
      this.localReplyForRequest(ErrorCode.NoRoute, end);
      return;
    }
    if (cluster === null || cluster.endpoints.length === 0) {
      this.localReplyForRequest(ErrorCode.NoEndpoints, end);
      return;
    }

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

  private bodyFits(retry: CompiledRetry): boolean {
    return this.bodyKind === BodyKind.Chunked || this.h.contentLength <= retry.maxBodyBytes;
  }

  /** First attempt of an admitted request, and the body bytes that came with its head. */
  private startExchange(buf: Buffer, end: number, now: number): void {
    const endpoint = this.pickEndpoint();
    if (endpoint === null) {
      this.localReplyForRequest(ErrorCode.NoEndpoints, end);
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

  /** An endpoint from the balancer; a retry avoids the one that just failed when it can. */
  private pickEndpoint(): Endpoint<Http1Upstream> | null {
    const b = this.cluster!.balancer;
    let e = b.pick();
    const prev = this.previousEndpoint;
    if (e !== null && e === prev && b.endpoints.length > 1 && !b.lastPickWasProbe) e = b.pick() ?? e;
    this.probe = b.lastPickWasProbe;
    this.endpoint = e as Endpoint<Http1Upstream> | null;
    return this.endpoint;
  }

  /** Starts an attempt on `endpoint`: binds a connection and writes the request head. */
  private dispatch(endpoint: Endpoint<Http1Upstream>, buf: Buffer, now: number): void {
    const h = this.h;
    let up = endpoint.takeIdle();
    if (up === null) up = new Http1Upstream(this.ctx, endpoint, this.lr.dstTcp, this.lr.http.maxHeadBytes, now);
    this.up = up;
    endpoint.inFlight++;
    this.attemptStartMs = now;
    this.responseDeadlineMs = this.responseTimeoutMs > 0 ? now + this.responseTimeoutMs : 0;
    this.sentBytes = h.headLen;
    this.receivedBytes = 0;
    const traffic = endpoint.traffic;
    if (traffic !== null) traffic.requests.value++;
    // A body is kept for a connection-failure retry only when the connection is new.
    const retry = this.retry;
    if (retry !== null && this.body === null && !this.reqDone && up.connecting && this.retries === 0 && this.bodyFits(retry)) {
      this.body = new BodyReplay(retry.maxBodyBytes);
    }
    up.begin(this, h.method === Method.Head, h.method === Method.Connect, this.upgrade);
    if (!this.writeRequestHead(up, buf)) {
      this.waitingUpstreamDrain = true;
      if (!this.reqDone) this.pause();
    }
  }

  /** Sends the whole request again (a retry, or a replay after a keep-alive race) on `endpoint`. */
  private resend(endpoint: Endpoint<Http1Upstream>, now: number): void {
    this.dispatch(endpoint, this.reqHeadBuf!, now);
    const up = this.up;
    const body = this.body;
    if (up === null || body === null) return;
    for (const c of body.chunks) {
      this.sentBytes += c.length;
      if (!up.socket.write(c)) this.waitingUpstreamDrain = true;
    }
  }

  /**
   * The request head as the upstream gets it: hop-by-hop fields dropped; an upgrade keeps its Upgrade
   * field and gets `connection: upgrade`; an HTTP/1.0 request asks for keep-alive so that the pooled
   * connection survives (the upstream then frames the response by length, which 1.0 clients read).
   */
  private writeRequestHead(up: Http1Upstream, buf: Buffer): boolean {
    const h = this.h;
    const ok = this.upgrade
      ? writeHead(up.socket, buf, h, CONNECTION_UPGRADE, h.upgradeField)
      : writeHead(up.socket, buf, h, h.versionMinor === 0 ? CONNECTION_KEEP_ALIVE : null);
    this.inbound.afterWrite(up.socket);
    return ok;
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

  /** The body of a request whose attempt failed early is complete: retry now, or fail if it did not fit. */
  private startPendingRetry(): void {
    const delay = this.pendingRetryMs;
    const code = this.pendingRetryCode;
    this.pendingRetryMs = -1;
    if (this.body !== null && !this.body.overflow) {
      this.scheduleRetry(delay);
      return;
    }
    this.finishStats(errorInfo(code).status, false, errorInfo(code).name);
    this.sendLocal(code);
  }

  /** Forwards a body slice (and keeps a copy for a resend); with no upstream (a retry pending), only keeps it. */
  private writeUp(up: Http1Upstream | null, chunk: Buffer): void {
    this.sentBytes += chunk.length;
    const body = this.body;
    if (body !== null) body.add(chunk, this.inbound.isTransient(chunk));
    if (up === null) return;
    if (!up.socket.write(chunk)) {
      this.waitingUpstreamDrain = true;
      this.pause();
    }
    this.inbound.afterWrite(up.socket);
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

  private pause(): void {
    if (!this.paused) {
      this.paused = true;
      this.inbound.pause();
    }
  }

  private resume(): void {
    if (this.paused) {
      this.paused = false;
      this.inbound.resume();
    }
  }

  onUpstreamDrain(): void {
    if (this.waitingUpstreamDrain) {
      this.waitingUpstreamDrain = false;
      if (this.phase === Phase.Body || this.phase === Phase.Tunnel) this.resume();
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
    if (this.phase === Phase.Body) {
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

  // ------------------------------------------------------------------ queue slots

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

  private releaseSlot(): void {
    const q = this.slot;
    if (q !== null) {
      this.slot = null;
      q.release();
    }
  }

  private leaveQueueAndTimers(): void {
    if (this.phase === Phase.Queued) this.cluster?.queue.cancel(this);
    if (this.retryTimer !== null) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
  }

  // ------------------------------------------------------------------ upstream callbacks

  onResponseHead(buf: Buffer, h: HeadInfo, end: number): void {
    this.ioTicks++;
    const status = h.statusCode;
    const interim = status < 200 && status !== 101;
    if (interim) {
      this.writeFromUpstream(composeHead(buf, h, null));
      return;
    }
    const now = this.ctx.clock.now();
    this.lastActiveMs = now;
    this.receivedBytes += end - h.base;
    // Feedback for the balancer: latency to the first byte (a shed answer counts as a slow one) and
    // the verdict for failure accrual.
    const cluster = this.cluster!;
    const endpoint = this.endpoint!;
    const b = cluster.balancer;
    let rttMs = now - this.attemptStartMs;
    if (b.penalizes(status)) {
      const ra = h.find(buf, 'retry-after');
      rttMs = Math.max(rttMs, b.penaltyMs(status, ra === -1 ? -1 : parseRetryAfter(h.value(buf, ra), Date.now())));
    }
    b.observe(endpoint, rttMs);
    b.outcome(endpoint, status >= 500 ? Outcome.Failure : Outcome.Success);
    if (this.retry !== null && status >= 400) {
      const delay = this.retryDelay(-1, status);
      if (delay >= 0) {
        // Nothing of this response has reached the client: drop it and try again.
        this.dropUpstream(-1);
        this.scheduleRetry(delay);
        return;
      }
    }
    this.status = status;
    this.responseHeadSent = true;
    const stats = this.stats!;
    const rs = stats.response(status);
    this.responseStats = rs;
    rs.latency.recordMs(now - this.reqStartMs);
    if (status === 101) {
      this.writeFromUpstream(composeHead(buf, h, CONNECTION_UPGRADE, h.upgradeField));
      this.enterTunnel();
      return;
    }
    if (this.h.method === Method.Connect && status < 300) {
      this.writeFromUpstream(composeHead(buf, h, null));
      this.enterTunnel();
      return;
    }
    // Close the client after this response when it asked, when we drain, when the response is
    // delimited by close, or when the request body is still coming (the upstream answered early).
    if (!this.reqDone || this.ctx.draining || h.bodyKind === BodyKind.UntilClose) {
      this.closeAfter = true;
    }
    let extra: Buffer | null = null;
    if (this.closeAfter) extra = CONNECTION_CLOSE;
    else if (this.h.versionMinor === 0) extra = CONNECTION_KEEP_ALIVE;
    // Held until the body bytes of the same read are known, so that both leave in one write.
    this.pendingHead = composeHead(buf, h, extra);
  }

  onResponseBody(chunk: Buffer): boolean {
    this.ioTicks++;
    this.receivedBytes += chunk.length;
    const head = this.pendingHead;
    if (head !== null) {
      this.pendingHead = null;
      const joined = joinHeadAndBody(head, chunk);
      if (joined !== null) return this.writeFromUpstream(joined);
      this.writeFromUpstream(head);
    }
    return this.writeFromUpstream(chunk);
  }

  /**
   * Writes bytes that may point into the upstream connection's read buffer. When the client does not
   * take them at once, the rest still points there: the upstream stops reading until they are flushed
   * (a write that returned false resumes on 'drain'; one that was only partly taken, on the callback
   * of an empty write queued behind it).
   */
  private writeFromUpstream(b: Buffer): boolean {
    const sock = this.socket;
    const ok = sock.write(b);
    if (sock.writableLength > 0) {
      const up = this.up;
      if (up !== null) {
        up.pauseReading();
        if (ok) sock.write(EMPTY, () => up.resumeReading());
      }
    }
    return ok;
  }

  /** End of one upstream read: a head still held (its body comes later, or never) goes out now. */
  onUpstreamReadDone(): void {
    const head = this.pendingHead;
    if (head !== null) {
      this.pendingHead = null;
      this.writeFromUpstream(head);
    }
  }

  onResponseEnd(reusable: boolean): void {
    this.onUpstreamReadDone();
    const rs = this.responseStats;
    if (rs !== null) {
      if (this.status >= 500) rs.failure++;
      else rs.success++;
    }
    const up = this.up!;
    this.up = null;
    const endpoint = this.endpoint!;
    endpoint.inFlight--;
    this.flushTraffic(endpoint);
    this.stats!.inFlight--;
    this.stats = null;
    if (!this.reqDone) {
      // Upstream answered before the request body ended: the connection is mid-request.
      up.close();
      this.closeAfter = true;
      this.endExchange();
      return;
    }
    up.release();
    // lastActiveMs was set when the response head arrived: close enough for idle timeouts.
    if (reusable) up.endpoint.putIdle(up, this.lastActiveMs);
    else up.close();
    this.endExchange();
  }

  private endExchange(): void {
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

  onUpstreamError(code: ErrorCode, responseStarted: boolean): void {
    const up = this.up;
    const endpoint = this.endpoint;
    this.up = null;
    if (up !== null && endpoint !== null) {
      endpoint.inFlight--;
      this.flushTraffic(endpoint);
    }
    if (responseStarted || this.responseHeadSent) {
      this.abort(errorInfo(code).name);
      return;
    }
    // A pooled connection that the server closed just as we reused it: replay once on a new one
    // (not the endpoint's fault, not a retry).
    if (up !== null && up.reused && this.replayable && this.reqHeadBuf !== null && code === ErrorCode.UpstreamReset && !up.responseStarted && endpoint !== null) {
      this.replayable = false;
      this.resend(endpoint, this.ctx.clock.now());
      return;
    }
    if (up !== null && endpoint !== null) {
      this.cluster!.balancer.outcome(endpoint, code === ErrorCode.UpstreamConnectFailed ? Outcome.ConnectFailure : Outcome.Failure);
      const f = code === ErrorCode.UpstreamConnectFailed ? AttemptFailure.Connect : code === ErrorCode.UpstreamReset ? AttemptFailure.Reset : AttemptFailure.BadResponse;
      const delay = this.retryDelay(f, 0);
      if (delay >= 0) {
        this.retryAfterBody(delay, code);
        return;
      }
    }
    this.finishStats(errorInfo(code).status, false, errorInfo(code).name);
    if (!this.reqDone) this.closeAfter = true;
    this.sendLocal(code);
  }

  onTunnelData(chunk: Buffer): boolean {
    return this.writeFromUpstream(chunk);
  }

  onTunnelEnd(): void {
    if (this.phase === Phase.Tunnel) this.socket.end();
  }

  private enterTunnel(): void {
    this.phase = Phase.Tunnel;
    this.reqDone = true;
    this.headStartMs = -1;
    const st = this.stats;
    if (st !== null) {
      st.inFlight--;
      this.responseStats!.success++;
      this.stats = null;
    }
    // A tunnel is not a request in flight for the queue.
    this.releaseSlot();
    this.resume();
    // Bytes the client sent after its head belong to the tunnel.
    const rest = this.buf;
    this.buf = null;
    if (rest !== null && rest.length > 0 && this.up !== null) {
      this.up.write(rest);
      this.inbound.afterWrite(this.up.socket);
    }
  }

  // ------------------------------------------------------------------ retries

  /**
   * Whether the failed attempt is retried, and after how long (-1: not retried). `failure` is an
   * AttemptFailure, or -1 for a response with `status`. Spends a retry from the budget when yes.
   */
  private retryDelay(failure: number, status: number): number {
    const r = this.retry;
    if (r === null || this.responseHeadSent || this.phase === Phase.Closed) return -1;
    if (failure < 0 ? !r.retriesStatus(status) : !r.retriesFailure(failure as AttemptFailure)) return -1;
    // A request that may have reached the upstream goes again only when that is safe.
    if (failure !== AttemptFailure.Connect && !r.mayResend(this.idempotent)) return -1;
    if (this.reqHeadBuf === null) return -1;
    if (this.bodyKind !== BodyKind.None && (this.body === null || this.body.overflow)) return -1;
    if (this.retries >= r.maxRetries) {
      r.counters.limitExceeded.value++;
      return -1;
    }
    const now = this.ctx.clock.now();
    const delay = retryBackoffMs(this.retries, r.backoffBaseMs, r.backoffMaxMs, this.ctx.rng());
    if (this.deadlineMs !== 0 && now + delay >= this.deadlineMs) return -1;
    if (!r.budget.withdraw(now)) {
      r.counters.budgetExhausted.value++;
      return -1;
    }
    r.counters.retries.value++;
    this.retries++;
    return delay;
  }

  /** Retries now, or once the client has sent the rest of the body (kept meanwhile). */
  private retryAfterBody(delayMs: number, code: ErrorCode): void {
    if (this.reqDone) {
      this.scheduleRetry(delayMs);
      return;
    }
    this.previousEndpoint = this.endpoint;
    this.pendingRetryMs = delayMs;
    this.pendingRetryCode = code;
    this.resume();
  }

  private scheduleRetry(delayMs: number): void {
    this.previousEndpoint = this.endpoint;
    this.retryTimer = setTimeout(retryTimerFired, delayMs, this);
  }

  /** The backoff is over: the request goes again, to an endpoint the balancer picks. */
  onRetryTimer(): void {
    this.retryTimer = null;
    if (this.phase === Phase.Closed || this.up !== null) return;
    try {
      const now = this.ctx.clock.now();
      if (this.deadlineMs !== 0 && now > this.deadlineMs) {
        this.timeoutExchange(ErrorCode.RequestTimeout);
        return;
      }
      const endpoint = this.pickEndpoint();
      if (endpoint === null) {
        this.finishStats(503, false, errorInfo(ErrorCode.NoEndpoints).name);
        this.sendLocal(ErrorCode.NoEndpoints);
        return;
      }
      this.resend(endpoint, now);
    } catch (e) {
      this.ctx.internalError('http1-downstream', e);
      this.abort('internal-error');
    }
  }

  // ------------------------------------------------------------------ local replies and failures

  /** Answers a request that was parsed but is not forwarded (no route, no endpoint, shed, draining). */
  private localReplyForRequest(code: ErrorCode, end: number): void {
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
    this.socket.write(localReply(code, this.closeAfter));
    this.buf = end < buf.length ? buf.subarray(end) : null;
    this.reqDone = true;
    this.endExchange();
  }

  private sendLocal(code: ErrorCode): void {
    this.socket.write(localReply(code, this.closeAfter));
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

  private abort(reason: string): void {
    this.pendingHead = null;
    this.leaveQueueAndTimers();
    if (this.stats !== null) this.finishStats(this.status || 502, false, reason);
    this.dropUpstream(Outcome.Cancelled);
    this.releaseSlot();
    this.phase = Phase.Closed;
    this.socket.destroy();
  }

  /**
   * Ends the current attempt's hold on its upstream connection (closed: it is mid-exchange) and
   * reports `outcome` to the balancer (-1: already reported).
   */
  private dropUpstream(outcome: Outcome | -1): void {
    const up = this.up;
    if (up === null) return;
    this.up = null;
    const endpoint = this.endpoint!;
    endpoint.inFlight--;
    this.flushTraffic(endpoint);
    up.close();
    if (outcome !== -1 && this.cluster !== null) this.cluster.balancer.outcome(endpoint, outcome, this.probe);
  }

  private flushTraffic(endpoint: Endpoint): void {
    const t = endpoint.traffic;
    if (t !== null) t.record(this.sentBytes, this.receivedBytes);
    this.sentBytes = this.receivedBytes = 0;
  }

  private finishStats(status: number, success: boolean, error: string): void {
    const stats = this.stats;
    if (stats === null) return;
    const rs = this.responseStats ?? stats.response(status);
    if (this.responseStats === null) rs.latency.recordMs(this.ctx.clock.now() - this.reqStartMs);
    if (success) rs.success++;
    else {
      rs.failure++;
      rs.errors.set(error, (rs.errors.get(error) ?? 0) + 1);
    }
    if (stats.inFlight > 0) stats.inFlight--;
    this.stats = null;
    this.responseStats = null;
  }

  // ------------------------------------------------------------------ authority and stats

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
    const s = this.ctx.metrics.httpStats(this.lr.direction, this.authority, route?.name ?? '', cluster?.name ?? '', zone);
    this.cacheKey = key;
    this.cacheZone = zone;
    this.cachedRoute = route;
    this.cachedStats = s;
    return s;
  }

  // ------------------------------------------------------------------ engine hooks

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

  /** A deadline passed: the attempt is cancelled (its connection closed), and retried when allowed. */
  private timeoutExchange(code: ErrorCode): void {
    const hadUpstream = this.up !== null;
    this.dropUpstream(code === ErrorCode.ConnectTimeout ? Outcome.ConnectFailure : Outcome.Failure);
    if (this.responseHeadSent) {
      this.abort(errorInfo(code).name);
      return;
    }
    if (hadUpstream && (code === ErrorCode.ConnectTimeout || code === ErrorCode.ResponseTimeout)) {
      const delay = this.retryDelay(code === ErrorCode.ConnectTimeout ? AttemptFailure.Connect : AttemptFailure.ResponseTimeout, 0);
      if (delay >= 0) {
        this.retryAfterBody(delay, code);
        return;
      }
    }
    this.leaveQueueAndTimers();
    this.finishStats(errorInfo(code).status, false, errorInfo(code).name);
    if (!this.reqDone) this.closeAfter = true;
    this.sendLocal(code);
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

function retryTimerFired(d: Http1Downstream): void {
  d.onRetryTimer();
}
