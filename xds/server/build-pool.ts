// Snapshot building off the thread that serves the streams: a piscina pool runs build-worker.ts.
// Building thousands of resources for every zone and encoding them takes CPU; the serving thread only
// receives the encoded bytes. `threads: 0` builds inline (tests, tiny meshes).

import * as path from 'node:path';
import { Piscina } from 'piscina';
import type { EngineSnapshot } from '../../engine/config/snapshot';
import type { ResourceType } from '../common/type-urls';
import { type BuiltSnapshot, buildSnapshots } from './snapshot-builder';
import { type EncodedResource, XdsSnapshot } from './xds-snapshot';

export class BuildPool {
  private readonly pool: Piscina | null;

  constructor(threads: number) {
    this.pool = threads > 0 ? new Piscina({ filename: path.resolve(__dirname, 'build-worker.js'), minThreads: 1, maxThreads: threads, idleTimeout: 60_000 }) : null;
  }

  /** The snapshots of `mesh` for every zone its endpoints name, plus the zone-less one. */
  async build(mesh: EngineSnapshot): Promise<{ zone: string; snapshot: XdsSnapshot }[]> {
    const zones = ['', ...new Set(mesh.services.flatMap((s) => s.endpoints.map((e) => e.zone)).filter((z) => z !== ''))];
    const built: BuiltSnapshot[] = this.pool === null ? buildSnapshots(mesh, zones) : ((await this.pool.run({ mesh, zones })) as BuiltSnapshot[]);
    return built.map((b) => ({ zone: b.zone, snapshot: toSnapshot(b) }));
  }

  async close(): Promise<void> {
    await this.pool?.destroy();
  }
}

/** Back from the worker, Buffers arrive as Uint8Arrays: view them as Buffers again (no copy). */
function toSnapshot(b: BuiltSnapshot): XdsSnapshot {
  const resources = new Map<ResourceType, Map<string, EncodedResource>>();
  for (const [type, list] of b.resources) {
    const m = new Map<string, EncodedResource>();
    for (const r of list) {
      const v = r.value as Uint8Array;
      m.set(r.name, { ...r, value: Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength) });
    }
    resources.set(type, m);
  }
  return new XdsSnapshot(b.meshVersion, resources, new Set(b.wildcardListeners));
}
