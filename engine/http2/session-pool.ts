// Upstream HTTP/2 connections of one endpoint: streams are multiplexed onto pooled sessions, each
// taking as many streams as its peer's SETTINGS_MAX_CONCURRENT_STREAMS allows; when every session is
// full a new one is opened (up to a bound, past which the least busy one queues the stream inside
// nghttp2). Sessions to meshed endpoints run over mutual TLS with ALPN h2. Idle sessions close after
// the pool's idle timeout; a session that got GOAWAY takes no new streams and closes when done.

import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { ProxyContext, TrackedConnection } from '../context';
import type { TcpStats } from '../metrics/registry';
import type { Endpoint } from '../pool/endpoint';

/** Streams assumed allowed before the peer's SETTINGS arrive (RFC 9113 recommends at least 100). */
const ASSUMED_MAX_STREAMS = 100;
/** Sessions per endpoint before new streams queue on the least busy one. */
const MAX_SESSIONS_PER_ENDPOINT = 16;

/** Settings of the sessions this proxy opens: windows large enough not to throttle a fast LAN. */
export const UPSTREAM_SETTINGS: http2.Settings = {
  initialWindowSize: 1024 * 1024,
  maxHeaderListSize: 256 * 1024,
  enablePush: false,
};
/** The connection-level receive window of every session (the default 64 KiB would stall bulk streams). */
export const CONNECTION_WINDOW_BYTES = 16 * 1024 * 1024;

export class PooledSession implements TrackedConnection {
  readonly session: http2.ClientHttp2Session;
  /** Streams open on it (counted here: nghttp2's own count lags a closing stream). */
  active = 0;
  connected = false;
  /** GOAWAY received, closed or failed: no new streams. */
  retired = false;
  /** The peer's first SETTINGS arrived: its stream limit is known. */
  settled = false;
  /** Streams waiting for the first SETTINGS (so that none is sent past a limit not yet known). */
  private readonly waiting: SessionWaiter[] = [];
  idleSinceMs: number;
  /** The last stream id the peer said it processed in a GOAWAY; -1: none received. */
  private lastStreamId = -1;
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
    const socket: net.Socket = mesh !== null ? mesh.connect(ep.host, ep.port, ep.identity!, true, undefined, ['h2']) : net.connect({ host: ep.host, port: ep.port, noDelay: true });
    this.socket = socket;
    socket.setNoDelay(true);
    ep.open++;
    tcp.opened++;
    tcp.open++;
    ctx.track(this);
    const authority = `${mesh !== null ? 'https' : 'http'}://${ep.key}`;
    const s = http2.connect(authority, { createConnection: () => socket, settings: UPSTREAM_SETTINGS, maxSessionMemory: 64, peerMaxConcurrentStreams: ASSUMED_MAX_STREAMS });
    this.session = s;
    s.on('connect', () => {
      this.connected = true;
      try {
        s.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
      } catch {
        // A session that closed at once: its streams see the close.
      }
    });
    s.once('remoteSettings', () => {
      this.settled = true;
      this.flushWaiting();
    });
    s.on('goaway', (_code: number, lastStreamId: number) => {
      this.lastStreamId = lastStreamId;
      this.retire();
    });
    s.on('error', () => this.retire());
    s.on('close', () => this.onClose());
    s.on('frameError', () => {});
  }

  /** Whether a GOAWAY said that stream `id` (undefined: never sent) was not processed. */
  goawayBefore(id: number | undefined): boolean {
    return id === undefined || (this.lastStreamId >= 0 && id > this.lastStreamId);
  }

  /** Streams this session may still take. */
  get room(): number {
    if (this.retired || this.session.destroyed || this.session.closed) return 0;
    const max = this.settled ? this.session.remoteSettings.maxConcurrentStreams ?? ASSUMED_MAX_STREAMS : ASSUMED_MAX_STREAMS;
    return Math.min(max, 2 ** 31 - 1) - this.active;
  }

  /** Runs `w` once the peer's limit is known (at once when it is). */
  whenSettled(w: SessionWaiter): void {
    if (this.settled) w.onSession(this);
    else this.waiting.push(w);
  }

  /**
   * The first SETTINGS arrived: waiting streams that fit the peer's limit go out on this session,
   * the others move to another session of the pool (opened if needed).
   */
  private flushWaiting(): void {
    const ws = this.waiting.splice(0);
    const max = Math.min(this.session.remoteSettings.maxConcurrentStreams ?? ASSUMED_MAX_STREAMS, 2 ** 31 - 1);
    let started = this.active - ws.length;
    for (const w of ws) {
      if (started < max && !this.retired) {
        started++;
        w.onSession(this);
      } else {
        this.active--;
        this.pool.takeFor(w, this.ctx, this.tcp, this.ctx.clock.now());
      }
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
    if (this.active === 0) {
      this.idleSinceMs = nowMs;
      if (this.retired || !this.pool.endpoint.live) this.close();
    }
  }

  close(): void {
    this.retired = true;
    this.pool.forget(this);
    if (!this.session.closed) this.session.close();
  }

  private onClose(): void {
    this.retired = true;
    this.pool.forget(this);
    // Streams still waiting for SETTINGS: the session never came up.
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
    this.session.destroy();
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
