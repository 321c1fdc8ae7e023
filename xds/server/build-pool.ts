// Snapshot building off the thread that serves the streams: a piscina pool runs build-worker.ts.
// Building thousands of resources for every zone and encoding them takes CPU; the serving thread only
// receives the encoded bytes. `threads: 0` builds inline (tests, tiny meshes).

import * as path from 'node:path';
import { Piscina } from 'piscina';
import type { EngineSnapshot } from '../../engine/config/snapshot';
import { EDS_TYPE, type ResourceType } from '../common/type-urls';
import { type BuiltSnapshots, buildSnapshots } from './snapshot-builder';
import { type EncodedResource, XdsSnapshot } from './xds-snapshot';

export class BuildPool {
  private readonly pool: Piscina | null;

  constructor(threads: number) {
    this.pool = threads > 0 ? new Piscina({ filename: path.resolve(__dirname, 'build-worker.js'), minThreads: 1, maxThreads: threads, idleTimeout: 60_000 }) : null;
  }

  /** The snapshots of `mesh` for every zone its endpoints name, plus the zone-less one. */
  async build(mesh: EngineSnapshot): Promise<{ zone: string; snapshot: XdsSnapshot }[]> {
    const zones = ['', ...new Set(mesh.services.flatMap((s) => s.endpoints.map((e) => e.zone)).filter((z) => z !== ''))];
    const built: BuiltSnapshots = this.pool === null ? buildSnapshots(mesh, zones) : ((await this.pool.run({ mesh, zones })) as BuiltSnapshots);
    const common = new Map<ResourceType, Map<string, EncodedResource>>();
    for (const [type, list] of built.common) common.set(type, asBuffers(list));
    const wildcard = new Set(built.wildcardListeners);
    return built.endpoints.map(([zone, list]) => {
      // Zones share every map but the load assignments.
      const resources = new Map(common);
      resources.set(EDS_TYPE, asBuffers(list));
      return { zone, snapshot: new XdsSnapshot(built.meshVersion, resources, wildcard) };
    });
  }

  async close(): Promise<void> {
    await this.pool?.destroy();
  }
}

/** Back from the worker, Buffers arrive as Uint8Arrays: view them as Buffers again (no copy). */
function asBuffers(list: EncodedResource[]): Map<string, EncodedResource> {
  const m = new Map<string, EncodedResource>();
  for (const r of list) {
    const v = r.value as Uint8Array;
    m.set(r.name, { ...r, value: Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength) });
  }
  return m;
}
