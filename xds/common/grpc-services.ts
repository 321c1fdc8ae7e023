// gRPC service definitions for @grpc/grpc-js built from the protobufjs descriptors of Envoy's
// discovery services (ADS and the per-type LDS/RDS/CDS/EDS/SDS), with protobufjs doing the encoding.
// A message may also be handed over already encoded (a Uint8Array): the control plane encodes a
// response's resources once and adds each stream's nonce as a few more bytes (protobuf fields may be
// concatenated), instead of re-encoding the same resources for every client.

import type * as grpc from '@grpc/grpc-js';
import type * as protobuf from 'protobufjs';
import { envoyRoot, OBJECT_OPTIONS } from './protos';

export const ADS_SERVICE = 'envoy.service.discovery.v3.AggregatedDiscoveryService';
export const PER_TYPE_SERVICES = [
  'envoy.service.listener.v3.ListenerDiscoveryService',
  'envoy.service.route.v3.RouteDiscoveryService',
  'envoy.service.cluster.v3.ClusterDiscoveryService',
  'envoy.service.endpoint.v3.EndpointDiscoveryService',
  'envoy.service.secret.v3.SecretDiscoveryService',
] as const;

function serializer(t: protobuf.Type): (v: unknown) => Buffer {
  return (v: unknown): Buffer => {
    if (v instanceof Uint8Array) return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    return Buffer.from(t.encode(t.fromObject(v as Record<string, unknown>)).finish());
  };
}

function deserializer(t: protobuf.Type): (b: Buffer) => unknown {
  return (b: Buffer): unknown => t.toObject(t.decode(b), OBJECT_OPTIONS);
}

/** The grpc-js definition of one service (all its methods), by full name; Envoy's root unless given. */
export function serviceDefinition(fullName: string, root: protobuf.Root = envoyRoot()): grpc.ServiceDefinition {
  const svc = root.lookupService(fullName);
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of svc.methodsArray) {
    m.resolve();
    const req = m.resolvedRequestType!;
    const res = m.resolvedResponseType!;
    def[m.name] = {
      path: `/${fullName}/${m.name}`,
      requestStream: m.requestStream === true,
      responseStream: m.responseStream === true,
      requestSerialize: serializer(req),
      requestDeserialize: deserializer(req),
      responseSerialize: serializer(res),
      responseDeserialize: deserializer(res),
      originalName: m.name,
    };
  }
  return def as grpc.ServiceDefinition;
}

/** Encodes a message of `fullName` once; the result can be sent as is (see serializer). */
export function preEncode(fullName: string, message: object): Buffer {
  const t = envoyRoot().lookupType(fullName);
  return Buffer.from(t.encode(t.fromObject(message as Record<string, unknown>)).finish());
}
