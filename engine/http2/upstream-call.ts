// One attempt of a request on an upstream, seen through header objects: an HTTP/2 stream on a pooled
// session (H2Call here), or one exchange on a pooled HTTP/1.1 connection (H1Call). The exchange that
// owns the attempt writes the request body with boolean back-pressure and gets the response back
// through CallOwner; cancel() ends the attempt upstream (RST_STREAM CANCEL, or closing the connection).

import * as http2 from 'node:http2';
import { ErrorCode } from '../errors';
import type { ProxyContext } from '../context';
import type { TcpStats } from '../metrics/registry';
import type { Endpoint } from '../pool/endpoint';
import { type PooledSession, SessionPool } from './session-pool';

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
  write(chunk: Buffer): boolean;
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

/** An HTTP/2 stream on a pooled session of the endpoint. */
export class H2Call implements UpstreamCall {
  private readonly stream: CallStream | null = null;
  private readonly pooled: PooledSession;
  responseStarted = false;
  trailers: HeaderBlock | null = null;
  private ended = false;
  private cancelled = false;

  constructor(
    private readonly ctx: ProxyContext,
    private owner: CallOwner | null,
    endpoint: Endpoint,
    tcp: TcpStats,
    headers: http2.OutgoingHttpHeaders,
    endStream: boolean,
    nowMs: number,
  ) {
    const pool = endpoint.h2 ?? (endpoint.h2 = new SessionPool(endpoint));
    this.pooled = pool.take(ctx, tcp, nowMs);
    let s: CallStream;
    try {
      s = this.pooled.session.request(headers, { endStream }) as CallStream;
    } catch {
      // The session went away under us (destroyed, out of stream ids): nothing was sent.
      this.pooled.streamClosed(nowMs);
      this.ended = true;
      queueMicrotask(() => this.fail(ErrorCode.UpstreamReset, true));
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
  }

  get connecting(): boolean {
    return !this.pooled.connected;
  }

  write(chunk: Buffer): boolean {
    return this.stream === null || this.stream.write(chunk);
  }

  end(): void {
    if (this.stream !== null && !this.stream.writableEnded) this.stream.end();
  }

  pause(): void {
    this.stream?.pause();
  }

  resume(): void {
    this.stream?.resume();
  }

  cancel(): void {
    this.cancelled = true;
    this.owner = null;
    const s = this.stream;
    if (s !== null && !s.closed) s.close(NGHTTP2_CANCEL);
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
    this.pooled.streamClosed(this.ctx.clock.now());
    if (this.ended || this.cancelled) return;
    // Closed before its end: refused (not processed), or reset, or the connection never came up.
    const refused = s.rstCode === NGHTTP2_REFUSED_STREAM || (!this.responseStarted && this.pooled.goawayBefore(s.id));
    this.fail(!this.pooled.connected ? ErrorCode.UpstreamConnectFailed : ErrorCode.UpstreamReset, refused || !this.pooled.connected);
  }

  private fail(code: ErrorCode, refused: boolean): void {
    this.ended = true;
    const o = this.owner;
    this.owner = null;
    if (o !== null) o.onCallError(code, this.responseStarted, refused);
  }
}
