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
  // Extensions that control planes such as istiod put in listeners, routes and clusters: loaded so
  // that their Anys decode (and re-encode) intact, even where Bowline does not act on them.
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/filters/http/cors/v3/cors.proto',
  'envoy/extensions/filters/http/grpc_stats/v3/config.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto',
  'envoy/extensions/filters/listener/original_dst/v3/original_dst.proto',
  'envoy/extensions/request_id/uuid/v3/uuid.proto',
  'envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto',
  'envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'udpa/type/v1/typed_struct.proto',
  'xds/type/v3/typed_struct.proto',
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
    if (key === '@type') continue;
    const f = t.fields[key];
    if (f === undefined) throw new Error(`${at}.${key}: no such field in ${t.fullName.slice(1)}`);
    const sub = f.resolve().resolvedType;
    if (!(sub instanceof protobufTypeCtor())) continue;
    const check = (v: unknown, where: string): void => {
      if (sub.fullName !== '.google.protobuf.Any') return checkFields(sub, v, where);
      // A JSON-form Any ({ "@type": ..., fields }) is checked against its own type, when loaded.
      const url = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)['@type'] : undefined;
      if (typeof url !== 'string') return;
      let inner: protobuf.Type | undefined;
      try {
        inner = messageType(url.slice(url.lastIndexOf('/') + 1));
      } catch {
        return;
      }
      checkFields(inner, v, where);
    };
    if (f.map) for (const [k, v] of Object.entries((value ?? {}) as Record<string, unknown>)) check(v, `${at}.${key}[${k}]`);
    else if (f.repeated && Array.isArray(value)) value.forEach((v, i) => check(v, `${at}.${key}[${i}]`));
    else check(value, `${at}.${key}`);
  }
}

/** A google.protobuf.Any (plain-object form) holding `message` of type `fullName`. */
export function packAny(fullName: string, message: object, check = true): { type_url: string; value: Buffer } {
  const t = messageType(fullName);
  if (check) checkFields(t, message);
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

/** Encodes a plain object as `fullName` (every field name checked, see checkFields, unless `check` is off). */
export function encodeMessage(fullName: string, message: object, check = true): Uint8Array {
  const t = messageType(fullName);
  if (check) checkFields(t, message);
  return t.encode(t.fromObject(message)).finish();
}

/** Decodes bytes of `fullName` into the plain-object form. */
export function decodeMessage<T = Record<string, unknown>>(fullName: string, bytes: Uint8Array): T {
  const t = messageType(fullName);
  return t.toObject(t.decode(bytes), OBJECT_OPTIONS) as T;
}

const WRAPPERS = new Set([
  '.google.protobuf.DoubleValue',
  '.google.protobuf.FloatValue',
  '.google.protobuf.Int64Value',
  '.google.protobuf.UInt64Value',
  '.google.protobuf.Int32Value',
  '.google.protobuf.UInt32Value',
  '.google.protobuf.BoolValue',
  '.google.protobuf.StringValue',
  '.google.protobuf.BytesValue',
]);

/**
 * Envoy's canonical JSON/YAML form (what its docs, istioctl and bootstrap files use) into
 * protobufjs's object form: durations as "1.5s" become { seconds, nanos }; wrapped scalars
 * ("num_retries": 2) become { value: 2 }; a Struct given as plain JSON becomes { fields }; Anys keep
 * their "@type" and have their inside converted by that type. Walks with the message type, so only
 * fields of those types change.
 */
export function fromCanonicalJson(t: protobuf.Type, obj: unknown): unknown {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj) || obj instanceof Uint8Array) return obj;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(obj as Record<string, unknown>)) {
    const f = t.fields[key];
    if (f === undefined) {
      out[key] = value; // "@type", or an unknown field that checkFields will name
      continue;
    }
    const sub = f.resolve().resolvedType;
    const conv = (v: unknown): unknown => (sub instanceof protobufTypeCtor() ? convertMessage(sub, v) : v);
    if (f.map) out[key] = Object.fromEntries(Object.entries((value ?? {}) as Record<string, unknown>).map(([k, v]) => [k, conv(v)]));
    else if (f.repeated && Array.isArray(value)) out[key] = value.map(conv);
    else out[key] = conv(value);
  }
  return out;
}

function protobufTypeCtor(): typeof protobuf.Type {
  return envoyRoot().lookupType('google.protobuf.Duration').constructor as typeof protobuf.Type;
}

function convertMessage(t: protobuf.Type, v: unknown): unknown {
  const name = t.fullName;
  if (name === '.google.protobuf.Duration' && typeof v === 'string') {
    const m = /^(-?)(\d*)(?:\.(\d{1,9}))?s$/.exec(v.trim());
    if (m === null) throw new Error(`"${v}" is not a duration like "1.5s"`);
    const sign = m[1] === '-' ? -1 : 1;
    return { seconds: sign * Number(m[2] || '0'), nanos: sign * Number((m[3] ?? '').padEnd(9, '0') || '0') };
  }
  if (WRAPPERS.has(name) && (typeof v !== 'object' || v === null)) return { value: v };
  if (name === '.google.protobuf.Struct' && v !== null && typeof v === 'object' && !('fields' in (v as object))) return jsonToStruct(v as Record<string, unknown>);
  if (name === '.google.protobuf.Any' && v !== null && typeof v === 'object' && typeof (v as Record<string, unknown>)['@type'] === 'string') {
    const url = (v as Record<string, string>)['@type']!;
    let inner: protobuf.Type;
    try {
      inner = messageType(url.slice(url.lastIndexOf('/') + 1));
    } catch {
      return v; // a type we do not load (an extension Bowline does not run): kept as it is
    }
    return { ...(fromCanonicalJson(inner, v) as object), '@type': url };
  }
  return fromCanonicalJson(t, v);
}

function jsonToStruct(o: Record<string, unknown>): { fields: Record<string, unknown> } {
  const val = (x: unknown): unknown => {
    if (x === null) return { nullValue: 'NULL_VALUE' };
    if (typeof x === 'boolean') return { boolValue: x };
    if (typeof x === 'number') return { numberValue: x };
    if (typeof x === 'string') return { stringValue: x };
    if (Array.isArray(x)) return { listValue: { values: x.map(val) } };
    return { structValue: jsonToStruct(x as Record<string, unknown>) };
  };
  return { fields: Object.fromEntries(Object.entries(o).map(([k, x]) => [k, val(x)])) };
}
