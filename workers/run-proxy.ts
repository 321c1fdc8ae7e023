// `bowline proxy`: the supervisor, the admin server and the config source wired together, with
// signal handling (SIGTERM/SIGINT drain gracefully; a second signal exits at once).

import { isIP } from 'node:net';
import type { EngineSnapshot, SocketAddress } from '../engine';
import { startAdminServer } from './admin-server';
import type { ConfigWatcher } from '../engine/config/file/config-watcher';
import { renderMetrics } from './metrics-render';
import { AckTimeoutError, Supervisor } from './supervisor';

/**
 * Where config comes from when it is neither a file nor the one-line mode (the xDS client): the first
 * snapshot, then new ones, and changes it had to refuse (which leave the config in force).
 */
export interface ConfigSource {
  first(): Promise<EngineSnapshot>;
  onSnapshot(cb: (s: EngineSnapshot) => void): void;
  onInvalid(cb: (e: Error) => void): void;
  stop(): void;
  /** For the config dump (e.g. the xDS server and node). */
  describe?(): unknown;
  /** False while the source holds back readiness (e.g. no workload identity yet). */
  ready?(): boolean;
}

export interface ProxyRunOptions {
  /** A YAML config file, watched for changes; or `snapshot` for the one-line mode; or `source`. */
  configFile?: string;
  snapshot?: EngineSnapshot;
  source?: ConfigSource;
  workers: number;
  admin: SocketAddress;
  drainGraceMs: number;
  testHooks?: boolean;
  /** Opaque ports added to every snapshot's own (--opaque-ports, BOWLINE_OPAQUE_PORTS). */
  opaquePorts?: number[];
}

export interface RunningProxy {
  supervisor: Supervisor;
  adminPort: number;
  stop(): Promise<void>;
}

export function log(level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(JSON.stringify({ ts: new Date().toISOString(), level, msg, ...fields }) + '\n');
}

/** Listener hosts must be IP literals for the native helper; "localhost" is taken as 127.0.0.1. */
function normaliseListenHosts(s: EngineSnapshot): EngineSnapshot {
  return {
    ...s,
    listeners: s.listeners.map((l) => {
      const host = l.address.host === 'localhost' ? '127.0.0.1' : l.address.host;
      if (isIP(host) === 0) throw new Error(`listener "${l.name}": address host "${l.address.host}" must be an IP address`);
      return { ...l, address: { host, port: l.address.port } };
    }),
  };
}

/** The snapshot as the config dump shows it: the identity by name, never its key (nor the PEMs). */
function redacted(s: EngineSnapshot | null): unknown {
  if (s === null || s.identity === undefined) return s;
  const { identity, ...rest } = s;
  return { ...rest, identity: { spiffeId: identity.spiffeId } };
}

export async function runProxy(o: ProxyRunOptions): Promise<RunningProxy> {
  const started = Date.now() / 1000;
  const reloads = { applied: 0, rejected: 0 };
  const supervisor = new Supervisor({ workers: o.workers, drainGraceMs: o.drainGraceMs, log, testHooks: o.testHooks });
  let watcher: ConfigWatcher | null = null;
  let initial: EngineSnapshot;
  if (o.configFile !== undefined) {
    // Loaded only here: YAML and JSON Schema cost memory the one-line mode does not need.
    const { ConfigWatcher } = await import('../engine/config/file/config-watcher');
    watcher = new ConfigWatcher(o.configFile);
    let first: EngineSnapshot | undefined;
    let firstError: Error | undefined;
    watcher.once('snapshot', (s) => (first = s));
    watcher.once('invalid', (e) => (firstError = e));
    watcher.start();
    if (first === undefined) {
      watcher.stop();
      throw firstError ?? new Error(`${o.configFile}: no config`);
    }
    initial = first;
  } else if (o.source !== undefined) {
    initial = await o.source.first();
  } else {
    initial = o.snapshot!;
  }
  const extraOpaque = o.opaquePorts ?? [];
  const prepare = (s: EngineSnapshot): EngineSnapshot => {
    const n = normaliseListenHosts(s);
    return extraOpaque.length === 0 ? n : { ...n, opaquePorts: [...new Set([...n.opaquePorts, ...extraOpaque])] };
  };
  await supervisor.start(prepare(initial));

  // Reloads are applied one at a time, in order; a bad file never replaces the config in force.
  let chain = Promise.resolve();
  const reload = (s: EngineSnapshot): void => {
    chain = chain.then(async () => {
      try {
        await supervisor.apply(prepare(s));
        reloads.applied++;
        log('info', 'config reloaded', { version: s.version });
      } catch (e) {
        if (e instanceof AckTimeoutError) {
          // Sent and in force; a worker is just slow to say so (config_info shows this version).
          reloads.applied++;
          log('warn', 'config reloaded; some workers were slow to acknowledge it', { version: s.version });
          return;
        }
        reloads.rejected++;
        log('error', 'config reload failed; the previous config stays in force', { error: (e as Error).message });
      }
    });
  };
  watcher?.on('snapshot', reload);
  watcher?.on('invalid', (e) => {
    reloads.rejected++;
    log('error', 'config file rejected; the previous config stays in force', { error: e.message });
  });
  o.source?.onSnapshot(reload);
  o.source?.onInvalid(() => reloads.rejected++);

  const admin = await startAdminServer(o.admin.host, o.admin.port, {
    metrics: async () => {
      const ws = await supervisor.collectMetrics();
      const restarts = supervisor.workerStatus().reduce((a, w) => a + w.restarts, 0);
      return renderMetrics(ws, { configVersion: supervisor.currentSnapshot?.version ?? '', reloads, workerRestarts: restarts, startTimeSeconds: started });
    },
    ready: () => supervisor.ready && (o.source?.ready?.() ?? true),
    configDump: () => ({
      version: supervisor.currentSnapshot?.version,
      workers: supervisor.workerStatus(),
      // Bound addresses: a listener on port 0 (also one added by a reload) is found here.
      listeners: supervisor.listenerAddresses(),
      snapshot: redacted(supervisor.currentSnapshot),
      source: o.source?.describe?.(),
    }),
    crashWorker: o.testHooks ? (i) => supervisor.crashWorker(i) : undefined,
  });

  for (const l of supervisor.currentSnapshot!.listeners) {
    const a = supervisor.listenerAddress(l.name)!;
    process.stdout.write(`bowline: listener ${l.name} (${l.direction}) on ${a.host}:${a.port}\n`);
  }
  process.stdout.write(`bowline: admin on ${o.admin.host}:${admin.port} (/metrics /ready /live /config_dump); ${supervisor.workerCount} worker(s)\n`);

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    if (stopping === null) {
      stopping = (async () => {
        watcher?.stop();
        o.source?.stop();
        await supervisor.shutdown();
        admin.close();
      })();
    }
    return stopping;
  };
  return { supervisor, adminPort: admin.port, stop };
}
