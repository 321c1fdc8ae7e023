// Builds the encoded snapshots of a mesh, one per node zone. Only load assignments differ by zone,
// so everything else is generated and encoded once; and what a service's resources are made of is
// compared with the previous build, so that a change to one endpoint of a thousand services encodes
// one load assignment, not four thousand resources. CPU-bound and pure but for that cache (one per
// thread), so it runs in the piscina pool (build-pool.ts); the result is plain data with Buffers.

import type { EngineSnapshot, ServiceSnapshot } from '../../engine/config/snapshot';
import { encodeMessage } from '../common/protos';
import { CDS_TYPE, CLUSTER, CLUSTER_LOAD_ASSIGNMENT, EDS_TYPE, LDS_TYPE, LISTENER, RDS_TYPE, ROUTE_CONFIGURATION, type ResourceType } from '../common/type-urls';
import { clusterMessage, grpcListener, grpcRouteConfig, grpcRouteConfigName, loadAssignment, routesByHostname, socketResources } from './generate';
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

/** Encodings of the previous build, by type, name and what they were made of. */
const previous = new Map<string, { source: string; encoded: EncodedResource }>();

function cachedEncode(type: ResourceType, name: string, cacheKey: string, source: string, make: () => Record<string, unknown>, check: boolean, next: Map<string, { source: string; encoded: EncodedResource }>): EncodedResource {
  const hit = previous.get(cacheKey);
  const encoded = hit !== undefined && hit.source === source ? hit.encoded : encodeOne(type, name, make(), check);
  next.set(cacheKey, { source, encoded });
  return encoded;
}

/** `check` verifies every field name of every message (tests); production builds skip it. */
export function buildSnapshots(mesh: EngineSnapshot, zones: readonly string[], check = false): BuiltSnapshots {
  const next = new Map<string, { source: string; encoded: EncodedResource }>();
  const lds: EncodedResource[] = [];
  const rds: EncodedResource[] = [];
  const cds: EncodedResource[] = [];
  const eds = new Map<string, EncodedResource[]>(zones.map((z) => [z, []]));
  const grpcRoutes = routesByHostname(mesh);
  for (const svc of mesh.services) {
    const { endpoints, ...settings } = svc;
    const clusterSource = JSON.stringify(settings);
    cds.push(cachedEncode(CDS_TYPE, svc.name, `c\u0000${svc.name}`, clusterSource, () => clusterMessage(svc, check), check, next));
    const endpointSource = JSON.stringify(endpoints);
    for (const zone of zones) {
      eds.get(zone)!.push(cachedEncode(EDS_TYPE, svc.name, `e\u0000${zone}\u0000${svc.name}`, endpointSource, () => loadAssignment(svc as ServiceSnapshot, zone), check, next));
    }
    lds.push(cachedEncode(LDS_TYPE, svc.name, `l\u0000${svc.name}`, '', () => grpcListener(svc.name, check), check, next));
    const routes = grpcRoutes.get(svc.name) ?? [];
    rds.push(cachedEncode(RDS_TYPE, grpcRouteConfigName(svc.name), `r\u0000${svc.name}`, JSON.stringify(routes), () => grpcRouteConfig(svc.name, routes), check, next));
  }
  // The mesh's own listeners and route configurations: few, rebuilt every time.
  const socket = socketResources(mesh, check);
  for (const [name, m] of socket.listeners) lds.push(encodeOne(LDS_TYPE, name, m, check));
  for (const [name, m] of socket.routes) rds.push(encodeOne(RDS_TYPE, name, m, check));
  previous.clear();
  for (const [k, v] of next) previous.set(k, v);
  return {
    meshVersion: mesh.version,
    common: [
      [CDS_TYPE, cds],
      [LDS_TYPE, lds],
      [RDS_TYPE, rds],
    ],
    endpoints: [...eds.entries()],
    wildcardListeners: [...socket.listeners.keys()],
  };
}

function encodeOne(type: ResourceType, name: string, message: Record<string, unknown>, check: boolean): EncodedResource {
  const value = Buffer.from(encodeMessage(MESSAGE_OF[type]!, message, check));
  return { name, version: resourceVersion(value), typeUrl: type, value };
}
