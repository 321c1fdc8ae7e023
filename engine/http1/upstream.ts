// One HTTP/1.1 connection to an endpoint: it carries one exchange at a time for the downstream that
// holds it, parses the response head in place, forwards head and body slices to the client with
// back-pressure, and goes back to its endpoint's pool when the exchange leaves it reusable.

import * as net from 'node:net';
import { ErrorCode } from '../errors';
import type { Endpoint, Poolable } from '../pool/endpoint';
import type { TcpStats } from '../metrics/registry';
import type { ProxyContext, TrackedConnection } from '../context';
import { markConsumesWrites } from '../io/inbound';
import { ChunkedScanner } from './chunked-scanner';
import { BodyKind, ConnFlag, HeadInfo, markConnectionNamedFields, NEED_MORE, parseHead, PARSE_ERROR } from './head-parser';

/** What an upstream connection calls back on the downstream that owns the current exchange. */
export interface ExchangeOwner {
  /** A complete response head (interim or final) arrived; the owner forwards it. Returns false to stop. */
  onResponseHead(buf: Buffer, h: HeadInfo, end: number): void;
  /** Response body bytes to forward (a slice of an upstream read). Returns socket.write's result. */
  onResponseBody(chunk: Buffer): boolean;
  /** The response ended; `reusable` says whether this connection may carry another exchange. */
  onResponseEnd(reusable: boolean): void;
  /** The upstream failed before or during the response. */
  onUpstreamError(code: ErrorCode, responseStarted: boolean): void;
  /** The end of one upstream read's processing (flush what was held for coalescing). */
  onUpstreamReadDone(): void;
  /** The upstream socket drained: resume reading the client. */
  onUpstreamDrain(): void;
  /** Bytes from the upstream after a 101 or CONNECT 2xx: raw tunnel data. */
  onTunnelData(chunk: Buffer): boolean;
  onTunnelEnd(): void;
}

/**
 * What an HTTP/1 exchange holds for one attempt: a pooled HTTP/1.1 connection (Http1Upstream), or a
 * link that carries the request as an HTTP/2 stream (engine/http2/h2-link.ts). `socket` takes the
 * request bytes as written on the wire.
 */
export interface UpstreamConnection extends Poolable {
  readonly socket: net.Socket;
  readonly endpoint: Endpoint;
  readonly connecting: boolean;
  readonly connectStartMs: number;
  /** Carried an exchange before (a failure before any response may be a keep-alive race: replayed once). */
  readonly reused: boolean;
  readonly responseStarted: boolean;
  begin(owner: ExchangeOwner, headRequest: boolean, connectRequest: boolean, upgradeRequest: boolean): void;
  release(): void;
  close(): void;
  pauseReading(): void;
  resumeReading(): void;
  write(chunk: Buffer): boolean;
  /** Takes the request head as parsed (a link that does not speak HTTP/1.1 bytes); absent: write the bytes. */
  writeHead?(buf: Buffer, h: HeadInfo, extra: Buffer | null): boolean;
}

/**
 * Each upstream connection reads into its own buffer (net's `onread`) instead of a fresh allocation
 * per read: measured about 10% more requests/s on a plain relay. Slices of it that reach the client
 * are only safe while the client takes them synchronously; the owner pauses this connection's reads
 * until any write that did not complete is flushed (see Http1Downstream.writeFromUpstream).
 */
const READ_BUFFER_BYTES = 8 * 1024;

const enum Phase {
  Idle = 0,
  Head,
  Body,
  Tunnel,
  Closed,
}

export class Http1Upstream implements UpstreamConnection, TrackedConnection {
  readonly socket: net.Socket;
  owner: ExchangeOwner | null = null;
  idleSinceMs = 0;
  connecting = true;
  connectStartMs: number;
  /** True once this connection has carried an exchange (a failure then may be a keep-alive race). */
  reused = false;
  /** Any byte of the current response seen. */
  responseStarted = false;
  /** The request of the current exchange was HEAD (no response body) / CONNECT. */
  headRequest = false;
  connectRequest = false;
  upgradeRequest = false;
  private phase = Phase.Idle;
  private readonly h = new HeadInfo();
  private buf: Buffer | null = null;
  private bodyKind = BodyKind.None;
  private remaining = 0;
  private readonly chunked = new ChunkedScanner();
  private keepAlive = true;
  private readingPaused = false;
  private closedCounted = false;
  private closeErrno = '';

  constructor(
    private readonly ctx: ProxyContext,
    readonly endpoint: Endpoint<Http1Upstream>,
    private readonly tcp: TcpStats,
    private readonly maxHeadBytes: number,
    nowMs: number,
  ) {
    this.connectStartMs = nowMs;
    endpoint.open++;
    ctx.track(this);
    tcp.opened++;
    tcp.open++;
    let s: net.Socket;
    const mesh = endpoint.identity !== null ? ctx.meshTls : null;
    if (mesh !== null) {
      // A meshed endpoint: mutual TLS 1.3, its certificate must name its identity.
      // Decrypted bytes land in a buffer of its own too (tls.connect takes `onread`).
      // TLS hands a decrypted record on in buffer-sized pieces without looking at pause(): while
      // reading is paused (a piece held by a write not yet flushed) the next piece gets a fresh buffer.
      let readBuf: Buffer | null = null;
      const nextBuffer = (): Buffer => (readBuf === null || this.readingPaused ? (readBuf = Buffer.allocUnsafe(READ_BUFFER_BYTES)) : readBuf);
      s = mesh.connect(endpoint.host, endpoint.port, endpoint.identity!, true, { buffer: nextBuffer, callback: (n: number, buf: Uint8Array) => this.onRead(n, buf as Buffer) });
      markConsumesWrites(s);
      s.setNoDelay(true);
      s.on('secureConnect', () => {
        this.connecting = false;
      });
    } else {
      s = net.connect({
        host: endpoint.host,
        port: endpoint.port,
        noDelay: true,
        onread: { buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES), callback: (n: number, buf: Uint8Array) => this.onRead(n, buf as Buffer) },
      });
      s.on('connect', () => {
        this.connecting = false;
      });
    }
    this.socket = s;
    ctx.ownSocket(s);

    s.on('end', () => this.onEnd());
    s.on('error', (e: NodeJS.ErrnoException) => {
      this.closeErrno = e.code ?? 'error';
      this.onClose(true);
    });
    s.on('close', () => this.onClose(false));
    s.on('drain', () => {
      if (this.owner !== null) this.owner.onUpstreamDrain();
    });
  }

  get usable(): boolean {
    return this.phase === Phase.Idle && !this.socket.destroyed && !this.connecting;
  }

  /** Binds the next exchange. The request head is written by the owner. */
  begin(owner: ExchangeOwner, headRequest: boolean, connectRequest: boolean, upgradeRequest: boolean): void {
    this.owner = owner;
    this.phase = Phase.Head;
    this.responseStarted = false;
    this.headRequest = headRequest;
    this.connectRequest = connectRequest;
    this.upgradeRequest = upgradeRequest;
    this.keepAlive = true;
    this.h.reset(0);
    this.buf = null;
    if (this.readingPaused) this.resumeReading();
  }

  /** Marks the end of an exchange from the owner's side; the owner then pools or closes this connection. */
  release(): void {
    this.owner = null;
    this.reused = true;
    if (this.phase !== Phase.Closed) this.phase = Phase.Idle;
  }

  pauseReading(): void {
    if (!this.readingPaused) {
      this.readingPaused = true;
      this.socket.pause();
    }
  }

  resumeReading(): void {
    if (this.readingPaused) {
      this.readingPaused = false;
      this.socket.resume();
    }
  }

  close(): void {
    this.phase = Phase.Closed;
    this.owner = null;
    this.socket.destroy();
  }

  /** Bytes a tunnel owner sends through. */
  write(chunk: Buffer): boolean {
    return this.socket.write(chunk);
  }

  /** Always true: reads are paused explicitly (pauseReading), never by the return value. */
  private onRead(n: number, buf: Buffer): boolean {
    try {
      this.onData(buf.subarray(0, n));
    } catch (e) {
      this.ctx.internalError('http1-upstream', e);
      this.fail(ErrorCode.UpstreamBadResponse);
    }
    return true;
  }

  private onData(chunk: Buffer): void {
    const owner = this.owner;
    switch (this.phase) {
      case Phase.Head:
        this.responseStarted = true;
        this.parseHeads(chunk);
        this.owner?.onUpstreamReadDone();
        return;
      case Phase.Body:
        this.forwardBody(chunk, 0);
        return;
      case Phase.Tunnel:
        if (owner !== null && !owner.onTunnelData(chunk)) this.pauseReading();
        return;
      default:
        // Bytes on an idle connection are a protocol violation: the response to nothing.
        this.close();
    }
  }

  private parseHeads(chunk: Buffer): void {
    let buf: Buffer;
    if (this.buf === null) {
      buf = chunk;
      this.h.reset(0);
    } else {
      buf = Buffer.concat([this.buf, chunk]);
      this.buf = null;
    }
    for (;;) {
      const h = this.h;
      const end = parseHead(buf, h, false, this.maxHeadBytes);
      if (end === NEED_MORE) {
        // Kept across reads: a copy, since the read buffer is refilled by the next read.
        const rest = h.base === 0 ? buf : buf.subarray(h.base);
        this.buf = buf === chunk ? Buffer.from(rest) : rest;
        if (h.base !== 0) h.base = 0;
        return;
      }
      if (end === PARSE_ERROR) {
        this.fail(h.error === ErrorCode.HeadTooLarge ? ErrorCode.UpstreamHeadTooLarge : ErrorCode.UpstreamBadResponse);
        return;
      }
      const owner = this.owner!;
      const status = h.statusCode;
      if ((h.conn & ConnFlag.Other) !== 0) markConnectionNamedFields(buf, h);
      if (status < 200 && status !== 101) {
        // Interim response (100 Continue, 103 Early Hints): forward and wait for the final one.
        owner.onResponseHead(buf, h, end);
        if (this.owner === null) return;
        if (end >= buf.length) return;
        h.reset(end);
        continue;
      }
      // Framing of the final response (RFC 9112 section 6.3).
      let kind = h.bodyKind;
      if (status === 101) {
        if (!this.upgradeRequest) return this.fail(ErrorCode.UpstreamBadResponse);
        kind = BodyKind.None;
        this.phase = Phase.Tunnel;
      } else if (this.connectRequest && status < 300) {
        kind = BodyKind.None;
        this.phase = Phase.Tunnel;
      } else if (this.headRequest || status === 204 || status === 304) {
        kind = BodyKind.None;
      }
      this.bodyKind = kind;
      h.bodyKind = kind;
      this.keepAlive =
        kind !== BodyKind.UntilClose &&
        this.phase !== Phase.Tunnel &&
        (h.versionMinor >= 1 ? (h.conn & ConnFlag.Close) === 0 : (h.conn & ConnFlag.KeepAlive) !== 0);
      owner.onResponseHead(buf, h, end);
      if (this.owner !== owner) return;
      if (this.phase === Phase.Tunnel) {
        if (end < buf.length && !owner.onTunnelData(buf.subarray(end))) this.pauseReading();
        return;
      }
      if (kind === BodyKind.None) {
        if (end < buf.length) this.keepAlive = false; // bytes after a body-less response: do not reuse
        this.finish();
        return;
      }
      this.phase = Phase.Body;
      if (kind === BodyKind.Length) this.remaining = h.contentLength;
      else if (kind === BodyKind.Chunked) this.chunked.reset();
      if (end < buf.length) this.forwardBody(buf, end);
      return;
    }
  }

  private forwardBody(buf: Buffer, start: number): void {
    const owner = this.owner!;
    const len = buf.length - start;
    let ok: boolean;
    switch (this.bodyKind) {
      case BodyKind.Length: {
        if (len < this.remaining) {
          this.remaining -= len;
          ok = owner.onResponseBody(start === 0 ? buf : buf.subarray(start));
          break;
        }
        const stop = start + this.remaining;
        this.remaining = 0;
        owner.onResponseBody(start === 0 && stop === buf.length ? buf : buf.subarray(start, stop));
        if (stop < buf.length) this.keepAlive = false;
        this.finish();
        return;
      }
      case BodyKind.Chunked: {
        const r = this.chunked.scan(buf, start, buf.length);
        if (r === -2) {
          this.fail(ErrorCode.UpstreamBadResponse);
          return;
        }
        if (r === -1) {
          ok = owner.onResponseBody(start === 0 ? buf : buf.subarray(start));
          break;
        }
        owner.onResponseBody(buf.subarray(start, r));
        if (r < buf.length) this.keepAlive = false;
        this.finish();
        return;
      }
      default:
        ok = owner.onResponseBody(start === 0 ? buf : buf.subarray(start));
    }
    if (!ok) this.pauseReading();
  }

  private finish(): void {
    const owner = this.owner!;
    this.phase = Phase.Idle;
    owner.onResponseEnd(this.keepAlive);
  }

  private fail(code: ErrorCode): void {
    const owner = this.owner;
    const started = this.phase === Phase.Body || this.phase === Phase.Tunnel;
    this.close();
    if (owner !== null) owner.onUpstreamError(code, started);
  }

  private onEnd(): void {
    if (this.phase === Phase.Body && this.bodyKind === BodyKind.UntilClose) {
      this.keepAlive = false;
      this.finish();
      this.close();
      return;
    }
    if (this.phase === Phase.Tunnel) {
      this.owner?.onTunnelEnd();
      return;
    }
    this.onClose(false);
  }

  private onClose(isError: boolean): void {
    if (!this.closedCounted) {
      this.closedCounted = true;
      this.endpoint.open--;
      const t = this.tcp;
      t.open--;
      t.closed++;
      t.readBytes += this.socket.bytesRead;
      t.writeBytes += this.socket.bytesWritten;
      if (isError) t.closeErrors.set(this.closeErrno || 'error', (t.closeErrors.get(this.closeErrno || 'error') ?? 0) + 1);
      this.ctx.untrack(this);
    }
    const phase = this.phase;
    this.phase = Phase.Closed;
    const owner = this.owner;
    if (owner === null) {
      this.socket.destroy();
      return;
    }
    this.owner = null;
    this.socket.destroy();
    if (phase === Phase.Tunnel) {
      owner.onTunnelEnd();
      return;
    }
    const code = this.connecting ? ErrorCode.UpstreamConnectFailed : ErrorCode.UpstreamReset;
    owner.onUpstreamError(code, phase === Phase.Body);
  }

  sweep(): void {
    // Timeouts of an exchange are the downstream's; idle timeouts are the pool's.
  }

  drain(): void {
    // Idle pooled connections are closed by the engine when the drain ends.
  }

  destroy(): void {
    this.close();
  }

  /** Bytes so far, for metrics of open connections. */
  openBytes(add: (s: TcpStats, read: number, written: number) => void): void {
    if (!this.closedCounted) add(this.tcp, this.socket.bytesRead, this.socket.bytesWritten);
  }
}
