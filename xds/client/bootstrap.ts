// An Envoy-style bootstrap (YAML or JSON) for `bowline proxy --bootstrap FILE`: the node (id,
// cluster, locality zone), the admin address, static resources, and the ADS server to fetch the rest
// from. Every field is checked against Envoy's Bootstrap proto (a misspelt one is an error); fields
// that do not change how traffic flows (stats, tracing, watchdogs, runtime layers) are ignored;
// fields that would change it and that Bowline does not implement are refused by name.

import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { checkFields, fromCanonicalJson, messageType, OBJECT_OPTIONS, unpackAny } from '../common/protos';
import type { ControlPlaneTls } from './control-channel';
import type * as E from './envoy-types';

export interface Bootstrap {
  node: { id: string; cluster: string; zone: string };
  admin: { host: string; port: number } | null;
  /** The ADS server, whether to use the delta protocol, and TLS to it (absent: plaintext). */
  ads: { host: string; port: number; delta: boolean; tls?: ControlPlaneTls } | null;
  static: { listeners: E.Listener[]; clusters: E.Cluster[] };
  /** Fields present but ignored (they do not change traffic), for a log line. */
  ignored: string[];
}

const USED = new Set(['node', 'admin', 'static_resources', 'dynamic_resources']);
/** Top-level fields that do not change how traffic flows. */
const IGNORED = new Set([
  'stats_sinks',
  'stats_config',
  'stats_flush_interval',
  'stats_flush_on_admin',
  'stats_server_version_override',
  'watchdog',
  'watchdogs',
  'tracing',
  'layered_runtime',
  'flags_path',
  'enable_dispatcher_stats',
  'default_regex_engine',
  'node_context_params',
  'fatal_actions',
  'application_log_config',
  'use_tcp_for_dns_lookups',
]);

export class BootstrapError extends Error {
  override readonly name = 'BootstrapError';
}

export function loadBootstrap(file: string): Bootstrap {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new BootstrapError(`${file}: cannot read the file: ${(e as Error).message}`);
  }
  return parseBootstrap(text, file);
}

export function parseBootstrap(text: string, file: string): Bootstrap {
  let raw: unknown;
  try {
    raw = parseYaml(text); // JSON is YAML too
  } catch (e) {
    throw new BootstrapError(`${file}: ${(e as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new BootstrapError(`${file}: must be a mapping (an Envoy bootstrap)`);
  const fail = (field: string, why: string): never => {
    throw new BootstrapError(`${file}: ${field}: ${why}`);
  };
  const T = messageType('envoy.config.bootstrap.v3.Bootstrap');
  let decoded: Record<string, unknown>;
  try {
    const obj = fromCanonicalJson(T, raw) as Record<string, unknown>;
    checkFields(T, obj);
    // fromObject turns "@type" Anys into encoded Anys; toObject gives the decoded form back.
    decoded = T.toObject(T.fromObject(obj), OBJECT_OPTIONS);
  } catch (e) {
    throw new BootstrapError(`${file}: ${(e as Error).message.replace(/^Bootstrap\./, '')}`);
  }
  const ignored: string[] = [];
  for (const key of Object.keys(raw as object)) {
    if (USED.has(key)) continue;
    if (IGNORED.has(key)) ignored.push(key);
    else fail(key, "changes Envoy's behaviour and is not supported by Bowline (remove it, or see docs for what Bowline reads)");
  }
  const node = (decoded['node'] ?? {}) as { id?: string; cluster?: string; locality?: { zone?: string } };
  let admin: Bootstrap['admin'] = null;
  const adminSa = (decoded['admin'] as { address?: E.Address } | undefined)?.address?.socket_address;
  if (adminSa !== undefined) admin = { host: adminSa.address ?? '127.0.0.1', port: Number(adminSa.port_value ?? 0) };

  const sr = (decoded['static_resources'] ?? {}) as { listeners?: E.Listener[]; clusters?: E.Cluster[]; secrets?: unknown[] };
  if ((sr.secrets?.length ?? 0) > 0) fail('static_resources.secrets', 'TLS secrets come with mesh identity (not supported yet)');
  const clusters = sr.clusters ?? [];

  let ads: Bootstrap['ads'] = null;
  const dr = decoded['dynamic_resources'] as Record<string, unknown> | undefined;
  if (dr !== undefined) {
    for (const k of Object.keys(dr)) {
      if (k === 'ads_config') continue;
      if (k === 'lds_config' || k === 'cds_config') {
        const cs = dr[k] as Record<string, unknown>;
        if (cs['ads'] === undefined) fail(`dynamic_resources.${k}`, 'only { ads: {} } is supported (resources come over ADS)');
        continue;
      }
      fail(`dynamic_resources.${k}`, 'is not supported');
    }
    const ac = dr['ads_config'] as { api_type?: string; transport_api_version?: string; grpc_services?: { envoy_grpc?: { cluster_name?: string }; google_grpc?: { target_uri?: string } }[] } | undefined;
    if (ac !== undefined) {
      const apiType = ac.api_type ?? 'GRPC';
      if (apiType !== 'GRPC' && apiType !== 'DELTA_GRPC' && apiType !== 'AGGREGATED_GRPC' && apiType !== 'AGGREGATED_DELTA_GRPC') {
        fail('dynamic_resources.ads_config.api_type', `${apiType} is not supported (GRPC or DELTA_GRPC)`);
      }
      if ((ac.transport_api_version ?? 'V3') !== 'V3') fail('dynamic_resources.ads_config.transport_api_version', 'only V3 is supported');
      const gs = ac.grpc_services?.[0];
      if (gs === undefined) fail('dynamic_resources.ads_config.grpc_services', 'needs one entry');
      let target: { host: string; port: number; tls?: ControlPlaneTls } | undefined;
      if (gs!.envoy_grpc?.cluster_name !== undefined) {
        const name = gs!.envoy_grpc.cluster_name;
        const c = clusters.find((x) => x.name === name);
        if (c === undefined) fail('dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name', `no static cluster named "${name}"`);
        const sa = c!.load_assignment?.endpoints?.[0]?.lb_endpoints?.[0]?.endpoint?.address?.socket_address;
        if (sa === undefined) fail(`static_resources.clusters[${name}].load_assignment`, 'needs an endpoint with socket_address (the ADS server)');
        target = { host: sa!.address ?? '', port: Number(sa!.port_value ?? 0) };
        const ts = (c as { transport_socket?: { typed_config?: { type_url?: string; value?: Uint8Array } } }).transport_socket;
        if (ts != null) target = { ...target, tls: controlPlaneTls(ts, `static_resources.clusters[${name}].transport_socket`, fail) };
      } else if (gs!.google_grpc?.target_uri !== undefined) {
        const m = /^(?:dns:\/*)?\[?([^\]]+?)\]?:(\d+)$/.exec(gs!.google_grpc.target_uri);
        if (m === null) fail('dynamic_resources.ads_config.grpc_services[0].google_grpc.target_uri', 'must be HOST:PORT');
        target = { host: m![1]!, port: Number(m![2]) };
      } else {
        fail('dynamic_resources.ads_config.grpc_services[0]', 'needs envoy_grpc.cluster_name or google_grpc.target_uri');
      }
      ads = { ...target!, delta: apiType.includes('DELTA') };
    }
  }
  return {
    node: { id: node.id ?? '', cluster: node.cluster ?? '', zone: node.locality?.zone ?? '' },
    admin,
    ads,
    static: { listeners: sr.listeners ?? [], clusters },
    ignored,
  };
}

/**
 * TLS to the control plane from the xDS cluster's transport socket: an UpstreamTlsContext with the
 * trust bundle (validation_context.trusted_ca, a file or inline PEM) and optionally the name to
 * check (sni). Anything else in it would change the handshake and is refused by name.
 */
function controlPlaneTls(ts: { typed_config?: { type_url?: string; value?: Uint8Array } }, at: string, fail: (field: string, why: string) => never): ControlPlaneTls {
  if (ts.typed_config == null) return fail(at, 'needs typed_config (an UpstreamTlsContext)');
  const { type, message } = unpackAny(ts.typed_config);
  if (type !== 'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext') return fail(`${at}.typed_config`, `${type}: only envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext is supported`);
  for (const k of fieldsOf(message)) if (k !== 'sni' && k !== 'common_tls_context') fail(`${at}.typed_config.${k}`, 'is not supported for the control plane connection');
  const ctx = (message['common_tls_context'] ?? {}) as Record<string, unknown>;
  for (const k of fieldsOf(ctx)) {
    if (k === 'validation_context' || k === 'alpn_protocols') continue;
    fail(`${at}.typed_config.common_tls_context.${k}`, k === 'tls_certificates' || k === 'tls_certificate_sds_secret_configs' ? 'client certificates to the control plane are not supported (a proxy proves its identity with its token)' : 'is not supported for the control plane connection');
  }
  const vc = (ctx['validation_context'] ?? {}) as Record<string, unknown>;
  for (const k of fieldsOf(vc)) if (k !== 'trusted_ca') fail(`${at}.typed_config.common_tls_context.validation_context.${k}`, 'is not supported (the name checked is sni, or the address)');
  const ca = vc['trusted_ca'] as { filename?: string; inline_string?: string; inline_bytes?: Uint8Array } | undefined;
  let source: ControlPlaneTls['ca'];
  if (ca?.filename !== undefined && ca.filename !== '') source = { file: ca.filename };
  else if (ca?.inline_string !== undefined && ca.inline_string !== '') source = { pem: ca.inline_string };
  else if (ca?.inline_bytes !== undefined && ca.inline_bytes.length > 0) source = { pem: Buffer.from(ca.inline_bytes).toString('utf8') };
  else return fail(`${at}.typed_config.common_tls_context.validation_context.trusted_ca`, 'needs a filename or inline PEM (the control plane\'s certificate is always checked)');
  if ('file' in source) {
    try {
      readFileSync(source.file);
    } catch (e) {
      fail(`${at}.typed_config.common_tls_context.validation_context.trusted_ca.filename`, `cannot read ${source.file}: ${(e as Error).message}`);
    }
  }
  return { ca: source, sni: typeof message['sni'] === 'string' ? message['sni'] : '' };
}

/** The fields set in a decoded message, without the names of its oneofs (which decoding adds, naming the member set). */
function fieldsOf(o: Record<string, unknown>): string[] {
  return Object.keys(o).filter((k) => !(typeof o[k] === 'string' && (o[k] as string) in o));
}
