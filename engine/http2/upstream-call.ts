// One attempt of a request on an upstream, seen through header objects: an HTTP/2 stream on a pooled
// session (H2Call here), or one exchange on a pooled HTTP/1.1 connection (H1Call). The exchange that
// owns the attempt writes the request body with boolean back-pressure and gets the response back
// through CallOwner; cancel() ends the attempt upstream (RST_STREAM CANCEL, or closing the connection).

import type * as http2 from 'node:http2';
import { ErrorCode } from '../errors';
import type { ProxyContext } from '../context';
import type { TcpStats } from '../metrics/registry';
import type { Endpoint } from '../pool/endpoint';
import type { ClientStreamOwner, H2ClientStream, RequestHeaders, ResponseHeaders } from './codec/client-connection';
import { type PooledSession, SessionPool, type SessionWaiter } from './session-pool';

export type HeaderBlock = http2.IncomingHttpHeaders;

export interface CallOwner {
  /** The final response head (1xx are not passed on). `endStream`: no body or trailers follow. */
  onCallHead(status: number, headers: HeaderBlock, endStream: boolean): void;
  /** A response body chunk; returns false when the client is full (the call then pauses until resume()). */
  onCallData(chunk: Buffer): boolean;
  /** The response ended, with its trailers when it had any. */
  onCallEnd(trailers: HeaderBlock | null): void;
  /**
   * The attempt failed. `started`: some of the response was passed on. `refused`: the upstream
   * provably did not process the request (REFUSED_STREAM, a GOAWAY past it, a reused connection
   * closed before answering), so it may be sent again whatever its method.
   */
  onCallError(code: ErrorCode, started: boolean, refused: boolean): void;
  /** The request side drained after write() returned false. */
  onCallDrain(): void;
}

export interface UpstreamCall {
  /** Still connecting (for the connect timeout). */
  readonly connecting: boolean;
  /** Some of the response arrived (for the response timeout). */
  readonly responseStarted: boolean;
  /** `flushed` is called once the chunk is no longer referenced (sent on, or dropped with the call). */
  write(chunk: Buffer, flushed?: () => void): boolean;
  /** The request body is complete. */
  end(): void;
  pause(): void;
  resume(): void;
  /** Ends the attempt upstream; no owner callback follows. */
  cancel(): void;
}

/**
 * An HTTP/2 stream on a pooled session of the endpoint (the proxy's own client codec). The stream
 * opens once the session knows its peer's stream limit (the first SETTINGS) and has a slot under it;
 * body written before that waits here, and write() says "full" meanwhile so that the client is held
 * by flow control.
 */
export class H2Call implements UpstreamCall, SessionWaiter, ClientStreamOwner {
  private stream: H2ClientStream | null = null;
  private pooled: PooledSession | null = null;
  responseStarted = false;
  private trailers: HeaderBlock | null = null;
  private done = false;
  private cancelled = false;
  private paused = false;
  private pending: [Buffer, (() => void) | undefined][] | null = null;
  private pendingEnd = false;

  constructor(
    private readonly ctx: ProxyContext,
    private owner: CallOwner | null,
    endpoint: Endpoint,
    tcp: TcpStats,
    private readonly headers: http2.OutgoingHttpHeaders,
    private readonly endStream: boolean,
    nowMs: number,
  ) {
    const pool = endpoint.h2 ?? (endpoint.h2 = new SessionPool(endpoint));
    pool.takeFor(this, ctx, tcp, nowMs);
  }

  /** The session is ready for this stream (or closed before it ever was). */
  onSession(pooled: PooledSession): void {
    this.pooled = pooled;
    if (this.cancelled || pooled.conn.closed || pooled.conn.goingAway) {
      pooled.streamClosed(this.ctx.clock.now());
      this.flushPending();
      // Never sent: safe to send again elsewhere.
      if (!this.cancelled) this.fail(pooled.connected ? ErrorCode.UpstreamReset : ErrorCode.UpstreamConnectFailed, true);
      return;
    }
    const s = pooled.conn.request(this.headers as RequestHeaders, this.endStream, this);
    this.stream = s;
    if (this.paused) s.pause();
    const pending = this.pending;
    this.pending = null;
    if (pending !== null) for (const [c, cb] of pending) s.write(c, cb);
    if (this.pendingEnd) s.end();
    if (pending !== null) this.owner?.onCallDrain();
  }

  /** Releases chunks that will never be sent. */
  private flushPending(): void {
    const pending = this.pending;
    this.pending = null;
    if (pending !== null) for (const [, cb] of pending) cb?.();
  }

  get connecting(): boolean {
    return this.pooled === null || !this.pooled.connected;
  }

  write(chunk: Buffer, flushed?: () => void): boolean {
    const s = this.stream;
    if (s === null) {
      if (this.pooled === null && !this.cancelled && !this.done) {
        (this.pending ??= []).push([chunk, flushed]);
        return false;
      }
      flushed?.();
      return true;
    }
    return s.write(chunk, flushed);
  }

  end(): void {
    if (this.stream === null) this.pendingEnd = true;
    else this.stream.end();
  }

  pause(): void {
    this.paused = true;
    this.stream?.pause();
  }

  resume(): void {
    this.paused = false;
    this.stream?.resume();
  }

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.owner = null;
    const s = this.stream;
    if (s !== null) {
      s.cancel();
      this.release();
    } else this.flushPending();
  }

  // ClientStreamOwner: the stream's side.

  onResponse(status: number, headers: ResponseHeaders, endStream: boolean): void {
    this.responseStarted = true;
    const o = this.owner;
    if (o !== null) o.onCallHead(status, headers as HeaderBlock, endStream);
  }

  onData(chunk: Buffer): boolean {
    const o = this.owner;
    return o === null || o.onCallData(chunk);
  }

  onTrailers(trailers: ResponseHeaders): void {
    this.trailers = trailers as HeaderBlock;
  }

  onEnd(): void {
    if (this.done) return;
    this.done = true;
    this.release();
    const o = this.owner;
    this.owner = null;
    if (o !== null) o.onCallEnd(this.trailers);
  }

  onReset(_code: number, refused: boolean): void {
    if (this.done) return;
    this.release();
    const pooled = this.pooled!;
    // Closed before its end: refused (not processed), reset, or the connection never came up.
    this.fail(!pooled.connected ? ErrorCode.UpstreamConnectFailed : ErrorCode.UpstreamReset, refused || !pooled.connected);
  }

  onDrain(): void {
    this.owner?.onCallDrain();
  }

  private released = false;

  /** The stream's slot on the session is free again. */
  private release(): void {
    if (this.released || this.pooled === null) return;
    this.released = true;
    this.pooled.streamClosed(this.ctx.clock.now());
  }

  private fail(code: ErrorCode, refused: boolean): void {
    this.done = true;
    const o = this.owner;
    this.owner = null;
    if (o !== null) o.onCallError(code, this.responseStarted, refused);
  }
}
