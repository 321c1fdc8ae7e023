// Resources shaped exactly as istiod sends them to a sidecar (test/fixtures/istio, hand-written from
// Istio's documented output) are accepted: none is NACKed, and the translation keeps what Bowline
// can run (Istio's virtual hosts and domains, retry policy, VirtualService splits and header match,
// EDS clusters with localities) and says, once each, what it leaves out.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { validateSnapshot } from '../../../engine/config/validate-snapshot';
import { decodeMessage, encodeMessage } from '../../../xds/common/protos';
import type * as E from '../../../xds/client/envoy-types';
import { translateXds, validateCluster, validateListener, validateLoadAssignment, validateRouteConfiguration } from '../../../xds/client/translate';

// Compiled to dist/test/unit/xds; the fixtures stay in the source tree.
const DIR = resolve(__dirname, '../../../../test/fixtures/istio');

/** Encodes each fixture and decodes it again: what the proxy gets off the wire. */
function wire<T>(file: string, type: string): T[] {
  const list = JSON.parse(readFileSync(resolve(DIR, file), 'utf8')) as object[];
  return list.map((o) => decodeMessage<T>(type, encodeMessage(type, o)));
}

const listeners = wire<E.Listener>('listeners.json', 'envoy.config.listener.v3.Listener');
const routeConfigs = wire<E.RouteConfiguration>('routes.json', 'envoy.config.route.v3.RouteConfiguration');
const clusters = wire<E.Cluster>('clusters.json', 'envoy.config.cluster.v3.Cluster');
const endpoints = wire<E.ClusterLoadAssignment>('endpoints.json', 'envoy.config.endpoint.v3.ClusterLoadAssignment');

test('no Istio resource is refused', () => {
  assert.ok(listeners.length >= 4 && routeConfigs.length >= 2 && clusters.length >= 8 && endpoints.length >= 3);
  const problems = [
    ...listeners.flatMap(validateListener),
    ...routeConfigs.flatMap((r) => validateRouteConfiguration(r)),
    ...clusters.flatMap(validateCluster),
    ...endpoints.flatMap(validateLoadAssignment),
  ];
  assert.deepEqual(problems, []);
});

function translate(routeVersion: number): ReturnType<typeof translateXds> {
  return translateXds(
    {
      listeners: new Map(listeners.map((l) => [l.name!, l])),
      routes: new Map([[routeConfigs[routeVersion]!.name!, routeConfigs[routeVersion]!]]),
      clusters: new Map(clusters.map((c) => [c.name!, c])),
      endpoints: new Map(endpoints.map((e) => [e.cluster_name!, e])),
    },
    // The fixtures carry the clusters of reviews (and Istio's own) only, not of every Bookinfo service.
    { version: 'istio', zone: 'us-central1-a', allowMissing: true },
  );
}

test("Istio's default outbound routes: virtual hosts by domain, its retry policy, EDS endpoints with zones", () => {
  const t = translate(0);
  assert.deepEqual(t.missing.filter((m) => !/^cds\/outbound\|9080\|\|(details|productpage|ratings)\./.test(m)), []);
  const s = t.snapshot!;
  assert.deepEqual(validateSnapshot(s), []);
  const reviews = s.routes.find((r) => r.hostnames.includes('reviews.default.svc.cluster.local'))!;
  assert.ok(reviews !== undefined, s.routes.map((r) => `${r.name} ${r.hostnames.join(',')}`).join('\n'));
  assert.ok(reviews.hostnames.includes('reviews'), 'short names keep working');
  assert.deepEqual(reviews.backends, [{ service: 'outbound|9080||reviews.default.svc.cluster.local', weight: 1 }]);
  assert.equal(reviews.requestTimeoutMs, 0, 'Istio says 0s: no timeout');
  // Istio's default retry_on has gRPC conditions too (connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes).
  assert.deepEqual([...reviews.retry!.on].sort(), ['cancelled', 'connect-failure', 'reset', 'retriable-status-codes', 'unavailable']);
  assert.deepEqual(reviews.retry!.statusCodes, [503]);
  assert.equal(reviews.retry!.maxRetries, 2);
  const svc = s.services.find((x) => x.name === 'outbound|9080||reviews.default.svc.cluster.local')!;
  assert.ok(svc.endpoints.length >= 3, 'endpoints from EDS');
  assert.ok(new Set(svc.endpoints.map((e) => e.zone)).size >= 2, 'zones from localities');
  assert.equal(svc.balancer, 'least-request', "Istio's default LEAST_REQUEST");
  // Istio says the upstream HTTP version in HttpProtocolOptions: explicit HTTP/1.1 for an http port,
  // the downstream's version for the passthrough clusters; idle timeouts and the like are ignored.
  assert.equal(svc.protocol, 'http1');
  assert.equal(s.services.find((x) => x.name === 'PassthroughCluster')!.protocol, 'auto');
  assert.equal(s.services.find((x) => x.name === 'BlackHoleCluster')!.protocol, 'http1', "no options: Envoy's default");
  // Istio's passthrough is an ORIGINAL_DST cluster: kept, without endpoints, and said so.
  assert.equal(s.services.find((x) => x.name === 'PassthroughCluster')!.endpoints.length, 0);
  const w = t.warnings.join('\n');
  assert.match(w, /PassthroughCluster.*ORIGINAL_DST/);
  assert.match(w, /bind_to_port false/);
  assert.match(w, /cluster "outbound\|9080\|\|reviews\.default\.svc\.cluster\.local": HttpProtocolOptions common_http_protocol_options ignored/);
});

test('a VirtualService split and header match come through', () => {
  const s = translate(1).snapshot!;
  const routes = s.routes.filter((r) => r.hostnames.includes('reviews'));
  const jason = routes.find((r) => r.matches.some((m) => m.headers.some((h) => h.name === 'end-user')))!;
  assert.ok(jason !== undefined);
  assert.deepEqual(jason.matches[0]!.headers.find((h) => h.name === 'end-user'), { name: 'end-user', kind: 'exact', value: 'jason' });
  assert.deepEqual(jason.backends.map((b) => b.service), ['outbound|9080|v2|reviews.default.svc.cluster.local']);
  const split = routes.find((r) => r.backends.length === 2)!;
  assert.deepEqual(
    split.backends.map((b) => [b.service, b.weight]),
    [
      ['outbound|9080|v1|reviews.default.svc.cluster.local', 80],
      ['outbound|9080|v2|reviews.default.svc.cluster.local', 20],
    ],
  );
  // The header route comes first, as in Istio's route order.
  assert.ok(s.routes.indexOf(jason) < s.routes.indexOf(split));
});
