// One HTTP/1.1 request's trip upstream, the half of a client connection that faces the upstream:
// it picks an endpoint, binds a pooled connection, writes the request (again, on a retry: from its
// replay), forwards the response with back-pressure, reports latency and outcome to the balancer,
// and decides retries within the policy and its budget while nothing of the response has reached the
// client. Http1Downstream, the client half, parses and routes requests and extends this class.

import type * as net from 'node:net';
import { Outcome } from '../balance/balancer';
import type { QueueWaiter, RequestQueue } from '../balance/request-queue';
import type { Cluster } from '../cluster';
import type { ListenerRuntime, ProxyContext } from '../context';
import { ErrorCode, errorInfo, localReply } from '../errors';
import { type Inbound, writeMayRetain } from '../io/inbound';
import type { HttpStats, ResponseStats } from '../metrics/registry';
import type { Endpoint } from '../pool/endpoint';
import { AttemptFailure, type CompiledRetry, RetryOn } from '../retry/retry-policy';
import type { CompiledRoute } from '../router/route-table';
import { BodyKind, type HeadInfo, Method } from './head-parser';
import { takeHeadInfo } from './head-pool';
import { composeHead, CONNECTION_CLOSE, CONNECTION_KEEP_ALIVE, CONNECTION_UPGRADE, joinHeadAndBody } from './head-writer';
import { BodyReplay, parseRetryAfter } from './request-replay';
import { ChunkedScanner } from './chunked-scanner';
import { chunkOf, LAST_CHUNK, rewrittenResponseHead } from './mcp-glue';
import { type McpCall, ResponseMode } from '../mcp/inspector';
import { type ExchangeOwner, Http1Upstream, type UpstreamConnection } from './upstream';

export const enum Phase {
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
  /** An MCP request's body is being buffered for inspection (nothing sent upstream yet). */
  Collect,
}

const EMPTY = Buffer.alloc(0);
const IDENTITY_ENCODING = Buffer.from('accept-encoding: identity\r\n', 'latin1');

export abstract class Http1Exchange implements ExchangeOwner, QueueWaiter {
  protected lr: ListenerRuntime;
  protected phase = Phase.Head;
  /** Unprocessed client bytes; a partial head starts at h.base. While queued: the whole request so far. */
  protected buf: Buffer | null = null;
  protected readonly h = takeHeadInfo();
  protected bodyKind = BodyKind.None;
  protected up: UpstreamConnection | null = null;
  protected reqDone = false;
  /** The client asked to close (or is HTTP/1.0 without keep-alive), or we decided to. */
  protected closeAfter = false;
  protected responseHeadSent = false;
  /** A response head not yet written: it leaves with the first body bytes, or at the end of the read. */
  protected pendingHead: Buffer | null = null;
  protected upgrade = false;
  protected paused = false;
  protected waitingUpstreamDrain = false;
  protected endedByClient = false;
  /** Whether this request may be replayed on a fresh connection after a keep-alive race. */
  protected replayable = false;
  /** The request head (h's offsets point into it); copied out of the read buffer only when a resend may need it. */
  protected reqHeadBuf: Buffer | null = null;

  // timing (clock ms)
  /** When the client's current head was first seen incomplete (slow-head guard); -1: none. */
  protected headStartMs = -1;
  protected lastActiveMs: number;
  protected reqStartMs = 0;
  protected attemptStartMs = 0;
  protected deadlineMs = 0;
  protected responseDeadlineMs = 0;
  protected responseTimeoutMs = 0;
  protected idleTimeoutMs = 0;
  /** Bumped per chunk either way; the sweeper sees idleness by comparing it, with no clock read per chunk. */
  protected ioTicks = 0;
  protected sweptTicks = 0;
  protected idleSinceMs = 0;

  // per-request routing results and metrics
  protected route: CompiledRoute | null = null;
  protected cluster: Cluster | null = null;
  protected endpoint: Endpoint<Http1Upstream> | null = null;
  protected stats: HttpStats | null = null;
  protected status = 0;
  protected responseStats: ResponseStats | null = null;
  /** Bytes of the current attempt, for zone traffic metrics. */
  protected sentBytes = 0;
  protected receivedBytes = 0;

  // reliability
  protected retry: CompiledRetry | null = null;
  protected retries = 0;
  protected idempotent = false;
  protected body: BodyReplay | null = null;
  protected retryTimer: NodeJS.Timeout | null = null;
  protected previousEndpoint: Endpoint | null = null;
  /** The current attempt is its endpoint's recovery probe. */
  protected probe = false;
  /** The queue whose slot this request holds. */
  protected slot: RequestQueue | null = null;
  /**
   * An attempt failed before the client finished sending the body: the rest is buffered, and the
   * retry (after this backoff) starts when it is complete. -1: none pending.
   */
  protected pendingRetryMs = -1;
  protected pendingRetryCode = ErrorCode.None;

  // MCP: the inspected request's call (follows the response), how its body is handled, and the
  // decoder of a chunked response body for it.
  protected mcpCall: McpCall | null = null;
  protected mcpMode = ResponseMode.Pass;
  private mcpDecoder: ChunkedScanner | null = null;
  /** The rewritten body goes out chunked (else delimited by close, for HTTP/1.0 clients). */
  private mcpChunked = false;

  protected readonly socket: net.Socket;
  /** `l5d-client-id: <SPIFFE ID>` for the app, when the client came over mesh TLS; else null. */
  protected idHeader: Buffer | null = null;

  constructor(
    protected readonly ctx: ProxyContext,
    protected readonly inbound: Inbound,
    lr: ListenerRuntime,
  ) {
    this.socket = inbound.socket;
    this.lr = lr;
    this.lastActiveMs = ctx.clock.now();
  }

  /** The exchange is over: the next pipelined request, or close. */
  protected abstract endExchange(): void;
  /** Ends the client connection at once (its exchange cannot be answered cleanly). */
  protected abstract abort(reason: string): void;
  /** Stops and restarts reading the client. */
  protected abstract pause(): void;
  protected abstract resume(): void;
  /** The balancer queue's callbacks (see QueueWaiter). */
  abstract onSlot(): void;
  abstract onFailFast(): void;

  protected bodyFits(retry: CompiledRetry): boolean {
    return this.bodyKind === BodyKind.Chunked || this.h.contentLength <= retry.maxBodyBytes;
  }

  /** Whether the current request may still have to be sent again (so its head is worth a copy). */
  protected mayResend(): boolean {
    const up = this.up;
    if (this.replayable && up !== null && up.reused) return true;
    const r = this.retry;
    if (r === null) return false;
    // Connection failures are the only retry of the default policy: past connect, no copy is needed.
    return r.mask !== RetryOn.ConnectFailure || up === null || up.connecting;
  }

  /** An endpoint from the balancer; a retry avoids the one that just failed when it can. */
  protected pickEndpoint(): Endpoint<Http1Upstream> | null {
    const b = this.cluster!.balancer;
    const e = b.pickAvoiding(this.previousEndpoint);
    this.probe = b.lastPickWasProbe;
    this.endpoint = e as Endpoint<Http1Upstream> | null;
    return this.endpoint;
  }

  /** Starts an attempt on `endpoint`: binds a connection and writes the request head. */
  protected dispatch(endpoint: Endpoint<Http1Upstream>, buf: Buffer, now: number): void {
    const h = this.h;
    let up: UpstreamConnection | null;
    if (this.overH2(endpoint)) {
      const { H2Link } = require('../http2/h2-link') as typeof import('../http2/h2-link');
      up = new H2Link(this.ctx, endpoint, this.lr.dstTcp, this.lr.http.maxHeadBytes, now);
    } else {
      up = endpoint.takeIdle();
      if (up === null) up = new Http1Upstream(this.ctx, endpoint, this.lr.dstTcp, this.lr.http.maxHeadBytes, now);
    }
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

  /**
   * Whether this request goes on as an HTTP/2 stream: to a service that speaks h2c, or to a meshed
   * endpoint (a peer proxy: multiplexed onto HTTP/2 inside mutual TLS) unless the service says
   * http1. Upgrades and CONNECT stay HTTP/1.1.
   */
  protected overH2(endpoint: Endpoint): boolean {
    if (this.upgrade || this.h.method === Method.Connect) return false;
    const proto = this.cluster!.snapshot.protocol;
    return endpoint.identity !== null ? proto !== 'http1' : proto === 'h2c';
  }

  /** Sends the whole request again (a retry, or a replay after a keep-alive race) on `endpoint`. */
  protected resend(endpoint: Endpoint<Http1Upstream>, now: number): void {
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
  protected writeRequestHead(up: UpstreamConnection, buf: Buffer): boolean {
    const h = this.h;
    let id = this.idHeader;
    if (this.mcpCall !== null) {
      // An inspected answer must be readable: no content coding (an absent Accept-Encoding would allow any).
      h.dropAll(buf, 'accept-encoding');
      id = id === null ? IDENTITY_ENCODING : Buffer.concat([id, IDENTITY_ENCODING]);
    }
    if (up.writeHead !== undefined) return up.writeHead(buf, h, id);
    let extra: Buffer | null = this.upgrade ? CONNECTION_UPGRADE : h.versionMinor === 0 ? CONNECTION_KEEP_ALIVE : null;
    if (id !== null) extra = extra === null ? id : Buffer.concat([id, extra]);
    const head = composeHead(buf, h, extra, this.upgrade ? h.upgradeField : -1);
    const ok = up.socket.write(head);
    this.inbound.afterWrite(up.socket, head.length);
    return ok;
  }

  /** The body of a request whose attempt failed early is complete: retry now, or fail if it did not fit. */
  protected startPendingRetry(): void {
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

  onUpstreamDrain(): void {
    if (this.waitingUpstreamDrain) {
      this.waitingUpstreamDrain = false;
      if (this.phase === Phase.Body || this.phase === Phase.Tunnel) this.resume();
    }
  }

  protected releaseSlot(): void {
    const q = this.slot;
    if (q !== null) {
      this.slot = null;
      q.release();
    }
  }

  protected leaveQueueAndTimers(): void {
    if (this.phase === Phase.Queued) this.cluster?.queue.cancel(this);
    if (this.retryTimer !== null) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
  }

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
    const call = this.mcpCall;
    if (call !== null && this.startMcpResponse(call, buf, h)) return;
    let extra: Buffer | null = null;
    if (this.closeAfter) extra = CONNECTION_CLOSE;
    else if (this.h.versionMinor === 0) extra = CONNECTION_KEEP_ALIVE;
    // Held until the body bytes of the same read are known, so that both leave in one write.
    this.pendingHead = composeHead(buf, h, extra);
  }

  /** An MCP response: observed as it flows, or rewritten (true: its head was written here). */
  private startMcpResponse(call: McpCall, buf: Buffer, h: HeadInfo): boolean {
    const ct = h.find(buf, 'content-type');
    const sid = h.find(buf, 'mcp-session-id');
    const ce = h.find(buf, 'content-encoding');
    const mode = call.onResponseHead(h.statusCode, ct === -1 ? '' : h.value(buf, ct), sid === -1 ? null : h.value(buf, sid).trim(), ce === -1 ? '' : h.value(buf, ce).trim());
    this.mcpMode = mode;
    this.mcpDecoder = null;
    if (mode === ResponseMode.Pass) return false;
    if (h.bodyKind === BodyKind.Chunked) {
      // The upstream already checks the framing; this scanner only hands the data on (slices, no copies).
      const d = new ChunkedScanner();
      d.onData = mode === ResponseMode.Observe ? (b, s, e) => call.observe(b.subarray(s, e)) : (b, s, e) => void this.mcpWrite(call.transform(b.subarray(s, e)));
      this.mcpDecoder = d;
    }
    if (mode === ResponseMode.Observe) return false;
    this.mcpChunked = this.h.versionMinor === 1;
    if (!this.mcpChunked) this.closeAfter = true;
    const extra = this.closeAfter ? CONNECTION_CLOSE : null;
    this.socket.write(rewrittenResponseHead(buf, h, call.statusOverride, call.contentTypeOverride, extra, this.mcpChunked));
    this.mcpWrite(call.takeOut());
    return true;
  }

  /** Rewritten MCP body bytes to the client (framed as a chunk when chunked). */
  private mcpWrite(b: Buffer | null): boolean {
    if (b === null || b.length === 0) return true;
    return this.socket.write(this.mcpChunked ? chunkOf(b) : b);
  }

  onResponseBody(chunk: Buffer): boolean {
    this.ioTicks++;
    this.receivedBytes += chunk.length;
    if (this.mcpMode !== ResponseMode.Pass) {
      const call = this.mcpCall!;
      const dec = this.mcpDecoder;
      if (this.mcpMode === ResponseMode.Transform) {
        if (dec !== null) dec.scan(chunk, 0, chunk.length);
        else this.mcpWrite(call.transform(chunk));
        return this.socket.writableLength < this.socket.writableHighWaterMark;
      }
      if (dec !== null) dec.scan(chunk, 0, chunk.length);
      else call.observe(chunk);
    }
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
  protected writeFromUpstream(b: Buffer): boolean {
    const sock = this.socket;
    const ok = sock.write(b);
    if (writeMayRetain(sock, b.length)) {
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
    const call = this.mcpCall;
    if (call !== null) {
      const rest = call.finish();
      if (this.mcpMode === ResponseMode.Transform) {
        this.mcpWrite(rest);
        if (this.mcpChunked) this.socket.write(LAST_CHUNK);
      }
      this.mcpCall = null;
      this.mcpMode = ResponseMode.Pass;
      this.mcpDecoder = null;
    }
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
    if (reusable) (up.endpoint as Endpoint<UpstreamConnection>).putIdle(up, this.lastActiveMs);
    else up.close();
    this.endExchange();
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

  protected enterTunnel(): void {
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
      this.inbound.afterWrite(this.up.socket, rest.length);
    }
  }

  /**
   * Whether the failed attempt is retried, and after how long (-1: not retried). `failure` is an
   * AttemptFailure, or -1 for a response with `status`. Spends a retry from the budget when yes.
   */
  protected retryDelay(failure: number, status: number): number {
    const r = this.retry;
    if (r === null || this.responseHeadSent || this.phase === Phase.Closed) return -1;
    if (failure < 0 ? !r.retriesStatus(status) : !r.retriesFailure(failure as AttemptFailure)) return -1;
    // A request that may have reached the upstream goes again only when that is safe.
    if (failure !== AttemptFailure.Connect && !r.mayResend(this.idempotent)) return -1;
    if (this.reqHeadBuf === null) return -1;
    if (this.bodyKind !== BodyKind.None && (this.body === null || this.body.overflow)) return -1;
    const delay = r.nextDelay(this.retries, this.deadlineMs, this.ctx.clock.now(), this.ctx.rng());
    if (delay >= 0) this.retries++;
    return delay;
  }

  /** Retries now, or once the client has sent the rest of the body (kept meanwhile). */
  protected retryAfterBody(delayMs: number, code: ErrorCode): void {
    if (this.reqDone) {
      this.scheduleRetry(delayMs);
      return;
    }
    this.previousEndpoint = this.endpoint;
    this.pendingRetryMs = delayMs;
    this.pendingRetryCode = code;
    this.resume();
  }

  protected scheduleRetry(delayMs: number): void {
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

  protected sendLocal(code: ErrorCode): void {
    this.socket.write(localReply(code, this.closeAfter));
    this.reqDone = true;
    this.endExchange();
  }

  /**
   * Ends the current attempt's hold on its upstream connection (closed: it is mid-exchange) and
   * reports `outcome` to the balancer (-1: already reported).
   */
  protected dropUpstream(outcome: Outcome | -1): void {
    const up = this.up;
    if (up === null) return;
    this.up = null;
    const endpoint = this.endpoint!;
    endpoint.inFlight--;
    this.flushTraffic(endpoint);
    up.close();
    if (outcome !== -1 && this.cluster !== null) this.cluster.balancer.outcome(endpoint, outcome, this.probe);
  }

  protected flushTraffic(endpoint: Endpoint): void {
    const t = endpoint.traffic;
    if (t !== null) t.record(this.sentBytes, this.receivedBytes);
    this.sentBytes = this.receivedBytes = 0;
  }

  /** The exchange ended without a whole response: the MCP operations it carried fail. */
  protected abortMcp(): void {
    const call = this.mcpCall;
    if (call === null) return;
    this.mcpCall = null;
    this.mcpMode = ResponseMode.Pass;
    this.mcpDecoder = null;
    call.abort();
  }

  protected finishStats(status: number, success: boolean, error: string): void {
    this.abortMcp();
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

  /** A deadline passed: the attempt is cancelled (its connection closed), and retried when allowed. */
  protected timeoutExchange(code: ErrorCode): void {
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
}

function retryTimerFired(x: Http1Exchange): void {
  x.onRetryTimer();
}
