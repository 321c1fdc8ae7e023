// One attempt of a request on an upstream, seen through header objects: an HTTP/2 stream on a pooled
// session (H2Call here), or one exchange on a pooled HTTP/1.1 connection (H1Call). The exchange that
// owns the attempt writes the request body with boolean back-pressure and gets the response back
// through CallOwner; cancel() ends the attempt upstream (RST_STREAM CANCEL, or closing the connection).

import * as http2 from 'node:http2';
import { ErrorCode } from '../errors';
import type { ProxyContext } from '../context';
import type { TcpStats } from '../metrics/registry';
import type { Endpoint } from '../pool/endpoint';
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

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_FLAG_END_STREAM, HTTP2_HEADER_STATUS } = http2.constants;
const CALL = Symbol('bowline.call');

type CallStream = http2.ClientHttp2Stream & { [CALL]: H2Call };

// Listeners shared by every stream (no closure per request): the stream finds its call by symbol.
function onResponse(this: CallStream, headers: HeaderBlock, flags: number): void {
  this[CALL].onResponse(headers, flags);
}
function onData(this: CallStream, chunk: Buffer): void {
  this[CALL].onData(chunk);
}
function onTrailers(this: CallStream, trailers: HeaderBlock): void {
  this[CALL].trailers = trailers;
}
function onEnd(this: CallStream): void {
  this[CALL].onEnd();
}
function onClose(this: CallStream): void {
  this[CALL].onClose();
}
function onDrain(this: CallStream): void {
  this[CALL].onDrain();
}
function ignore(): void {}

/**
 * An HTTP/2 stream on a pooled session of the endpoint. The stream opens once the session knows its
 * peer's stream limit (the first SETTINGS); body written before that waits here, and write() says
 * "full" meanwhile so that the client is held by flow control.
 */
export class H2Call implements UpstreamCall, SessionWaiter {
  private stream: CallStream | null = null;
  private pooled: PooledSession | null = null;
  responseStarted = false;
  trailers: HeaderBlock | null = null;
  private ended = false;
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
    if (this.cancelled) {
      pooled.streamClosed(this.ctx.clock.now());
      this.flushPending();
      return;
    }
    let s: CallStream;
    try {
      s = pooled.session.request(this.headers, { endStream: this.endStream }) as CallStream;
    } catch {
      // The session went away (closed before it came up, out of stream ids): nothing was sent.
      pooled.streamClosed(this.ctx.clock.now());
      this.flushPending();
      this.fail(pooled.connected ? ErrorCode.UpstreamReset : ErrorCode.UpstreamConnectFailed, true);
      return;
    }
    s[CALL] = this;
    s.on('response', onResponse);
    s.on('data', onData);
    s.on('trailers', onTrailers);
    s.on('end', onEnd);
    s.on('close', onClose);
    s.on('drain', onDrain);
    s.on('error', ignore);
    this.stream = s;
    if (this.paused) s.pause();
    const pending = this.pending;
    this.pending = null;
    if (pending !== null) for (const [c, cb] of pending) this.write(c, cb);
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
    if (s === null && this.pooled === null && !this.cancelled) {
      (this.pending ??= []).push([chunk, flushed]);
      return false;
    }
    if (s === null || s.destroyed) {
      flushed?.();
      return true;
    }
    return flushed === undefined ? s.write(chunk) : s.write(chunk, flushed);
  }

  end(): void {
    if (this.stream === null) this.pendingEnd = true;
    else if (!this.stream.writableEnded) this.stream.end();
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
    this.cancelled = true;
    this.owner = null;
    const s = this.stream;
    if (s !== null && !s.closed) s.close(NGHTTP2_CANCEL);
    if (s === null) this.flushPending();
  }

  onResponse(headers: HeaderBlock, flags: number): void {
    this.responseStarted = true;
    const o = this.owner;
    if (o !== null) o.onCallHead(Number(headers[HTTP2_HEADER_STATUS]), headers, (flags & NGHTTP2_FLAG_END_STREAM) !== 0);
  }

  onData(chunk: Buffer): void {
    const o = this.owner;
    if (o !== null && !o.onCallData(chunk)) this.stream!.pause();
  }

  onEnd(): void {
    if (this.ended) return;
    this.ended = true;
    const o = this.owner;
    this.owner = null;
    if (o !== null) o.onCallEnd(this.trailers);
  }

  onDrain(): void {
    this.owner?.onCallDrain();
  }

  onClose(): void {
    const s = this.stream!;
    const pooled = this.pooled!;
    pooled.streamClosed(this.ctx.clock.now());
    if (this.ended || this.cancelled) return;
    // Closed before its end: refused (not processed), or reset, or the connection never came up.
    const refused = s.rstCode === NGHTTP2_REFUSED_STREAM || (!this.responseStarted && pooled.goawayBefore(s.id));
    this.fail(!pooled.connected ? ErrorCode.UpstreamConnectFailed : ErrorCode.UpstreamReset, refused || !pooled.connected);
  }

  private fail(code: ErrorCode, refused: boolean): void {
    this.ended = true;
    const o = this.owner;
    this.owner = null;
    if (o !== null) o.onCallError(code, this.responseStarted, refused);
  }
}
