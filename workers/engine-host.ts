// Runs one Engine and its accepting servers: on a worker thread (engine-worker.ts), or on the main
// thread when there is a single worker. With several workers it keeps connections spread evenly by
// pausing its accepts while it holds more than its share: the kernel alone wakes the waiters of one
// shared socket very unevenly (splits like 7/44 and 0/51 were measured).

import * as net from 'node:net';
import { Engine, type EngineSnapshot, Inbound, type WorkerMetricsSnapshot } from '../engine';
import type { ListenerFd } from './messages';
import { loadNativeSocket, type NativeSocket } from './native-socket';

export interface EngineHostOptions {
  index: number;
  /** Shared per-worker open connection counts and liveness; absent for a single worker. */
  counts?: Int32Array;
  alive?: Int32Array;
  native: NativeSocket | null;
  /** Shared with the other workers (see WorkerData.ownPorts); absent: this engine's own. */
  ownPorts?: Uint8Array;
  log: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

interface Accepting {
  name: string;
  host: string;
  port: number;
  /** The supervisor's descriptor (we accept on a dup of it), or -1 to bind host:port ourselves. */
  fd: number;
  server: net.Server | null;
}

export class EngineHost {
  readonly engine: Engine;
  private readonly accepting = new Map<string, Accepting>();
  private paused = false;
  private resumeTimer: NodeJS.Timeout | null = null;
  private draining = false;

  constructor(private readonly o: EngineHostOptions) {
    this.engine = new Engine({
      workerId: o.index,
      onClientCountChange: o.counts === undefined ? undefined : (open) => this.onCount(open),
      log: o.log,
      ...(o.ownPorts !== undefined ? { ownPorts: o.ownPorts } : {}),
    });
  }

  private native: NativeSocket | null | undefined;

  /**
   * SO_ORIGINAL_DST of an accepted connection on a listener that takes redirected traffic (null
   * elsewhere, or when the kernel knows none). It needs the native helper: loaded on first use here
   * (a single worker runs without it otherwise); when it cannot be, the error is logged once.
   */
  private originalDst(name: string, fd: number | undefined): [string, number] | null {
    if (fd === undefined || fd < 0 || this.engine.listener(name)?.snapshot.originalDst !== true) return null;
    if (this.native === undefined) {
      const loaded = this.o.native !== null ? { native: this.o.native, error: '' } : loadNativeSocket();
      this.native = loaded.native;
      if (loaded.native === null) this.o.log('error', `listener ${name} takes redirected connections (originalDst) but ${loaded.error}; they go to the listener's default service`);
    }
    if (this.native === null) return null;
    try {
      return this.native.originalDst(fd);
    } catch (e) {
      this.o.log('warn', `listener ${name}: SO_ORIGINAL_DST: ${(e as Error).message}`);
      return null;
    }
  }

  /** Applies a snapshot and starts/stops accepting on its listeners. Throws when it cannot be applied. */
  apply(snapshot: EngineSnapshot, listeners: ListenerFd[]): void {
    this.engine.apply(snapshot);
    const want = new Map(listeners.map((l) => [l.name, l]));
    for (const [name, a] of this.accepting) {
      const l = want.get(name);
      if (l === undefined || l.fd !== a.fd || (a.fd < 0 && (l.host !== a.host || l.port !== a.port))) {
        this.stopServer(a);
        this.accepting.delete(name);
      }
    }
    for (const l of listeners) {
      if (this.accepting.has(l.name)) continue;
      const a: Accepting = { name: l.name, host: l.host, port: l.port, fd: l.fd, server: null };
      this.accepting.set(l.name, a);
      if (!this.paused && !this.draining) this.startServer(a);
    }
  }

  /** Resolves once every accepting server is bound (only needed when binding host:port here). */
  async listening(): Promise<void> {
    await Promise.all(
      [...this.accepting.values()].map(
        (a) =>
          new Promise<void>((resolve, reject) => {
            const s = a.server;
            if (s === null || s.listening) return resolve();
            s.once('listening', () => resolve());
            s.once('error', reject);
          }),
      ),
    );
  }

  /** The bound port of a listener (resolves port 0 when this host bound it). */
  boundPort(name: string): number | undefined {
    const a = this.accepting.get(name);
    const addr = a?.server?.address();
    return addr !== null && typeof addr === 'object' ? addr.port : a?.port;
  }

  metrics(): WorkerMetricsSnapshot {
    return this.engine.metricsSnapshot();
  }

  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    for (const a of this.accepting.values()) this.stopServer(a);
    await this.engine.drain(graceMs);
  }

  private startServer(a: Accepting): void {
    if (a.server !== null) return;
    // Accepted paused, so that the engine can give each socket a read buffer of its own (Inbound).
    const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true });
    server.on('connection', (s: net.Socket) => this.engine.handleConnection(a.name, s, this.originalDst(a.name, (s as unknown as { _handle?: { fd?: number } })._handle?.fd)));
    // Accepted handles go straight to the engine, which wraps each in one socket with its own read buffer.
    server.once('listening', () => Inbound.acceptHandles(server, (h) => this.engine.handleAcceptedHandle(a.name, h, this.originalDst(a.name, (h as { fd?: number }).fd))));
    server.on('error', (e) => this.o.log('error', `listener ${a.name}: ${e.message}`));
    if (a.fd < 0) server.listen({ host: a.host, port: a.port, backlog: 4096 });
    else server.listen({ fd: this.o.native !== null ? this.o.native.dupFd(a.fd) : a.fd });
    a.server = server;
  }

  private stopServer(a: Accepting): void {
    const s = a.server;
    if (s === null) return;
    a.server = null;
    // Closing our duplicate stops our accepts only; the socket stays open for the other workers.
    s.close();
  }

  // ---------------------------------------------------------------- accept balancing

  private onCount(open: number): void {
    Atomics.store(this.o.counts!, this.o.index, open);
    if (this.paused) this.maybeResume();
    else if (open > 0) this.maybePause();
  }

  /** Allowed lead over the least-loaded live worker before this one stops accepting. */
  private slack(): number {
    const { counts, alive } = this.o;
    let total = 0;
    for (let i = 0; i < counts!.length; i++) if (Atomics.load(alive!, i) === 1) total += Atomics.load(counts!, i);
    return 2 + (total >> 4);
  }

  private leastOther(): number {
    const { counts, alive, index } = this.o;
    let min = Infinity;
    for (let i = 0; i < counts!.length; i++) {
      if (i === index || Atomics.load(alive!, i) !== 1) continue;
      const c = Atomics.load(counts!, i);
      if (c < min) min = c;
    }
    return min;
  }

  private maybePause(): void {
    if (this.o.native === null || this.draining) return;
    const other = this.leastOther();
    if (other === Infinity) return;
    if (Atomics.load(this.o.counts!, this.o.index) > other + this.slack()) {
      this.paused = true;
      for (const a of this.accepting.values()) this.stopServer(a);
      this.scheduleResumeCheck();
    }
  }

  private maybeResume(): void {
    if (this.draining) return;
    const other = this.leastOther();
    if (other === Infinity || Atomics.load(this.o.counts!, this.o.index) <= other + this.slack()) {
      this.paused = false;
      if (this.resumeTimer !== null) {
        clearTimeout(this.resumeTimer);
        this.resumeTimer = null;
      }
      for (const a of this.accepting.values()) this.startServer(a);
    } else {
      this.scheduleResumeCheck();
    }
  }

  /** While paused, others' counts change without telling us: look again shortly. */
  private scheduleResumeCheck(): void {
    if (this.resumeTimer !== null) return;
    this.resumeTimer = setTimeout(() => {
      this.resumeTimer = null;
      if (this.paused) this.maybeResume();
    }, 5);
  }
}
