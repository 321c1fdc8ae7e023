// A cluster's upstream HTTP version as every Envoy shape says it (HttpProtocolOptions in
// typed_extension_protocol_options, the deprecated Cluster fields, nothing at all), read off the
// wire; the shapes Bowline cannot run are refused with the field named; and the control plane's
// clusters say each protocol in the form Envoy reads.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { DEFAULT_POOL_SETTINGS, type UpstreamProtocol } from '../../../engine/config/snapshot';
import { decodeMessage, encodeMessage, packAny, unpackAny } from '../../../xds/common/protos';
import type * as E from '../../../xds/client/envoy-types';
import { translateXds, validateCluster } from '../../../xds/client/translate';
import { clusterMessage } from '../../../xds/server/generate';

const CLUSTER = 'envoy.config.cluster.v3.Cluster';
const HPO = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

/** A STATIC cluster with one endpoint and `extra` fields, encoded and decoded as a proxy receives it. */
function cluster(extra: Record<string, unknown>, name = 'c'): E.Cluster {
  const c = {
    name,
    type: 'STATIC',
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 80 } } } }] }] },
    ...extra,
  };
  return decodeMessage<E.Cluster>(CLUSTER, encodeMessage(CLUSTER, c));
}

/** typed_extension_protocol_options holding `options` as HttpProtocolOptions (under `key`). */
function withOptions(options: Record<string, unknown>, key = HPO): Record<string, unknown> {
  return { typed_extension_protocol_options: { [key]: packAny(HPO, options) } };
}

function translated(c: E.Cluster): { protocol: UpstreamProtocol | undefined; warnings: string[] } {
  const t = translateXds({ listeners: new Map(), routes: new Map(), clusters: new Map([[c.name!, c]]), endpoints: new Map() }, { version: 'v', zone: '', allowMissing: false });
  assert.deepEqual(validateCluster(c), []);
  return { protocol: t.snapshot!.services[0]!.protocol, warnings: t.warnings };
}

test("each Envoy shape maps to its upstream protocol (nothing at all is HTTP/1.1, Envoy's default)", () => {
  const cases: [string, Record<string, unknown>, UpstreamProtocol][] = [
    ['nothing', {}, 'http1'],
    ['explicit HTTP/1.1', withOptions({ explicit_http_config: { http_protocol_options: {} } }), 'http1'],
    ['explicit HTTP/1.1 with options', withOptions({ explicit_http_config: { http_protocol_options: { accept_http_10: true } } }), 'http1'],
    ['explicit HTTP/2', withOptions({ explicit_http_config: { http2_protocol_options: {} } }), 'h2c'],
    ['explicit HTTP/2 with options', withOptions({ explicit_http_config: { http2_protocol_options: { max_concurrent_streams: { value: 100 } } } }), 'h2c'],
    ['downstream protocol', withOptions({ use_downstream_protocol_config: {} }), 'auto'],
    ['downstream protocol, both listed (Istio)', withOptions({ use_downstream_protocol_config: { http_protocol_options: {}, http2_protocol_options: {} } }), 'auto'],
    ['under the extension name', withOptions({ explicit_http_config: { http2_protocol_options: {} } }, 'envoy.upstreams.http.http_protocol_options'), 'h2c'],
    ['deprecated http2_protocol_options', { http2_protocol_options: {} }, 'h2c'],
    ['deprecated http_protocol_options', { http_protocol_options: {} }, 'http1'],
    ['deprecated USE_DOWNSTREAM_PROTOCOL', { protocol_selection: 'USE_DOWNSTREAM_PROTOCOL', http2_protocol_options: {} }, 'auto'],
    // HttpProtocolOptions wins over the deprecated fields, as in Envoy.
    ['HttpProtocolOptions over deprecated fields', { ...withOptions({ explicit_http_config: { http_protocol_options: {} } }), http2_protocol_options: {} }, 'http1'],
    // Another extension's options are not HTTP's.
    ['only TCP options', { typed_extension_protocol_options: { 'envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions': { type_url: 'type.googleapis.com/envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions', value: Buffer.alloc(0) } } }, 'http1'],
  ];
  for (const [what, extra, want] of cases) {
    const { protocol, warnings } = translated(cluster(extra));
    assert.equal(protocol, want, what);
    assert.deepEqual(warnings, [], what);
  }
});

test("auto_config (ALPN) becomes auto with a warning; fields Bowline does not use are listed as ignored", () => {
  const auto = translated(cluster(withOptions({ auto_config: { http_protocol_options: {}, http2_protocol_options: {} } }), 'alpn'));
  assert.equal(auto.protocol, 'auto');
  assert.equal(auto.warnings.length, 1, auto.warnings.join('\n'));
  assert.match(auto.warnings[0]!, /^cluster "alpn": HttpProtocolOptions auto_config \(ALPN\) is not supported; requests go upstream in the version the client spoke$/);

  const tuned = translated(
    cluster(
      withOptions({
        common_http_protocol_options: { idle_timeout: { seconds: 300 }, max_requests_per_connection: { value: 10 } },
        upstream_http_protocol_options: { auto_sni: true },
        explicit_http_config: { http2_protocol_options: {} },
        http_filters: [{ name: 'envoy.filters.http.upstream_codec' }],
      }),
      'tuned',
    ),
  );
  assert.equal(tuned.protocol, 'h2c');
  assert.deepEqual(tuned.warnings, [
    'cluster "tuned": HttpProtocolOptions common_http_protocol_options, upstream_http_protocol_options ignored',
    'cluster "tuned": upstream HTTP filters envoy.filters.http.upstream_codec are not supported and are skipped',
  ]);
});

test('HTTP protocol options Bowline cannot run are refused with the field named', () => {
  const at = `cluster "c": typed_extension_protocol_options["${HPO}"]`;
  const nack = (extra: Record<string, unknown>): string[] => validateCluster(cluster(extra));
  assert.deepEqual(nack(withOptions({ explicit_http_config: { http3_protocol_options: {} } })), [`${at}.explicit_http_config.http3_protocol_options is not supported (HTTP/3 upstreams)`]);
  assert.deepEqual(nack(withOptions({ common_http_protocol_options: {} })), [`${at} needs explicit_http_config, use_downstream_protocol_config or auto_config`]);
  assert.deepEqual(nack(withOptions({ explicit_http_config: {} })), [`${at}.explicit_http_config needs http_protocol_options or http2_protocol_options`]);
  // The key names HttpProtocolOptions, the Any holds something else.
  assert.deepEqual(nack({ typed_extension_protocol_options: { [HPO]: packAny('envoy.extensions.filters.http.router.v3.Router', {}) } }), [
    `${at}: must hold ${HPO}, got envoy.extensions.filters.http.router.v3.Router`,
  ]);
  // Bytes that do not decode.
  const broken = nack({ typed_extension_protocol_options: { [HPO]: { type_url: `type.googleapis.com/${HPO}`, value: Buffer.from([0x1a, 0x05, 0x01]) } } });
  assert.equal(broken.length, 1, broken.join('\n'));
  assert.ok(broken[0]!.startsWith(`${at}: `), broken[0]);
});

test("the control plane's clusters say each protocol as Envoy reads it, and the proxy reads it back", () => {
  const svc = (protocol: UpstreamProtocol | undefined): E.Cluster => {
    const message = clusterMessage({ name: 's', endpoints: [], pool: { ...DEFAULT_POOL_SETTINGS }, connectTimeoutMs: 1000, ...(protocol === undefined ? {} : { protocol }) });
    return decodeMessage<E.Cluster>(CLUSTER, encodeMessage(CLUSTER, message));
  };
  const options = (c: E.Cluster): Record<string, unknown> => {
    const entries = Object.entries(c.typed_extension_protocol_options ?? {});
    assert.deepEqual(entries.map(([k]) => k), [HPO]);
    const { type, message } = unpackAny(entries[0]![1]);
    assert.equal(type, HPO);
    return message;
  };
  assert.equal(options(svc('http1'))['upstream_protocol_options'], 'explicit_http_config');
  assert.ok((options(svc('http1'))['explicit_http_config'] as Record<string, unknown>)['http_protocol_options'] !== undefined);
  assert.ok((options(svc('h2c'))['explicit_http_config'] as Record<string, unknown>)['http2_protocol_options'] !== undefined);
  assert.equal(options(svc('auto'))['upstream_protocol_options'], 'use_downstream_protocol_config');
  assert.equal(options(svc(undefined))['upstream_protocol_options'], 'use_downstream_protocol_config', "no protocol is the snapshot's default, auto");
  // And back: the proxy's translation reads what was written.
  for (const p of ['http1', 'h2c', 'auto'] as const) {
    const c = svc(p);
    assert.deepEqual(validateCluster(c), []);
    assert.equal(translateXds({ listeners: new Map(), routes: new Map(), clusters: new Map([['s', c]]), endpoints: new Map([['s', { cluster_name: 's' }]]) }, { version: 'v', zone: '', allowMissing: false }).snapshot!.services[0]!.protocol, p);
  }
});
