// One client connection speaking HTTP/2 (h2c with prior knowledge, or h2 inside mesh TLS chosen by
// ALPN): node:http2's core session API over the accepted socket, one H2Exchange per stream. Abuse is
// bounded by the session's limits (streams, header list size and pairs, session memory, invalid
// frames, rejected and reset streams, SETTINGS and PING floods): nghttp2 answers with RST_STREAM or
// GOAWAY and the connection ends, never the worker. A connection idle past the keep-alive timeout, or
// one whose client stops reading (a zero window that stalls every answer), is closed with GOAWAY.

import * as http2 from 'node:http2';
import type * as net from 'node:net';
import type { Cluster } from '../cluster';
import type { ListenerRuntime, ProxyContext, TrackedConnection } from '../context';
import type { HttpStats } from '../metrics/registry';
import type { CompiledRoute } from '../router/route-table';
import { H2Exchange, type H2Connection } from './h2-exchange';
import { CONNECTION_WINDOW_BYTES } from './session-pool';

const { NGHTTP2_REFUSED_STREAM } = http2.constants;

/** Streams a client may open at once on one connection. */
export const MAX_CONCURRENT_STREAMS = 256;

function serverOptions(lr: ListenerRuntime): http2.ServerOptions {
  return {
    settings: {
      maxConcurrentStreams: MAX_CONCURRENT_STREAMS,
      initialWindowSize: 1024 * 1024,
      // HPACK bombs: the decoded header list is bounded like an HTTP/1 head (431-sized).
      maxHeaderListSize: lr.http.maxHeadBytes,
      enablePush: false,
    },
    // Header compression state and buffered frames per session, in MB (then ENHANCE_YOUR_CALM).
    maxSessionMemory: 16,
    maxHeaderListPairs: 128,
    // Bad frames and refused streams past these end the session (GOAWAY).
    maxSessionInvalidFrames: 100,
    maxSessionRejectedStreams: 100,
    maxSettings: 32,
    maxOutstandingPings: 10,
  };
}

function ignore(): void {}

export class H2Downstream implements TrackedConnection, H2Connection {
  readonly session: http2.ServerHttp2Session;
  lr: ListenerRuntime;
  private gen: number;
  private readonly exchanges = new Set<H2Exchange>();
  private lastActiveMs: number;
  private closed = false;
  readonly remoteAddress: string;

  constructor(
    private readonly ctx: ProxyContext,
    socket: net.Socket,
    lr: ListenerRuntime,
    private readonly listener: string,
    readonly peerIdentity: string | null,
    first: Buffer | null,
  ) {
    this.lr = lr;
    this.gen = ctx.generation;
    this.lastActiveMs = ctx.clock.now();
    this.remoteAddress = socket.remoteAddress ?? '';
    // Bytes read by protocol detection go back in front of the socket's stream for the session.
    if (first !== null && first.length > 0) socket.unshift(first);
    const s = http2.performServerHandshake(socket, serverOptions(lr));
    this.session = s;
    s.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number) => this.onStream(stream, headers, flags));
    s.on('error', ignore);
    s.on('frameError', ignore);
    s.once('close', () => {
      this.onClose();
      socket.destroy();
    });
    // Accepted sockets allow half-open TCP (for HTTP/1 and opaque TCP); HTTP/2 has no use for it:
    // the client's FIN ends the connection once the streams under way have been answered.
    socket.once('end', () => {
      if (this.exchanges.size === 0) socket.destroy();
      else s.close();
    });
    s.once('connect', () => {
      try {
        s.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
      } catch {
        // Closed at once.
      }
    });
    ctx.track(this);
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number): void {
    try {
      this.lastActiveMs = this.ctx.clock.now();
      if (this.gen !== this.ctx.generation) {
        this.gen = this.ctx.generation;
        const lr = this.ctx.listener(this.listener);
        if (lr === undefined) {
          // The listener was removed by a reload: no new streams here.
          stream.close(NGHTTP2_REFUSED_STREAM);
          this.session.close();
          return;
        }
        this.lr = lr;
      }
      if (this.ctx.draining) {
        stream.close(NGHTTP2_REFUSED_STREAM);
        return;
      }
      const x = new H2Exchange(this.ctx, this, stream, headers, flags);
      this.exchanges.add(x);
      x.start();
    } catch (e) {
      this.ctx.internalError('h2-downstream', e);
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    }
  }

  exchangeDone(x: H2Exchange): void {
    this.exchanges.delete(x);
    this.lastActiveMs = this.ctx.clock.now();
  }

  private statsKey: string | null = null;
  private statsCached: HttpStats | null = null;

  statsFor(authority: string, route: CompiledRoute | null, cluster: Cluster | null, zone: string): HttpStats {
    // Most connections send one authority to one route: the last lookup is kept.
    const key = `${this.gen}\u0000${authority}\u0000${route?.name ?? ''}\u0000${cluster?.name ?? ''}\u0000${zone}`;
    if (key === this.statsKey && this.statsCached !== null) return this.statsCached;
    const s = this.ctx.metrics.httpStats(this.lr.direction, authority, route?.name ?? '', cluster?.name ?? '', zone, this.peerIdentity ?? '');
    this.statsKey = key;
    this.statsCached = s;
    return s;
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const x of [...this.exchanges]) x.onClientClose();
    this.exchanges.clear();
    this.ctx.untrack(this);
  }

  get listenerName(): string {
    return this.listener;
  }

  sweep(now: number): void {
    if (this.closed) return;
    for (const x of this.exchanges) x.sweep(now);
    if (this.exchanges.size === 0 && now - this.lastActiveMs > this.lr.http.keepAliveTimeoutMs) this.session.close();
  }

  drain(): void {
    // GOAWAY: streams under way finish, new ones go elsewhere.
    if (!this.closed) this.session.close();
  }

  destroy(): void {
    for (const x of [...this.exchanges]) x.abort();
    if (!this.session.destroyed) this.session.destroy();
  }

  openBytes(): void {
    // The client socket's bytes are counted by the engine; upstream sessions count their own.
  }
}
