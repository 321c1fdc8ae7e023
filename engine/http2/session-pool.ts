// Upstream HTTP/2 connections of one endpoint, on the proxy's own codec (codec/client-connection):
// streams are multiplexed onto pooled sessions, each taking as many streams as its peer's
// SETTINGS_MAX_CONCURRENT_STREAMS allows; when every session is full a new one is opened (up to a
// bound, past which streams wait for a free slot on the session). No stream is sent before the
// peer's first SETTINGS. Sessions to meshed endpoints run over mutual TLS with ALPN h2. Idle sessions
// close after the pool's idle timeout; a session that got GOAWAY takes no new streams and closes
// when done.

import * as net from 'node:net';
import type { ProxyContext, TrackedConnection } from '../context';
import type { TcpStats } from '../metrics/registry';
import type { Endpoint } from '../pool/endpoint';
import { H2ClientConnection } from './codec/client-connection';

/** Streams assumed allowed before the peer's SETTINGS arrive (RFC 9113 recommends at least 100). */
const ASSUMED_MAX_STREAMS = 100;
/** Sessions per endpoint before new streams wait for a slot on the least busy one. */
const MAX_SESSIONS_PER_ENDPOINT = 16;
/** Our windows on upstream sessions: large enough not to throttle a fast LAN. */
const STREAM_WINDOW = 1024 * 1024;
const CONNECTION_WINDOW = 16 * 1024 * 1024;
const MAX_HEADER_LIST = 256 * 1024;
const READ_BUFFER_BYTES = 16 * 1024;

export class PooledSession implements TrackedConnection {
  readonly conn: H2ClientConnection;
  /** Streams taken on it, started or waiting (counted by the pool). */
  active = 0;
  connected = false;
  /** GOAWAY received, closed or failed: no new streams. */
  retired = false;
  /** The peer's first SETTINGS arrived: its stream limit is known. */
  settled = false;
  /** Streams waiting for the first SETTINGS, or for a slot under the peer's limit. */
  private readonly waiting: SessionWaiter[] = [];
  idleSinceMs: number;
  private counted = true;
  private readonly socket: net.Socket;

  constructor(
    readonly ctx: ProxyContext,
    private readonly pool: SessionPool,
    private readonly tcp: TcpStats,
    nowMs: number,
  ) {
    this.idleSinceMs = nowMs;
    const ep = pool.endpoint;
    const mesh = ep.identity !== null ? ctx.meshTls : null;
    // Reads land in a buffer of this session's own; the codec copies out what it keeps.
    const onread = { buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES), callback: (n: number, buf: Uint8Array): boolean => this.onRead(n, buf as Buffer) };
    const socket: net.Socket = mesh !== null ? mesh.connect(ep.host, ep.port, ep.identity!, true, onread, ['h2']) : net.connect({ host: ep.host, port: ep.port, noDelay: true, onread });
    this.socket = socket;
    ctx.ownSocket(socket);
    socket.setNoDelay(true);
    ep.open++;
    tcp.opened++;
    tcp.open++;
    ctx.track(this);
    socket.once(mesh !== null ? 'secureConnect' : 'connect', () => {
      this.connected = true;
    });
    socket.on('error', () => {});
    socket.once('close', () => this.onClose());
    this.conn = new H2ClientConnection(socket, { initialWindow: STREAM_WINDOW, connectionWindow: CONNECTION_WINDOW, maxHeaderListBytes: MAX_HEADER_LIST }, {
      onSettled: () => {
        this.settled = true;
        this.startWaiting();
      },
      onGoAway: () => this.retire(),
      onClose: () => this.retire(),
    });
  }

  private onRead(n: number, buf: Buffer): boolean {
    try {
      this.conn.feed(buf.subarray(0, n));
    } catch (e) {
      this.ctx.internalError('h2-client', e);
      this.socket.destroy();
    }
    return true;
  }

  /** Streams the peer allows at once. */
  private get limit(): number {
    return this.settled ? this.conn.peerMaxStreams : ASSUMED_MAX_STREAMS;
  }

  /** Streams this session may still take. */
  get room(): number {
    if (this.retired || this.conn.closed) return 0;
    return this.limit - this.active;
  }

  /** Runs `w` once the peer's limit is known and a slot under it is free (at once when both hold). */
  whenSettled(w: SessionWaiter): void {
    if (this.settled && this.conn.activeStreams < this.limit && this.waiting.length === 0) w.onSession(this);
    else this.waiting.push(w);
  }

  /**
   * The first SETTINGS arrived, or a stream ended: waiting streams that fit the peer's limit go out
   * on this session; after the first SETTINGS, those past the limit move to another session of the
   * pool (opened if needed) rather than wait here.
   */
  private startWaiting(moveOverflow = true): void {
    while (this.waiting.length > 0 && !this.retired && this.conn.activeStreams < this.limit) this.waiting.shift()!.onSession(this);
    if (!moveOverflow || this.waiting.length === 0) return;
    const ws = this.waiting.splice(0);
    for (const w of ws) {
      this.active--;
      if (this.retired) w.onSession(this);
      else this.pool.takeFor(w, this.ctx, this.tcp, this.ctx.clock.now());
    }
  }

  private retire(): void {
    if (this.retired) return;
    this.retired = true;
    this.pool.forget(this);
    if (this.active === 0) this.close();
  }

  streamClosed(nowMs: number): void {
    this.active--;
    if (this.waiting.length > 0) this.startWaiting(false);
    if (this.active === 0) {
      this.idleSinceMs = nowMs;
      if (this.retired || !this.pool.endpoint.live) this.close();
    }
  }

  close(): void {
    this.retired = true;
    this.pool.forget(this);
    this.conn.close();
  }

  private onClose(): void {
    this.retired = true;
    this.pool.forget(this);
    this.conn.socketClosed();
    // Streams still waiting: the session never came up (or went): they fail on it.
    for (const w of this.waiting.splice(0)) w.onSession(this);
    if (this.counted) {
      this.counted = false;
      this.pool.endpoint.open--;
      const t = this.tcp;
      t.open--;
      t.closed++;
      t.readBytes += this.socket.bytesRead;
      t.writeBytes += this.socket.bytesWritten;
      this.ctx.untrack(this);
    }
  }

  sweep(): void {
    // Idle sessions are swept by their pool.
  }

  drain(): void {
    // Upstream sessions close when the engine closes its pools.
  }

  destroy(): void {
    this.retired = true;
    this.socket.destroy();
  }

  openBytes(add: (s: TcpStats, read: number, written: number) => void): void {
    if (this.counted) add(this.tcp, this.socket.bytesRead, this.socket.bytesWritten);
  }
}

/** A stream waiting for a session whose peer limit is known. */
export interface SessionWaiter {
  onSession(s: PooledSession): void;
}

export class SessionPool {
  private readonly sessions: PooledSession[] = [];

  constructor(readonly endpoint: Endpoint) {}

  /** A session for `w`, handed over once its peer's stream limit is known. */
  takeFor(w: SessionWaiter, ctx: ProxyContext, tcp: TcpStats, nowMs: number): void {
    this.take(ctx, tcp, nowMs).whenSettled(w);
  }

  /** A session with room for one more stream (opened when none has), its count of streams taken. */
  take(ctx: ProxyContext, tcp: TcpStats, nowMs: number): PooledSession {
    let best: PooledSession | null = null;
    let bestRoom = -Infinity;
    for (const s of this.sessions) {
      const room = s.room;
      // The first with room: streams concentrate on few sessions, so that idle ones time out.
      if (room > 0) {
        best = s;
        break;
      }
      if (room > bestRoom && !s.retired) {
        bestRoom = room;
        best = s;
      }
    }
    if (best === null || (best.room <= 0 && this.sessions.length < MAX_SESSIONS_PER_ENDPOINT)) {
      best = new PooledSession(ctx, this, tcp, nowMs);
      this.sessions.push(best);
    }
    best.active++;
    return best;
  }

  forget(s: PooledSession): void {
    const i = this.sessions.indexOf(s);
    if (i !== -1) this.sessions.splice(i, 1);
  }

  get size(): number {
    return this.sessions.length;
  }

  /** Closes sessions idle past `idleTimeoutMs`. */
  sweepIdle(nowMs: number, idleTimeoutMs: number): void {
    for (let i = this.sessions.length - 1; i >= 0; i--) {
      const s = this.sessions[i]!;
      if (s.active === 0 && nowMs - s.idleSinceMs > idleTimeoutMs) s.close();
    }
  }

  /** Graceful close of every session (GOAWAY; open streams finish). */
  closeAll(): void {
    for (const s of [...this.sessions]) {
      if (s.active === 0) s.close();
      else s.retired = true;
    }
    this.sessions.length = 0;
  }
}
