// Builds the encoded snapshots of a mesh, one per node zone: generation (generate.ts) plus protobuf
// encoding of every resource. Only load assignments differ by zone, so everything else is generated
// and encoded once. CPU-bound and pure, so it runs in the piscina pool (build-pool.ts); the result is
// plain data with Buffers, cheap to transfer back.

import type { EngineSnapshot } from '../../engine/config/snapshot';
import { encodeMessage } from '../common/protos';
import { CDS_TYPE, CLUSTER, CLUSTER_LOAD_ASSIGNMENT, EDS_TYPE, LDS_TYPE, LISTENER, RDS_TYPE, ROUTE_CONFIGURATION, type ResourceType } from '../common/type-urls';
import { generateEndpoints, generateResources, type Resource } from './generate';
import { type EncodedResource, resourceVersion } from './xds-snapshot';

const MESSAGE_OF: Record<string, string> = { [LDS_TYPE]: LISTENER, [RDS_TYPE]: ROUTE_CONFIGURATION, [CDS_TYPE]: CLUSTER, [EDS_TYPE]: CLUSTER_LOAD_ASSIGNMENT };

/** The snapshots of one mesh version as plain data (what crosses the thread boundary). */
export interface BuiltSnapshots {
  meshVersion: string;
  /** Resources every zone shares (listeners, routes, clusters). */
  common: [ResourceType, EncodedResource[]][];
  /** Load assignments per zone. */
  endpoints: [string, EncodedResource[]][];
  wildcardListeners: string[];
}

/** `check` verifies every field name of every message (tests); production builds skip it. */
export function buildSnapshots(mesh: EngineSnapshot, zones: readonly string[], check = false): BuiltSnapshots {
  const g = generateResources(mesh, '', check);
  const common: [ResourceType, EncodedResource[]][] = [];
  for (const [type, byName] of g.byType) {
    if (type === EDS_TYPE) continue;
    common.push([type, encodeAll(type, byName.values(), check)]);
  }
  const endpoints: [string, EncodedResource[]][] = zones.map((zone) => [zone, encodeAll(EDS_TYPE, (zone === '' ? g.byType.get(EDS_TYPE)! : generateEndpoints(mesh, zone)).values(), check)]);
  return { meshVersion: mesh.version, common, endpoints, wildcardListeners: [...g.wildcardListeners] };
}

function encodeAll(type: ResourceType, resources: Iterable<Resource>, check: boolean): EncodedResource[] {
  const out: EncodedResource[] = [];
  for (const r of resources) {
    const value = Buffer.from(encodeMessage(MESSAGE_OF[type]!, r.message, check));
    out.push({ name: r.name, version: resourceVersion(value), typeUrl: type, value });
  }
  return out;
}
