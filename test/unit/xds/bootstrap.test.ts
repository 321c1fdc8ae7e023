// The Envoy bootstrap of `bowline proxy --bootstrap`: what it reads, what it ignores (fields that do
// not change traffic), and what it refuses by name (fields that would, and misspelt ones).

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BootstrapError, parseBootstrap } from '../../../xds/client/bootstrap';

const BASE = `
node:
  id: sidecar-1
  cluster: web
  locality: { region: r1, zone: zone-a }
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: 9901 } }
dynamic_resources:
  ads_config:
    api_type: DELTA_GRPC
    transport_api_version: V3
    grpc_services: [{ envoy_grpc: { cluster_name: xds } }]
  lds_config: { ads: {}, resource_api_version: V3 }
  cds_config: { ads: {}, resource_api_version: V3 }
static_resources:
  clusters:
    - name: xds
      type: STATIC
      connect_timeout: 1s
      load_assignment:
        cluster_name: xds
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 10.0.0.9, port_value: 18000 } } } }] }]
`;

function refused(text: string): string {
  try {
    parseBootstrap(text, 'boot.yaml');
  } catch (e) {
    assert.ok(e instanceof BootstrapError, String(e));
    return e.message;
  }
  assert.fail('expected the bootstrap to be refused');
}

test('node, zone, admin and the ADS server (delta) are read; canonical durations are accepted', () => {
  const b = parseBootstrap(BASE, 'boot.yaml');
  assert.deepEqual(b.node, { id: 'sidecar-1', cluster: 'web', zone: 'zone-a' });
  assert.deepEqual(b.admin, { host: '127.0.0.1', port: 9901 });
  assert.deepEqual(b.ads, { host: '10.0.0.9', port: 18000, delta: true });
  assert.equal(b.static.clusters[0]!.name, 'xds');
  assert.equal(Number(b.static.clusters[0]!.connect_timeout!.seconds), 1);
});

test('JSON works too, and google_grpc targets; state of the world by default', () => {
  const b = parseBootstrap(
    JSON.stringify({ node: { id: 'n' }, dynamic_resources: { ads_config: { api_type: 'GRPC', grpc_services: [{ google_grpc: { target_uri: 'cp.example:18000', stat_prefix: 'ads' } }] } } }),
    'boot.json',
  );
  assert.deepEqual(b.ads, { host: 'cp.example', port: 18000, delta: false });
});

test('fields that do not change traffic are ignored and listed', () => {
  const b = parseBootstrap(`${BASE}\nstats_flush_interval: 5s\nlayered_runtime: { layers: [] }\n`, 'boot.yaml');
  assert.deepEqual(b.ignored.sort(), ['layered_runtime', 'stats_flush_interval']);
});

test('fields that would change behaviour are refused by name; so are misspelt ones', () => {
  assert.match(refused(`${BASE}\noverload_manager: {}\n`), /^boot\.yaml: overload_manager: changes Envoy's behaviour and is not supported/);
  assert.match(refused(BASE.replace('lds_config: { ads: {}, resource_api_version: V3 }', 'lds_config: { path_config_source: { path: /x } }')), /dynamic_resources\.lds_config: only \{ ads: \{\} \} is supported/);
  assert.match(refused(BASE.replace('cluster_name: xds }', 'cluster_name: nope }')), /envoy_grpc\.cluster_name: no static cluster named "nope"/);
  assert.match(refused(BASE.replace('connect_timeout: 1s', 'conect_timeout: 1s')), /conect_timeout: no such field in envoy\.config\.cluster\.v3\.Cluster/);
  assert.match(refused(BASE.replace('api_type: DELTA_GRPC', 'api_type: REST')), /api_type: REST is not supported/);
});

const withTls = (ctx: string): string =>
  BASE.replace('      connect_timeout: 1s', `      connect_timeout: 1s\n      transport_socket: { name: envoy.transport_sockets.tls, typed_config: { "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, ${ctx} } }`);

test('TLS to the control plane: the trust bundle (file or inline) and the name to check', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bowline-boot-'));
  try {
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
    const b = parseBootstrap(withTls(`sni: control.bowline.svc, common_tls_context: { validation_context: { trusted_ca: { filename: "${ca}" } } }`), 'boot.yaml');
    assert.deepEqual(b.ads, { host: '10.0.0.9', port: 18000, delta: true, tls: { ca: { file: ca }, sni: 'control.bowline.svc' } });
    const inline = parseBootstrap(withTls('common_tls_context: { validation_context: { trusted_ca: { inline_string: "PEM" } } }'), 'boot.yaml');
    assert.deepEqual(inline.ads?.tls, { ca: { pem: 'PEM' }, sni: '' });
    // Plaintext stays the default.
    assert.equal(parseBootstrap(BASE, 'boot.yaml').ads?.tls, undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('TLS to the control plane: what would change the handshake is refused by name', () => {
  const at = 'static_resources.clusters[xds].transport_socket.typed_config';
  assert.match(refused(withTls('sni: cp')), new RegExp(`${at.replace(/[[\].]/g, '\\$&')}\\.common_tls_context\\.validation_context\\.trusted_ca: needs a filename or inline PEM`));
  assert.match(refused(withTls('common_tls_context: { validation_context: { trusted_ca: { filename: /nonexistent/ca.pem } } }')), /trusted_ca\.filename: cannot read \/nonexistent\/ca\.pem/);
  assert.match(refused(withTls('common_tls_context: { tls_certificates: [{ certificate_chain: { filename: /x } }], validation_context: { trusted_ca: { inline_string: "P" } } }')), /common_tls_context\.tls_certificates: client certificates to the control plane are not supported/);
  assert.match(refused(withTls('allow_renegotiation: true, common_tls_context: { validation_context: { trusted_ca: { inline_string: "P" } } }')), /typed_config\.allow_renegotiation: is not supported/);
  assert.match(refused(withTls('common_tls_context: { validation_context: { trusted_ca: { inline_string: "P" }, match_typed_subject_alt_names: [{ san_type: DNS, matcher: { exact: x } }] } }')), /validation_context\.match_typed_subject_alt_names: is not supported/);
});
