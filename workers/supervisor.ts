// The supervisor (main thread): binds every listening socket once, starts one engine worker per core,
// fans config snapshots out and waits for their acknowledgements, restarts a worker that crashes
// while the others keep serving, gathers metrics, and drains everything on shutdown.
//
// With a single worker the engine runs on the main thread instead ("inline"): a worker thread would
// add a second V8 isolate (about 12 MB of RSS, measured) and a message hop, and with no other worker
// there is nothing to share sockets with. A crash then ends the process, for its supervisor
// (Kubernetes, systemd) to restart.

import * as path from 'node:path';
import type { Worker } from 'node:worker_threads';
import type { EngineSnapshot, WorkerMetricsSnapshot } from '../engine';
import type { EngineHost } from './engine-host';
import type { FromWorker, ListenerFd, ToWorker, WorkerData } from './messages';
import { loadNativeSocket, nativeHelperPath, type NativeSocket } from './native-socket';

export interface SupervisorOptions {
  workers: number;
  /** Grace period for in-flight requests on shutdown. */
  drainGraceMs: number;
  log: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
  /** Enables the crash test hook. */
  testHooks?: boolean;
  /** How long to wait for all workers to acknowledge a snapshot. */
  ackTimeoutMs?: number;
}

interface Slot {
  index: number;
  worker: Worker | null;
  ackedVersion: string;
  restarts: number;
  startedAt: number;
}

interface BoundListener {
  key: string;
  fd: number;
  host: string;
  port: number;
}

export interface WorkerStatus {
  index: number;
  running: boolean;
  ackedVersion: string;
  restarts: number;
}

const MAX_WORKERS = 64;

/**
 * Some worker did not acknowledge a snapshot in time. The snapshot was sent and is the one in force
 * (a slow worker applies it when it gets to its messages); it was not refused.
 */
export class AckTimeoutError extends Error {
  override readonly name = 'AckTimeoutError';
  constructor(readonly version: string) {
    super(`workers did not acknowledge config ${version} in time`);
  }
}

export class Supervisor {
  private readonly native: NativeSocket | null;
  private readonly nativeError: string;
  private readonly counts = new Int32Array(new SharedArrayBuffer(4 * MAX_WORKERS));
  /** Shared by all workers: a connection redirected back to the proxy may land on another worker. */
  private readonly ownPorts = new Uint8Array(new SharedArrayBuffer(65536));
  private readonly alive = new Int32Array(new SharedArrayBuffer(4 * MAX_WORKERS));
  private readonly slots: Slot[] = [];
  private readonly bound = new Map<string, BoundListener>();
  private snapshot: EngineSnapshot | null = null;
  private listenerFds: ListenerFd[] = [];
  private stopping = false;
  private nextMetricsId = 1;
  private readonly pendingMetrics = new Map<number, (s: WorkerMetricsSnapshot | null) => void>();
  private readonly ackWaiters: (() => void)[] = [];
  readonly workerCount: number;
  /** The engine on the main thread, when there is a single worker. */
  private inline: EngineHost | null = null;

  constructor(private readonly opts: SupervisorOptions) {
    this.workerCount = Math.max(1, Math.min(MAX_WORKERS, opts.workers));
    if (this.workerCount === 1) {
      this.native = null;
      this.nativeError = '';
      return;
    }
    const { native, error } = loadNativeSocket();
    this.native = native;
    this.nativeError = error;
    if (native === null) throw new Error(`--workers ${this.workerCount} needs ${error} (--workers 1 runs without it)`);
  }

  get currentSnapshot(): EngineSnapshot | null {
    return this.snapshot;
  }

  /** The actual bound address of a listener (resolves port 0). */
  listenerAddress(name: string): { host: string; port: number } | undefined {
    const l = this.listenerFds.find((x) => x.name === name);
    return l === undefined ? undefined : { host: l.host, port: l.port };
  }

  /** Every listener's bound address (port 0 resolved), for /config_dump. */
  listenerAddresses(): { name: string; host: string; port: number }[] {
    return this.listenerFds.map((l) => ({ name: l.name, host: l.host, port: l.port }));
  }

  workerStatus(): WorkerStatus[] {
    if (this.inline !== null) return [{ index: 0, running: !this.stopping, ackedVersion: this.inline.engine.configVersion, restarts: 0 }];
    return this.slots.map((s) => ({ index: s.index, running: s.worker !== null, ackedVersion: s.ackedVersion, restarts: s.restarts }));
  }

  /**
   * True when every worker runs and serves a config it acknowledged. Not "the current one": while a
   * reload is being acknowledged the workers still serve the previous config, and a readiness probe
   * that flapped to 503 on every config push would take the proxy out of its Service. Which version
   * each worker serves is in workerStatus() (/config_dump).
   */
  get ready(): boolean {
    if (this.stopping || this.snapshot === null) return false;
    if (this.inline !== null) return this.inline.engine.configVersion !== '';
    return this.slots.length > 0 && this.slots.every((s) => s.worker !== null && s.ackedVersion !== '');
  }

  async start(snapshot: EngineSnapshot): Promise<void> {
    this.bindListeners(snapshot);
    this.snapshot = snapshot;
    if (this.workerCount === 1) {
      // Loaded only here, so that a threaded supervisor never loads the engine.
      const { EngineHost: Host } = require('./engine-host') as typeof import('./engine-host');
      this.inline = new Host({ index: 0, native: null, log: this.opts.log });
      await this.applyInline(snapshot);
      return;
    }
    for (let i = 0; i < this.workerCount; i++) {
      const slot: Slot = { index: i, worker: null, ackedVersion: '', restarts: 0, startedAt: 0 };
      this.slots.push(slot);
      this.spawn(slot);
    }
    await this.waitForAcks(snapshot.version);
  }

  /** Applies a new snapshot to every worker; resolves when all acknowledged it. */
  async apply(snapshot: EngineSnapshot): Promise<void> {
    const old = new Map(this.bound);
    this.bindListeners(snapshot);
    if (this.inline !== null) {
      await this.applyInline(snapshot);
      this.snapshot = snapshot;
      return;
    }
    this.snapshot = snapshot;
    this.broadcast({ type: 'config', snapshot, listeners: this.listenerFds });
    await this.waitForAcks(snapshot.version);
    // Sockets no listener uses any more are closed once no worker accepts on them.
    for (const [key, b] of old) {
      if (!this.bound.has(key) && b.fd >= 0) this.native?.closeFd(b.fd);
    }
  }

  private async applyInline(snapshot: EngineSnapshot): Promise<void> {
    const host = this.inline!;
    host.apply(snapshot, this.listenerFds);
    try {
      await host.listening();
    } catch (e) {
      throw new Error(`cannot listen: ${(e as Error).message}`);
    }
    this.listenerFds = this.listenerFds.map((l) => ({ ...l, port: host.boundPort(l.name) ?? l.port }));
  }

  private bindListeners(s: EngineSnapshot): void {
    const next = new Map<string, BoundListener>();
    const fds: ListenerFd[] = [];
    for (const l of s.listeners) {
      // Port 0 means "any free port", once per listener: two such listeners must not share a socket.
      const key = l.address.port === 0 ? `${l.address.host}:0/${l.name}` : `${l.address.host}:${l.address.port}`;
      let b = this.bound.get(key) ?? next.get(key);
      if (b === undefined) {
        if (this.native !== null) {
          let fd: number;
          try {
            fd = this.native.listenTcp(l.address.host, l.address.port, 4096);
          } catch (e) {
            throw new Error(`listener "${l.name}" cannot listen on ${key}: ${(e as Error).message}`);
          }
          b = { key, fd, host: l.address.host, port: this.native.localPort(fd) };
        } else {
          b = { key, fd: -1, host: l.address.host, port: l.address.port };
        }
      }
      next.set(key, b);
      fds.push({ name: l.name, fd: b.fd, host: b.host, port: b.port });
    }
    // Remove from `bound` only the ones that stay; apply() closes the rest after the acks.
    for (const key of [...this.bound.keys()]) if (!next.has(key)) this.bound.delete(key);
    for (const [key, b] of next) this.bound.set(key, b);
    this.listenerFds = fds;
  }

  private spawn(slot: Slot): void {
    const data: WorkerData = {
      index: slot.index,
      counts: this.counts,
      alive: this.alive,
      nativePath: this.native !== null ? nativeHelperPath() : '',
      ownPorts: this.ownPorts,
    };
    // worker_threads is loaded only when threads are used (it costs RSS the inline mode does not need).
    const { Worker: WorkerThread } = require('node:worker_threads') as typeof import('node:worker_threads');
    const w = new WorkerThread(path.join(__dirname, 'engine-worker.js'), { workerData: data });
    slot.worker = w;
    slot.ackedVersion = '';
    slot.startedAt = Date.now();
    Atomics.store(this.counts, slot.index, 0);
    Atomics.store(this.alive, slot.index, 1);
    w.on('message', (m: FromWorker) => this.onMessage(slot, m));
    w.on('error', (e) => this.opts.log('error', `worker ${slot.index} failed: ${e.stack ?? e.message}`));
    w.on('exit', (code) => this.onExit(slot, w, code));
    if (this.snapshot !== null) this.post(slot, { type: 'config', snapshot: this.snapshot, listeners: this.listenerFds });
  }

  private onExit(slot: Slot, w: Worker, code: number): void {
    if (slot.worker !== w) return;
    slot.worker = null;
    Atomics.store(this.alive, slot.index, 0);
    Atomics.store(this.counts, slot.index, 0);
    if (this.stopping) return;
    slot.restarts++;
    // Back off when a worker keeps dying right after start, so that a crash loop cannot spin.
    const quick = Date.now() - slot.startedAt < 1000;
    const delay = quick ? Math.min(5000, 100 * 2 ** Math.min(slot.restarts, 6)) : 0;
    this.opts.log('warn', `worker ${slot.index} exited (code ${code}); restarting in ${delay} ms`);
    setTimeout(() => {
      if (!this.stopping && slot.worker === null) this.spawn(slot);
    }, delay).unref();
  }

  private onMessage(slot: Slot, m: FromWorker): void {
    switch (m.type) {
      case 'ack':
        slot.ackedVersion = m.version;
        for (const f of this.ackWaiters.splice(0)) f();
        return;
      case 'nack':
        this.opts.log('error', `worker ${slot.index} refused config ${m.version}: ${m.error}`);
        return;
      case 'metrics': {
        const f = this.pendingMetrics.get(m.id);
        if (f !== undefined) f(m.snapshot);
        return;
      }
      case 'log':
        this.opts.log(m.level, `worker ${slot.index}: ${m.msg}`, m.fields);
        return;
      case 'drained':
        return;
    }
  }

  private post(slot: Slot, m: ToWorker): void {
    slot.worker?.postMessage(m);
  }

  private broadcast(m: ToWorker): void {
    for (const s of this.slots) this.post(s, m);
  }

  private async waitForAcks(version: string): Promise<void> {
    const deadline = Date.now() + (this.opts.ackTimeoutMs ?? 10_000);
    while (!this.slots.every((s) => s.worker === null || s.ackedVersion === version)) {
      if (Date.now() > deadline) throw new AckTimeoutError(version);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 100);
        this.ackWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Every running worker's metrics (workers that do not answer within the timeout are left out). */
  async collectMetrics(timeoutMs = 2000): Promise<WorkerMetricsSnapshot[]> {
    if (this.inline !== null) return [this.inline.metrics()];
    const running = this.slots.filter((s) => s.worker !== null);
    const results = await Promise.all(
      running.map(
        (slot) =>
          new Promise<WorkerMetricsSnapshot | null>((resolve) => {
            const id = this.nextMetricsId++;
            const t = setTimeout(() => {
              this.pendingMetrics.delete(id);
              resolve(null);
            }, timeoutMs);
            this.pendingMetrics.set(id, (s) => {
              clearTimeout(t);
              this.pendingMetrics.delete(id);
              resolve(s);
            });
            this.post(slot, { type: 'metrics', id });
          }),
      ),
    );
    return results.filter((r): r is WorkerMetricsSnapshot => r !== null);
  }

  crashWorker(index: number): boolean {
    if (!this.opts.testHooks) return false;
    const slot = this.slots[index];
    if (slot === undefined || slot.worker === null) return false;
    this.post(slot, { type: 'crash' });
    return true;
  }

  /** Graceful stop: workers stop accepting, finish in-flight requests within the grace, then exit. */
  async shutdown(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.inline !== null) {
      await this.inline.drain(this.opts.drainGraceMs);
      return;
    }
    const exits = this.slots
      .filter((s) => s.worker !== null)
      .map((s) => new Promise<void>((resolve) => s.worker!.once('exit', () => resolve())));
    this.broadcast({ type: 'drain', graceMs: this.opts.drainGraceMs });
    // Close our descriptors as soon as no worker needs them any more, not after the workers exit: a
    // listening socket closes when its last descriptor does, and the workers close their duplicates
    // on 'drain'. Kept open, ours would keep the socket listening through the grace period, and the
    // kernel would complete handshakes of new connections that no worker accepts any more (they hang,
    // then get reset at exit) instead of refusing them. A worker still applying a config (just
    // restarted, or mid-reload) dups them first: its ack says it has.
    const closeListeners = (): void => {
      for (const b of this.bound.values()) if (b.fd >= 0) this.native?.closeFd(b.fd);
      this.bound.clear();
    };
    const version = this.snapshot?.version;
    if (version !== undefined) void this.waitForAcks(version).then(closeListeners, closeListeners);
    const hard = setTimeout(() => {
      for (const s of this.slots) void s.worker?.terminate();
    }, this.opts.drainGraceMs + 2000);
    await Promise.all(exits);
    clearTimeout(hard);
    closeListeners();
  }

  get nativeHelperError(): string {
    return this.nativeError;
  }
}
