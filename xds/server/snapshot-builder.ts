// Builds the encoded snapshots of a mesh, one per node zone: generation (generate.ts) plus protobuf
// encoding of every resource. CPU-bound and pure, so it runs in the piscina pool (build-pool.ts);
// the result is plain data with Buffers, cheap to transfer back.

import type { EngineSnapshot } from '../../engine/config/snapshot';
import { encodeMessage } from '../common/protos';
import { CDS_TYPE, CLUSTER, CLUSTER_LOAD_ASSIGNMENT, EDS_TYPE, LDS_TYPE, LISTENER, RDS_TYPE, ROUTE_CONFIGURATION, type ResourceType } from '../common/type-urls';
import { generateResources } from './generate';
import { type EncodedResource, resourceVersion } from './xds-snapshot';

const MESSAGE_OF: Record<string, string> = { [LDS_TYPE]: LISTENER, [RDS_TYPE]: ROUTE_CONFIGURATION, [CDS_TYPE]: CLUSTER, [EDS_TYPE]: CLUSTER_LOAD_ASSIGNMENT };

/** A built snapshot as plain data (what crosses the thread boundary). */
export interface BuiltSnapshot {
  zone: string;
  meshVersion: string;
  resources: [ResourceType, EncodedResource[]][];
  wildcardListeners: string[];
}

export function buildSnapshots(mesh: EngineSnapshot, zones: readonly string[]): BuiltSnapshot[] {
  return zones.map((zone) => {
    const g = generateResources(mesh, zone);
    const resources: [ResourceType, EncodedResource[]][] = [];
    for (const [type, byName] of g.byType) {
      const list: EncodedResource[] = [];
      for (const r of byName.values()) {
        const value = Buffer.from(encodeMessage(MESSAGE_OF[type]!, r.message));
        list.push({ name: r.name, version: resourceVersion(value), typeUrl: type, value });
      }
      resources.push([type, list]);
    }
    return { zone, meshVersion: mesh.version, resources, wildcardListeners: [...g.wildcardListeners] };
  });
}
