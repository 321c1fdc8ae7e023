// `bowline control`: the mesh source, the snapshot builds (in the piscina pool), the snapshot cache
// and the xDS gRPC server, wired together. A mesh change is built for every zone and swapped in as a
// whole; a change that fails to build is counted and logged, and the snapshots in force stay.

import * as grpc from '@grpc/grpc-js';
import type { EngineSnapshot } from '../../engine/config/snapshot';
import { createXdsServer } from './ads-server';
import { BuildPool } from './build-pool';
import { ControlMetrics } from './control-metrics';
import type { StreamContext } from './discovery-streams';
import type { MeshSource } from './mesh-source';
import { PushGate } from './push-gate';
import { SnapshotCache } from './snapshot-cache';
import type { CertificateAuthority } from './ca/authority';
import { addIdentityService, type IdentityCounters } from './ca/identity-service';
import { CaWatcher } from './ca/ca-watcher';
import { WorkloadSecrets } from './ca/sds-secrets';
import type { TokenVerifier } from './ca/token-verifier';

export type Log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export interface ControlPlaneOptions {
  source: MeshSource;
  /** HOST:PORT for the xDS gRPC server (port 0 picks one). */
  listen: string;
  /** Threads building snapshots (0: on the serving thread). */
  buildThreads?: number;
  /** Serve over TLS with this certificate (chain) and key, PEM files (watched); absent: plaintext. */
  tls?: { certFile: string; keyFile: string };
  /** Bound on responses written but not flushed, all clients together (default 64 MiB). */
  maxPendingPushBytes?: number;
  log?: Log;
  /** Certificate issuance on the same gRPC server (the Identity service). */
  identity?: {
    ca: CertificateAuthority;
    verifier: TokenVerifier;
    /** The CA's directory, watched: an issuer replaced there signs from then on. */
    watchDir?: string;
  };
}

export class ControlPlane {
  readonly metrics = new ControlMetrics();
  readonly cache = new SnapshotCache();
  private readonly pool: BuildPool;
  private readonly server: grpc.Server;
  private readonly log: Log;
  private mesh: EngineSnapshot | null = null;
  private building: Promise<void> = Promise.resolve();
  private pending: EngineSnapshot | null = null;
  private nonce = 0;
  port = 0;

  constructor(private readonly o: ControlPlaneOptions) {
    this.log = o.log ?? ((level, msg, f) => process.stderr.write(`${level}: ${msg}${f ? ` ${JSON.stringify(f)}` : ''}\n`));
    this.pool = new BuildPool(o.buildThreads ?? 1);
    const ctx: StreamContext = {
      cache: this.cache,
      // At most this much of encoded responses in flight across all clients (see push-gate.ts).
      gate: new PushGate(o.maxPendingPushBytes ?? 64 * 1024 * 1024),
      metrics: this.metrics,
      log: (level, msg, f) => this.log(level, msg, f),
      nextNonce: () => (++this.nonce).toString(36),
    };
    this.server = createXdsServer(ctx);
    if (o.identity !== undefined) {
      this.identity = addIdentityService(this.server, o.identity.ca, o.identity.verifier, (level, msg, f) => this.log(level, msg, f));
      this.metrics.identity = this.identity;
      // The same certificates over SDS, for Envoy and other xDS clients.
      ctx.secrets = this.secrets = new WorkloadSecrets(o.identity.ca, o.identity.verifier, this.identity, (level, msg, f) => this.log(level, msg, f));
      if (o.identity.watchDir !== undefined) this.caWatcher = new CaWatcher(o.identity.ca, o.identity.watchDir, (level, msg, f) => this.log(level, msg, f));
    }
  }

  /** Issued and refused certificates (with an identity service). */
  identity: IdentityCounters | null = null;
  /** Workload certificates served over SDS (with an identity service). */
  secrets: WorkloadSecrets | null = null;
  private caWatcher: CaWatcher | null = null;

  async start(): Promise<void> {
    const first = this.o.source.start();
    await this.apply(first);
    if (this.cache.generation === 0) throw new Error(`${this.o.source.description}: the mesh could not be built`);
    this.o.source.on('mesh', (m) => this.enqueue(m));
    this.caWatcher?.start();
    this.o.source.on('invalid', (e) => {
      this.metrics.meshRejected++;
      this.log('warn', 'mesh change refused; the mesh in force stays', { error: e.message });
    });
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(this.o.listen, serverCredentials(this.o.tls), (err, port) => (err ? reject(err) : resolve(port))),
    );
  }

  /** Builds coalesce: while one runs, only the newest waiting mesh is built next. */
  private enqueue(mesh: EngineSnapshot): void {
    const idle = this.pending === null;
    this.pending = mesh;
    if (!idle) return;
    this.building = this.building.then(async () => {
      const next = this.pending!;
      this.pending = null;
      await this.apply(next);
    });
  }

  private async apply(mesh: EngineSnapshot): Promise<void> {
    const t0 = performance.now();
    try {
      const snapshots = await this.pool.build(mesh);
      this.mesh = mesh;
      this.cache.set(snapshots);
      this.metrics.builds++;
      this.metrics.lastBuildMs = Math.round(performance.now() - t0);
      this.metrics.meshVersion = mesh.version;
      this.log('info', 'mesh applied', { version: mesh.version, services: mesh.services.length, zones: snapshots.length, buildMs: this.metrics.lastBuildMs });
    } catch (e) {
      this.metrics.buildErrors++;
      this.log('error', 'snapshot build failed; the snapshots in force stay', { version: mesh.version, error: (e as Error).message });
    }
  }

  /** Waits for builds queued so far (tests). */
  async settled(): Promise<void> {
    await this.building;
  }

  configDump(): unknown {
    const zones = this.cache.zones.map((z) => {
      const s = this.cache.snapshotFor(z)!;
      return {
        zone: z,
        meshVersion: s.meshVersion,
        types: Object.fromEntries([...s.resources.entries()].map(([t, m]) => [t, { version: s.typeVersions.get(t), resources: [...m.values()].map((r) => ({ name: r.name, version: r.version })) }])),
      };
    });
    return { mesh: this.mesh, snapshots: zones, ...(this.secrets === null ? {} : { sdsIdentities: this.secrets.identities }) };
  }

  async stop(): Promise<void> {
    this.o.source.stop();
    // Discovery streams never end by themselves: close them (clients reconnect elsewhere or later).
    this.server.forceShutdown();
    this.secrets?.close();
    this.caWatcher?.stop();
    await this.pool.close();
  }
}

/**
 * Plaintext, or TLS with the certificate and key files given (re-read as they change, so that a
 * certificate renewed by cert-manager or the like needs no restart). Proxies check the certificate
 * against the trust bundle of their bootstrap; they prove who they are with their tokens.
 */
function serverCredentials(tls: { certFile: string; keyFile: string } | undefined): grpc.ServerCredentials {
  if (tls === undefined) return grpc.ServerCredentials.createInsecure();
  return grpc.experimental.createCertificateProviderServerCredentials(new grpc.experimental.FileWatcherCertificateProvider({ certificateFile: tls.certFile, privateKeyFile: tls.keyFile, refreshIntervalMs: 60_000 }), null, false);
}
