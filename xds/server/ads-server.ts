// The xDS v3 gRPC server: ADS (state of the world and delta) and the per-type services (LDS, RDS,
// CDS, EDS, SDS: stream, delta and fetch), all served from the snapshot cache.

import * as grpc from '@grpc/grpc-js';
import { ADS_SERVICE, PER_TYPE_SERVICES, serviceDefinition } from '../common/grpc-services';
import { CDS_TYPE, EDS_TYPE, LDS_TYPE, RDS_TYPE, type ResourceType, SDS_TYPE } from '../common/type-urls';
import { SdsSecretError } from './ca/sds-secrets';
import { DeltaStream, SotwStream, type StreamContext } from './discovery-streams';
import type { XdsSnapshot } from './xds-snapshot';

const TYPE_OF_SERVICE: Record<(typeof PER_TYPE_SERVICES)[number], ResourceType> = {
  'envoy.service.listener.v3.ListenerDiscoveryService': LDS_TYPE,
  'envoy.service.route.v3.RouteDiscoveryService': RDS_TYPE,
  'envoy.service.cluster.v3.ClusterDiscoveryService': CDS_TYPE,
  'envoy.service.endpoint.v3.EndpointDiscoveryService': EDS_TYPE,
  'envoy.service.secret.v3.SecretDiscoveryService': SDS_TYPE,
};

type Duplex = grpc.ServerDuplexStream<unknown, unknown>;

export function createXdsServer(ctx: StreamContext): grpc.Server {
  // Large snapshots (thousands of clusters) exceed gRPC's 4 MiB default message size.
  const server = new grpc.Server({ 'grpc.max_send_message_length': 256 * 1024 * 1024, 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
  server.addService(serviceDefinition(ADS_SERVICE), {
    StreamAggregatedResources: (call: Duplex) => new SotwStream(call, ctx),
    DeltaAggregatedResources: (call: Duplex) => new DeltaStream(call, ctx),
  });
  for (const name of PER_TYPE_SERVICES) {
    const type = TYPE_OF_SERVICE[name];
    const def = serviceDefinition(name);
    const impl: grpc.UntypedServiceImplementation = {};
    for (const method of Object.keys(def)) {
      if (method.startsWith('Stream')) impl[method] = (call: Duplex) => new SotwStream(call, ctx, type);
      else if (method.startsWith('Delta')) impl[method] = (call: Duplex) => new DeltaStream(call, ctx, type);
      else impl[method] = (call: grpc.ServerUnaryCall<{ resource_names?: string[]; node?: { locality?: { zone?: string } } }, unknown>, cb: grpc.sendUnaryData<unknown>) => fetch(ctx, type, call.request, cb, call.metadata);
    }
    server.addService(def, impl);
  }
  return server;
}

/** Fetch*: one state-of-the-world answer, no stream. */
function fetch(
  ctx: StreamContext,
  type: ResourceType,
  req: { resource_names?: string[]; node?: { locality?: { zone?: string } } },
  cb: grpc.sendUnaryData<unknown>,
  metadata: grpc.Metadata,
): void {
  const secrets = ctx.secrets;
  if (type === SDS_TYPE && secrets !== undefined) {
    // Workload secrets: the caller's token decides whose (see ca/sds-secrets.ts).
    const auth = metadata.get('authorization')[0];
    secrets.acquire(typeof auth === 'string' ? auth : auth?.toString()).then(
      (s) => {
        answer(ctx, type, s.snapshot, req, cb);
        secrets.release(s);
      },
      (e: Error) => cb({ code: e instanceof SdsSecretError && !e.unauthenticated ? grpc.status.UNAVAILABLE : grpc.status.UNAUTHENTICATED, details: `no workload certificate: ${e.message}` }),
    );
    return;
  }
  answer(ctx, type, ctx.cache.snapshotFor(req.node?.locality?.zone ?? ''), req, cb);
}

function answer(ctx: StreamContext, type: ResourceType, snap: XdsSnapshot | null, req: { resource_names?: string[] }, cb: grpc.sendUnaryData<unknown>): void {
  if (snap === null) {
    cb({ code: grpc.status.UNAVAILABLE, details: 'no snapshot yet' });
    return;
  }
  const names = new Set(req.resource_names ?? []);
  const resources = snap.select(type, names.size === 0 && (type === LDS_TYPE || type === CDS_TYPE), names);
  cb(null, { version_info: snap.typeVersions.get(type) ?? '', type_url: type, resources: resources.map((r) => ({ type_url: r.typeUrl, value: r.value })), nonce: ctx.nextNonce() });
}
