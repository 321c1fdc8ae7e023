// Envoy's v3 protos, loaded once at run time with protobufjs from the deps/ folders that the pinned
// @grpc/grpc-js-xds package ships (envoy-api, xds, googleapis, protoc-gen-validate): nothing is
// vendored. Messages are handled as plain objects in protobufjs's object form with the proto field
// names kept (snake_case, as in Envoy's YAML and docs; protobufjs's built-in well-known types such as
// Any and Struct have them too), enums as names, 64-bit integers as strings.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';

/** The files whose types Bowline reads or writes; their imports come along. */
const FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/listener/v3/lds.proto',
  'envoy/service/route/v3/rds.proto',
  'envoy/service/cluster/v3/cds.proto',
  'envoy/service/endpoint/v3/eds.proto',
  'envoy/service/secret/v3/sds.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto',
  'envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto',
];

const PACKAGE = '@grpc/grpc-js-xds';
const DEP_DIRS = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'];

/** Options for toObject: the plain-object form used everywhere in xds/. */
export const OBJECT_OPTIONS: protobuf.IConversionOptions = { enums: String, longs: String, bytes: Buffer, defaults: false, oneofs: true };

let root: protobuf.Root | undefined;

/** Where the proto files come from (for error messages and docs). */
export function protoDirs(): string[] {
  let base: string;
  try {
    base = path.dirname(require.resolve(`${PACKAGE}/package.json`));
  } catch {
    throw new Error(`cannot find ${PACKAGE}: Envoy's protos are loaded from its deps/ folders (run npm ci)`);
  }
  return DEP_DIRS.map((d) => path.join(base, 'deps', d));
}

/** The loaded and resolved protobufjs Root (loaded on first use, ~0.1 s). */
export function envoyRoot(): protobuf.Root {
  if (root !== undefined) return root;
  const dirs = protoDirs();
  const own = path.dirname(require.resolve('protobufjs/package.json'));
  const r = new protobuf.Root();
  r.resolvePath = (origin: string, target: string): string | null => {
    for (const d of dirs) {
      const p = path.join(d, target);
      if (fs.existsSync(p)) return p;
    }
    // google/protobuf/*: protobufjs's own copies (descriptor.proto), or its built-in common types.
    if (target.startsWith('google/protobuf/')) {
      const p = path.join(own, target);
      return fs.existsSync(p) ? p : null;
    }
    return protobuf.util.path.resolve(origin, target);
  };
  r.loadSync(FILES, { keepCase: true });
  r.resolveAll();
  root = r;
  return r;
}

/** A message type by its full name, e.g. 'envoy.config.cluster.v3.Cluster'. */
export function messageType(fullName: string): protobuf.Type {
  return envoyRoot().lookupType(fullName);
}

const TYPE_URL_PREFIX = 'type.googleapis.com/';

/**
 * Throws when `obj` names a field that `t` does not have, anywhere inside: protobufjs's fromObject
 * would drop it silently, and a misspelt field must never vanish from a resource we send.
 */
export function checkFields(t: protobuf.Type, obj: unknown, at = t.name): void {
  if (obj === null || typeof obj !== 'object' || obj instanceof Uint8Array) return;
  for (const [key, value] of Object.entries(obj as Record<string, unknown>)) {
    const f = t.fields[key];
    if (f === undefined) throw new Error(`${at}.${key}: no such field in ${t.fullName.slice(1)}`);
    const sub = f.resolve().resolvedType;
    if (!(sub instanceof (envoyRoot().lookupType('google.protobuf.Any').constructor as typeof protobuf.Type))) continue;
    if (sub.fullName === '.google.protobuf.Any') continue;
    if (f.map) for (const [k, v] of Object.entries((value ?? {}) as Record<string, unknown>)) checkFields(sub, v, `${at}.${key}[${k}]`);
    else if (f.repeated && Array.isArray(value)) value.forEach((v, i) => checkFields(sub, v, `${at}.${key}[${i}]`));
    else checkFields(sub, value, `${at}.${key}`);
  }
}

/** A google.protobuf.Any (plain-object form) holding `message` of type `fullName`. */
export function packAny(fullName: string, message: object): { type_url: string; value: Buffer } {
  const t = messageType(fullName);
  checkFields(t, message);
  return { type_url: TYPE_URL_PREFIX + fullName, value: Buffer.from(t.encode(t.fromObject(message)).finish()) };
}

/** The message inside an Any, as a plain object, with its type name. Throws on unknown types or bad bytes. */
export function unpackAny(any: { type_url?: string; value?: Uint8Array }): { type: string; message: Record<string, unknown> } {
  const url = any.type_url ?? '';
  const type = url.slice(url.lastIndexOf('/') + 1);
  if (type === '') throw new Error('an Any without a type_url');
  let t: protobuf.Type;
  try {
    t = messageType(type);
  } catch {
    throw new Error(`unknown type ${type}`);
  }
  const msg = t.decode(any.value ?? new Uint8Array(0));
  return { type, message: t.toObject(msg, OBJECT_OPTIONS) };
}

/** Encodes a plain object as `fullName` (every field name checked, see checkFields). */
export function encodeMessage(fullName: string, message: object): Uint8Array {
  const t = messageType(fullName);
  checkFields(t, message);
  return t.encode(t.fromObject(message)).finish();
}

/** Decodes bytes of `fullName` into the plain-object form. */
export function decodeMessage<T = Record<string, unknown>>(fullName: string, bytes: Uint8Array): T {
  const t = messageType(fullName);
  return t.toObject(t.decode(bytes), OBJECT_OPTIONS) as T;
}
