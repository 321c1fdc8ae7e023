// One client connection speaking HTTP/2 (h2c with prior knowledge, or h2 inside mesh TLS chosen by
// ALPN), on the proxy's own codec (codec/server-connection.ts): frames are parsed from the socket's
// read buffer, one H2Exchange runs per stream. node:http2 is not on this path: measured at 0.15x
// HAProxy on h2c (perf/README.md), it stays for upstream HTTP/2 sessions only. A connection idle
// past the keep-alive timeout is closed with GOAWAY; a stream whose client stops reading (a zero
// window) is reset after the same time without progress (see H2Exchange.sweep).

import type { Cluster } from '../cluster';
import type { ListenerRuntime, ProxyContext, TrackedConnection } from '../context';
import type { Inbound } from '../io/inbound';
import type { HttpStats } from '../metrics/registry';
import type { CompiledRoute } from '../router/route-table';
import { H2Error } from './codec/frames';
import { type ConnectionHandler, H2ServerConnection } from './codec/server-connection';
import type { H2ServerStream } from './codec/server-stream';
import { H2Exchange, type H2Connection } from './h2-exchange';

/** Streams a client may open at once on one connection. */
export const MAX_CONCURRENT_STREAMS = 256;
/** Our window per stream and per connection for request bodies. */
const STREAM_WINDOW = 1024 * 1024;
const CONNECTION_WINDOW = 4 * 1024 * 1024;

export class H2Downstream implements TrackedConnection, H2Connection, ConnectionHandler {
  private readonly conn: H2ServerConnection;
  lr: ListenerRuntime;
  private gen: number;
  private readonly exchanges = new Set<H2Exchange>();
  private lastActiveMs: number;
  private closed = false;
  readonly remoteAddress: string;
  readonly originalDst: [string, number] | null;

  constructor(
    private readonly ctx: ProxyContext,
    private readonly inbound: Inbound,
    lr: ListenerRuntime,
    private readonly listener: string,
    readonly peerIdentity: string | null,
    first: Buffer | null,
  ) {
    this.lr = lr;
    this.gen = ctx.generation;
    this.lastActiveMs = ctx.clock.now();
    const socket = inbound.socket;
    this.remoteAddress = socket.remoteAddress ?? '';
    this.originalDst = inbound.originalDst;
    const clock = ctx.clock;
    this.conn = new H2ServerConnection(
      socket,
      { maxConcurrentStreams: MAX_CONCURRENT_STREAMS, initialWindow: STREAM_WINDOW, connectionWindow: CONNECTION_WINDOW, maxHeaderListBytes: lr.http.maxHeadBytes },
      this,
      () => clock.now(),
    );
    inbound.sink = (chunk: Buffer) => {
      try {
        this.conn.feed(chunk);
      } catch (e) {
        // A bug in the codec: this connection ends, the worker and its other connections go on.
        this.ctx.internalError('h2-codec', e);
        socket.destroy();
      }
    };
    socket.on('close', () => this.conn.closeAll());
    socket.on('error', () => {});
    // Accepted sockets allow half-open TCP (for HTTP/1 and opaque TCP); HTTP/2 has no use for it:
    // the client's FIN ends the connection once the streams under way have been answered.
    socket.on('end', () => {
      if (this.exchanges.size === 0) socket.destroy();
      else this.conn.drain();
    });
    ctx.track(this);
    if (first !== null && first.length > 0) inbound.sink(first);
  }

  onStream(stream: H2ServerStream, headers: Record<string, string | string[]>, endStream: boolean): void {
    this.lastActiveMs = this.ctx.clock.now();
    if (this.gen !== this.ctx.generation) {
      this.gen = this.ctx.generation;
      const lr = this.ctx.listener(this.listener);
      if (lr === undefined) {
        // The listener was removed by a reload: no new streams here.
        stream.close(H2Error.RefusedStream);
        this.conn.drain();
        return;
      }
      this.lr = lr;
    }
    if (this.ctx.draining) {
      stream.close(H2Error.RefusedStream);
      return;
    }
    const x = new H2Exchange(this.ctx, this, stream, headers, endStream);
    this.exchanges.add(x);
    try {
      x.start();
    } catch (e) {
      x.crash(e);
    }
  }

  exchangeDone(x: H2Exchange): void {
    this.exchanges.delete(x);
    this.lastActiveMs = this.ctx.clock.now();
  }

  // The last lookup, kept: most connections send one authority to one route (no key string per request).
  private statsGen = -1;
  private statsAuthority = '';
  private statsRoute: CompiledRoute | null = null;
  private statsCluster: Cluster | null = null;
  private statsZone = '';
  private statsCached: HttpStats | null = null;

  statsFor(authority: string, route: CompiledRoute | null, cluster: Cluster | null, zone: string): HttpStats {
    const c = this.statsCached;
    if (c !== null && this.statsGen === this.gen && this.statsAuthority === authority && this.statsRoute === route && this.statsCluster === cluster && this.statsZone === zone) return c;
    const s = this.ctx.metrics.httpStats(this.lr.direction, authority, route?.name ?? '', cluster?.name ?? '', zone, this.peerIdentity ?? '');
    this.statsGen = this.gen;
    this.statsAuthority = authority;
    this.statsRoute = route;
    this.statsCluster = cluster;
    this.statsZone = zone;
    this.statsCached = s;
    return s;
  }

  onClose(): void {
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
    if (this.exchanges.size === 0 && now - this.lastActiveMs > this.lr.http.keepAliveTimeoutMs) this.conn.drain();
  }

  drain(): void {
    // GOAWAY: streams under way finish, new ones go elsewhere.
    this.conn.drain();
  }

  destroy(): void {
    for (const x of [...this.exchanges]) x.abort();
    this.inbound.socket.destroy();
  }

  openBytes(): void {
    // The client socket's bytes are counted by the engine; upstream sessions count their own.
  }
}
