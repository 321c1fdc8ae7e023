// One client connection speaking HTTP/1.1: parses request heads in place, routes each request, binds
// a pooled upstream connection, and forwards head and body slices with back-pressure both ways.
// Pipelined requests are served one after another (responses in order); Upgrade and CONNECT become
// tunnels. Every refusal is a local reply from errors.ts; nothing here throws on bad input.

import type * as net from 'node:net';
import type { Inbound } from '../io/inbound';
import type { Cluster } from '../cluster';
import type { ListenerRuntime, ProxyContext, TrackedConnection } from '../context';
import { ErrorCode, errorInfo, localReply } from '../errors';
import type { HttpStats, ResponseStats } from '../metrics/registry';
import type { Endpoint } from '../pool/endpoint';
import type { CompiledRoute } from '../router/route-table';
import { ChunkedScanner } from './chunked-scanner';
import { BodyKind, ConnFlag, HeadInfo, markConnectionNamedFields, Method, NEED_MORE, parseHead, PARSE_ERROR } from './head-parser';
import { composeHead, CONNECTION_CLOSE, CONNECTION_KEEP_ALIVE, CONNECTION_UPGRADE, joinHeadAndBody, writeHead } from './head-writer';
import { type ExchangeOwner, Http1Upstream } from './upstream';

const enum Phase {
  /** Between requests (keep-alive idle) or reading a head. */
  Head = 0,
  /** Forwarding the request body. */
  Body,
  /** Request sent; waiting for the response to end. */
  Wait,
  Tunnel,
  Closed,
}

/** Pipelined bytes buffered while a request is in flight before the client is paused. */
const MAX_STASH_BYTES = 64 * 1024;

const EMPTY = Buffer.alloc(0);

const METHOD_NAMES = ['', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];

export class Http1Downstream implements ExchangeOwner, TrackedConnection {
  private lr: ListenerRuntime;
  private gen: number;
  private phase = Phase.Head;
  /** Unprocessed client bytes; a partial head starts at h.base. */
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

  // timing (clock ms)
  private headStartMs = -1;
  private lastActiveMs: number;
  private reqStartMs = 0;
  private deadlineMs = 0;
  private responseDeadlineMs = 0;

  // per-request routing results and metrics
  private route: CompiledRoute | null = null;
  private cluster: Cluster | null = null;
  private endpoint: Endpoint<Http1Upstream> | null = null;
  private stats: HttpStats | null = null;
  private status = 0;
  private responseStats: ResponseStats | null = null;
  // authority cache: the last host bytes seen on this connection and their strings
  private hostBuf: Buffer | null = null;
  private hostStart = 0;
  private hostEnd = 0;
  private authority = '';
  private hostName = '';
  private cacheKey: object | null = null;
  private cacheZone = '';

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
   * After a delivery: bytes kept for later (a partial head, pipelined requests) must not point into
   * the socket's read buffer, which the next read refills; so must the head of a request that may be
   * replayed on a new upstream connection.
   */
  private keepAcrossReads(): void {
    const inbound = this.inbound;
    if (this.buf !== null) this.buf = inbound.retain(this.buf);
    const head = this.reqHeadBuf;
    if (head !== null && inbound.isTransient(head)) {
      // Only a request on a reused pooled connection can be replayed: copy its head just then.
      if (this.replayable && this.up !== null && this.up.reused && (this.phase === Phase.Body || this.phase === Phase.Wait)) {
        const h = this.h;
        this.reqHeadBuf = Buffer.from(head.subarray(h.base, h.base + h.headLen));
        h.base = 0;
      } else {
        this.reqHeadBuf = null;
      }
    }
  }

  // ------------------------------------------------------------------ client side

  private onData(chunk: Buffer): void {
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
        // Pipelined bytes of later requests: keep them until this exchange ends.
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
    const endpoint = cluster === null ? null : (cluster.picker.pick() as Endpoint<Http1Upstream> | null);
    this.endpoint = endpoint;
    this.stats = this.statsFor(route, cluster, endpoint);
    this.stats.requests++;
    this.stats.inFlight++;
    if (endpoint === null) {
      this.localReplyForRequest(ErrorCode.NoEndpoints, end);
      return;
    }
    this.deadlineMs = route !== null && route.requestTimeoutMs > 0 ? now + route.requestTimeoutMs : 0;
    this.responseDeadlineMs = lr.http.responseTimeoutMs > 0 ? now + lr.http.responseTimeoutMs : 0;

    // Body framing.
    this.bodyKind = h.bodyKind;
    this.remaining = h.contentLength > 0 ? h.contentLength : 0;
    if (this.bodyKind === BodyKind.Chunked) this.chunked.reset();
    this.reqDone = this.bodyKind === BodyKind.None;
    this.replayable = this.reqDone && h.method !== Method.Post && h.method !== Method.Connect && h.method !== Method.Patch;

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

  private dispatch(endpoint: Endpoint<Http1Upstream>, buf: Buffer, now: number): void {
    const h = this.h;
    let up = endpoint.takeIdle();
    if (up === null) up = new Http1Upstream(this.ctx, endpoint, this.lr.dstTcp, this.lr.http.maxHeadBytes, now);
    this.up = up;
    endpoint.inFlight++;
    up.begin(this, h.method === Method.Head, h.method === Method.Connect, this.upgrade);
    if (!this.writeRequestHead(up, buf)) {
      this.waitingUpstreamDrain = true;
      if (!this.reqDone) this.pause();
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
    const up = this.up!;
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
  }

  private writeUp(up: Http1Upstream, chunk: Buffer): void {
    if (!up.socket.write(chunk)) {
      this.waitingUpstreamDrain = true;
      this.pause();
    }
    this.inbound.afterWrite(up.socket);
  }

  private requestBodyError(code: ErrorCode): void {
    // The upstream has part of a body it can never finish: it is not reusable.
    const up = this.up;
    this.up = null;
    if (up !== null) {
      this.endpoint!.inFlight--;
      up.close();
    }
    if (!this.responseHeadSent) {
      this.finishStats(errorInfo(code).status, false, errorInfo(code).name);
      this.ctx.metrics.countProtocolError(errorInfo(code).name);
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
    // Waiting for a response: answer it and any complete pipelined requests, then close.
  }

  private onClientClose(): void {
    if (this.phase === Phase.Closed && this.up === null) {
      this.cleanup();
      return;
    }
    const up = this.up;
    this.up = null;
    if (up !== null) {
      this.endpoint!.inFlight--;
      up.close();
      if (this.stats !== null && this.stats.inFlight > 0 && this.phase !== Phase.Tunnel) {
        this.finishStats(this.status || 499, false, 'client-closed');
      }
    }
    this.phase = Phase.Closed;
    this.cleanup();
  }

  private cleanup(): void {
    if (this.socket.destroyed === false) this.socket.destroy();
    if (!this.untracked) {
      this.untracked = true;
      this.ctx.untrack(this);
      giveHeadInfo(this.h);
    }
  }
  private untracked = false;

  // ------------------------------------------------------------------ upstream callbacks

  onResponseHead(buf: Buffer, h: HeadInfo, end: number): void {
    void end;
    const status = h.statusCode;
    const interim = status < 200 && status !== 101;
    if (interim) {
      this.writeFromUpstream(composeHead(buf, h, null));
      return;
    }
    this.status = status;
    this.responseHeadSent = true;
    const stats = this.stats!;
    const rs = stats.response(status);
    this.responseStats = rs;
    const now = this.ctx.clock.now();
    this.lastActiveMs = now;
    const rttMs = now - this.reqStartMs;
    rs.latency.recordMs(rttMs);
    // Latency feedback for the balancer (nothing to balance with a single endpoint).
    const cluster = this.cluster;
    if (cluster !== null && cluster.endpoints.length > 1 && cluster.picker.observe !== undefined && this.endpoint !== null) {
      cluster.picker.observe(this.endpoint, rttMs);
    }
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
    this.endpoint!.inFlight--;
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
    this.up = null;
    if (up !== null) this.endpoint!.inFlight--;
    if (responseStarted || this.responseHeadSent) {
      this.abort(errorInfo(code).name);
      return;
    }
    // A pooled connection that the server closed just as we reused it: replay once on a new one.
    if (up !== null && up.reused && this.replayable && this.reqHeadBuf !== null && code === ErrorCode.UpstreamReset && !up.responseStarted && this.endpoint !== null) {
      this.replayable = false;
      this.dispatchReplay();
      return;
    }
    this.finishStats(errorInfo(code).status, false, errorInfo(code).name);
    if (!this.reqDone) this.closeAfter = true;
    this.sendLocal(code);
  }

  private dispatchReplay(): void {
    const endpoint = this.endpoint!;
    const now = this.ctx.clock.now();
    const up = new Http1Upstream(this.ctx, endpoint, this.lr.dstTcp, this.lr.http.maxHeadBytes, now);
    this.up = up;
    endpoint.inFlight++;
    up.begin(this, this.h.method === Method.Head, false, this.upgrade);
    // The request head is still in place (kept across reads): h and its buffer are untouched until the exchange ends.
    this.writeRequestHead(up, this.reqHeadBuf!);
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
    this.resume();
    // Bytes the client sent after its head belong to the tunnel.
    const rest = this.buf;
    this.buf = null;
    if (rest !== null && rest.length > 0 && this.up !== null) {
      this.up.write(rest);
      this.inbound.afterWrite(this.up.socket);
    }
  }

  // ------------------------------------------------------------------ local replies and failures

  /** Answers a request that was parsed but is not forwarded (no route, no endpoint, draining). */
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
    if (this.stats !== null) this.finishStats(this.status || 502, false, reason);
    const up = this.up;
    this.up = null;
    if (up !== null) {
      this.endpoint!.inFlight--;
      up.close();
    }
    this.phase = Phase.Closed;
    this.socket.destroy();
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

  private reqHeadBuf: Buffer | null = null;

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
  private cachedStats: HttpStats | null = null;
  private cachedRoute: CompiledRoute | null = null;

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
      case Phase.Body:
      case Phase.Wait: {
        const up = this.up;
        if (up === null) return;
        if (up.connecting && this.cluster !== null && now - up.connectStartMs > this.cluster.connectTimeoutMs) {
          this.timeoutExchange(ErrorCode.ConnectTimeout);
        } else if (this.deadlineMs !== 0 && now > this.deadlineMs) {
          this.timeoutExchange(ErrorCode.RequestTimeout);
        } else if (this.responseDeadlineMs !== 0 && !up.responseStarted && now > this.responseDeadlineMs) {
          this.timeoutExchange(ErrorCode.ResponseTimeout);
        }
        return;
      }
      default:
        return;
    }
  }

  private timeoutExchange(code: ErrorCode): void {
    const up = this.up;
    this.up = null;
    if (up !== null) {
      this.endpoint!.inFlight--;
      up.close();
    }
    if (this.responseHeadSent) {
      this.abort(errorInfo(code).name);
      return;
    }
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

/**
 * HeadInfo objects of closed client connections, reused: their typed arrays live outside the JS heap
 * and would otherwise wait for a full GC (measured: megabytes of RSS under connection churn).
 */
const freeHeads: HeadInfo[] = [];

function takeHeadInfo(): HeadInfo {
  return freeHeads.pop() ?? new HeadInfo();
}

function giveHeadInfo(h: HeadInfo): void {
  if (freeHeads.length < 256) {
    h.reset(0);
    freeHeads.push(h);
  }
}

/** Byte equality of two short ranges (a JS loop beats a call into C++ for a host name). */
function sameBytes(a: Buffer, as: number, b: Buffer, bs: number, n: number): boolean {
  if (n > 64) return a.compare(b, bs, bs + n, as, as + n) === 0;
  for (let i = 0; i < n; i++) if (a[as + i] !== b[bs + i]) return false;
  return true;
}

function hostWithoutPort(authority: string): string {
  let host = authority;
  if (host.charCodeAt(0) === 0x5b) {
    const close = host.indexOf(']');
    host = close === -1 ? host : host.slice(1, close);
  } else {
    const colon = host.lastIndexOf(':');
    if (colon !== -1) host = host.slice(0, colon);
  }
  // Lower-case only when needed (most clients already send lower-case hosts).
  for (let i = 0; i < host.length; i++) {
    const c = host.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) return host.toLowerCase();
  }
  return host;
}
