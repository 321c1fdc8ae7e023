// The control plane's resources, decoded as a proxy receives them and translated back, give the
// mesh that produced them: listeners, routes (all match kinds, weights, timeouts, retries), services
// with every policy, endpoints with zones. Also: Envoy's own meaning for resources without Bowline's
// metadata, and the NACK reasons of resources Bowline cannot run.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { loadConfigFile, parseConfigText } from '../../../engine/config/file/yaml-config';
import type { EngineSnapshot } from '../../../engine/config/snapshot';
import { validateSnapshot } from '../../../engine/config/validate-snapshot';
import { decodeMessage, packAny, unpackAny } from '../../../xds/common/protos';
import { toStruct } from '../../../xds/common/struct';
import { CDS_TYPE, EDS_TYPE, LDS_TYPE, RDS_TYPE } from '../../../xds/common/type-urls';
import type * as E from '../../../xds/client/envoy-types';
import { translateXds, validateCluster, validateListener, validateRouteConfiguration, type XdsResources } from '../../../xds/client/translate';
import { buildSnapshots } from '../../../xds/server/snapshot-builder';

const MESSAGE: Record<string, string> = {
  [LDS_TYPE]: 'envoy.config.listener.v3.Listener',
  [RDS_TYPE]: 'envoy.config.route.v3.RouteConfiguration',
  [CDS_TYPE]: 'envoy.config.cluster.v3.Cluster',
  [EDS_TYPE]: 'envoy.config.endpoint.v3.ClusterLoadAssignment',
};

/** What a proxy in `zone` receives for the mesh (every resource, decoded from its bytes). */
function received(mesh: EngineSnapshot, zone: string): XdsResources {
  // Built with every field name checked: the generator writes only fields Envoy's protos have.
  const built = buildSnapshots(mesh, [zone], true);
  const maps = { listeners: new Map(), routes: new Map(), clusters: new Map(), endpoints: new Map() };
  for (const [type, list] of [...built.common, [EDS_TYPE, built.endpoints[0]![1]] as const]) {
    const target = type === LDS_TYPE ? maps.listeners : type === RDS_TYPE ? maps.routes : type === CDS_TYPE ? maps.clusters : maps.endpoints;
    for (const r of list) target.set(r.name, decodeMessage(MESSAGE[type]!, r.value));
  }
  return maps;
}

test('the example mesh round-trips through xDS into the same services, routes and listeners', () => {
  const mesh = loadConfigFile(resolve(__dirname, '../../../../workers/config/example.yaml'));
  const t = translateXds(received(mesh, 'zone-a'), { version: 'x1', zone: 'zone-a', allowMissing: false });
  assert.deepEqual(t.missing, []);
  const s = t.snapshot!;
  assert.deepEqual(validateSnapshot(s), []);
  // Services: every policy comes back (Bowline's metadata), endpoints with zones and weights.
  const byName = new Map(s.services.map((x) => [x.name, x]));
  for (const svc of mesh.services) {
    const got = byName.get(svc.name)!;
    assert.ok(got !== undefined, svc.name);
    assert.deepEqual(
      got.endpoints.map((e) => [e.address.host, e.address.port, e.zone, e.weight]).sort(),
      svc.endpoints.filter((e) => e.weight > 0).map((e) => [e.address.host, e.address.port, e.zone, e.weight]).sort(),
    );
    for (const k of ['balancer', 'connectTimeoutMs', 'pool', 'zoneLocality', 'failureAccrual', 'failurePenalty', 'queue', 'retry', 'timeouts', 'protocol'] as const) {
      assert.deepEqual(got[k], svc[k], `${svc.name}.${k}`);
    }
  }
  // Routes: same names, hosts, matches, backends and policies.
  const routes = new Map(s.routes.map((r) => [r.name, r]));
  for (const r of mesh.routes) {
    const got = routes.get(r.name);
    assert.ok(got !== undefined, `route ${r.name} (have ${[...routes.keys()].join(', ')})`);
    assert.deepEqual([...got.hostnames].sort(), [...r.hostnames].sort(), `${r.name} hostnames`);
    assert.deepEqual(got.backends, r.backends.filter((b) => b.weight > 0), `${r.name} backends`);
    assert.equal(got.requestTimeoutMs, r.requestTimeoutMs);
    assert.deepEqual(got.retry, r.retry);
    assert.equal(got.responseTimeoutMs, r.responseTimeoutMs);
    assert.equal(got.matches.length, Math.max(1, r.matches.length), `${r.name} matches`);
  }
  // Listeners: address, direction, protocol, default service, and their routes in order.
  for (const l of mesh.listeners) {
    const got = s.listeners.find((x) => x.name === l.name)!;
    assert.deepEqual(got.address, l.address);
    assert.equal(got.direction, l.direction);
    assert.equal(got.protocol, l.protocol);
    assert.equal(got.defaultService, l.defaultService);
    if (l.protocol !== 'opaque') assert.deepEqual(got.routes, l.routes, `${l.name} routes`);
  }
  // The authorization policy rides on the inbound listeners.
  assert.ok(mesh.policy !== undefined && mesh.policy.authorizations.length > 0);
  assert.deepEqual(s.policy, mesh.policy);
});

test('matches of every kind come back as they were', () => {
  const mesh = parseConfigText(
    `
listeners: [{ name: out, address: 127.0.0.1:4140, routes: [r] }]
services: [{ name: a, endpoints: [{ address: 10.0.0.1:80 }] }]
routes:
  - name: r
    hostnames: [api.example.com, "*.svc.local"]
    matches:
      - path: { type: Exact, value: /login }
        method: POST
      - path: { value: /api/ }
        headers: [{ name: x-v, value: "v[12]", type: RegularExpression }, { name: x-dbg, type: Present }, { name: x-env, value: prod }]
    backendRefs: [{ name: a }]
    timeoutMs: 2500
`,
    'mesh.yaml',
    'v1',
  );
  const t = translateXds(received(mesh, ''), { version: 'x', zone: '', allowMissing: false });
  const r = t.snapshot!.routes.find((x) => x.name === 'r')!;
  assert.deepEqual(r.matches, mesh.routes[0]!.matches.map((m) => (m.path?.kind === 'prefix' ? { ...m, path: { kind: 'prefix', value: '/api' } } : m)));
  assert.deepEqual([...r.hostnames].sort(), ['*.svc.local', 'api.example.com']);
  assert.equal(r.requestTimeoutMs, 2500);
});

test("resources from another control plane keep Envoy's meaning and defaults", () => {
  const hcm = packAny('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', {
    stat_prefix: 'out',
    rds: { route_config_name: 'r80', config_source: { ads: {} } },
    http_filters: [{ name: 'envoy.filters.http.router' }],
  });
  const res: XdsResources = {
    listeners: new Map([['l80', { name: 'l80', address: { socket_address: { address: '127.0.0.1', port_value: 8080 } }, filter_chains: [{ filters: [{ name: 'hcm', typed_config: hcm }] }] } satisfies E.Listener]]),
    routes: new Map([
      [
        'r80',
        {
          name: 'r80',
          virtual_hosts: [
            {
              name: 'web',
              domains: ['web', 'web:8080', 'web.default.svc.cluster.local:8080'],
              routes: [{ match: { prefix: '/ap' }, route: { cluster: 'web', retry_policy: { retry_on: 'connect-failure,refused-stream,unavailable', num_retries: { value: 3 } } } }],
            },
          ],
        } satisfies E.RouteConfiguration,
      ],
    ]),
    clusters: new Map([['web', { name: 'web', type: 'EDS', lb_policy: 'LEAST_REQUEST', outlier_detection: { consecutive_5xx: { value: 3 } } } satisfies E.Cluster]]),
    endpoints: new Map([['web', { cluster_name: 'web', endpoints: [{ locality: { zone: 'z1' }, lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 80 } } } }, { endpoint: { address: { socket_address: { address: '10.0.0.2', port_value: 80 } } }, health_status: 'UNHEALTHY' }] }] } satisfies E.ClusterLoadAssignment]]),
  };
  const t = translateXds(res, { version: 'v', zone: 'z1', allowMissing: false });
  const s = t.snapshot!;
  assert.deepEqual(validateSnapshot(s), []);
  const r = s.routes[0]!;
  assert.deepEqual(r.hostnames.sort(), ['web', 'web.default.svc.cluster.local']);
  assert.deepEqual(r.matches[0]!.path, { kind: 'string-prefix', value: '/ap' }, "Envoy's prefix is a plain string prefix");
  assert.equal(r.requestTimeoutMs, 15_000, "Envoy's default route timeout");
  assert.deepEqual(r.retry!.on, ['connect-failure', 'reset', 'unavailable'], "Envoy's gRPC condition names are Bowline's");
  assert.equal(r.retry!.maxRetries, 3);
  assert.doesNotMatch(t.warnings.join('\n'), /retry_on/);
  const web = s.services.find((x) => x.name === 'web')!;
  assert.equal(web.balancer, 'least-request');
  assert.equal(web.failureAccrual!.mode, 'consecutive');
  assert.equal(web.failureAccrual!.consecutiveFailures, 3);
  assert.equal(web.failureAccrual!.maxEjectionPercent, 10, "Envoy's default");
  assert.deepEqual(web.endpoints.map((e) => e.address.host), ['10.0.0.1'], 'unhealthy endpoints are left out');
  assert.equal(web.connectTimeoutMs, 5000);
  assert.equal(web.protocol, 'http1', "Envoy's default upstream protocol");
});

test('a listener whose routes have not arrived waits (make-before-break), unless told to go on', () => {
  const hcm = packAny('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', { stat_prefix: 'x', rds: { route_config_name: 'later' } });
  const res: XdsResources = {
    listeners: new Map([['l', { name: 'l', address: { socket_address: { address: '127.0.0.1', port_value: 9 } }, filter_chains: [{ filters: [{ typed_config: hcm }] }] }]]),
    routes: new Map(),
    clusters: new Map([['c', { name: 'c', type: 'EDS' }]]),
    endpoints: new Map(),
  };
  const wait = translateXds(res, { version: 'v', zone: '', allowMissing: false });
  assert.equal(wait.snapshot, null);
  assert.deepEqual(wait.missing, ['eds/c', 'rds/later']);
  const go = translateXds(res, { version: 'v', zone: '', allowMissing: true });
  assert.equal(go.snapshot!.listeners[0]!.routes.length, 0);
  assert.equal(go.snapshot!.services[0]!.endpoints.length, 0);
});

test('resources Bowline cannot run are refused with the field named', () => {
  assert.match(validateListener({ name: 'p', address: { pipe: {} } }).join(), /listener "p": address.socket_address is required/);
  const rc: E.RouteConfiguration = {
    name: 'rc',
    virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [{ name: 'q', match: { prefix: '/', query_parameters: [{}] }, route: { cluster: 'c' } }, { name: 'h', match: { prefix: '/', headers: [{ name: 'x', safe_regex_match: { regex: '(' } }] }, route: { cluster_header: 'x-c' } }] }],
  };
  const problems = validateRouteConfiguration(rc).join('\n');
  assert.match(problems, /virtual_hosts\[vh\]\.routes\[q\]\.match\.query_parameters is not supported/);
  assert.match(problems, /routes\[h\]\.match\.headers\[x\]: Invalid regular expression/);
  assert.match(problems, /routes\[h\]\.route\.cluster_header is not supported/);
  assert.match(validateCluster({ name: 'c', type: 'AGGREGATE' }).join(), /cluster "c": type AGGREGATE is not supported/);
  // A policy in Bowline's metadata that does not parse is refused, not half-applied.
  const withPolicy = (policy: object): E.Listener =>
    ({ name: 'in', address: { socket_address: { address: '127.0.0.1', port_value: 1 } }, metadata: { filter_metadata: { 'io.bowline': toStruct({ policy }) } } }) as unknown as E.Listener;
  const good = { defaultPolicy: 'deny', clusterNetworks: [], audit: false, servers: [{ name: 's', port: 1 }], authorizations: [{ name: 'a', target: { kind: 'server', name: 's' }, identities: ['*'] }] };
  assert.deepEqual(validateListener(withPolicy(good)), []);
  assert.match(validateListener(withPolicy({ ...good, defaultPolicy: 'allow' })).join(), /metadata io\.bowline\.policy\.defaultPolicy: must be one of/);
  assert.match(validateListener(withPolicy({ ...good, authorizations: [{ ...good.authorizations[0], identities: ['web'] }] })).join(), /policy\.authorizations\.0\.identities\.0: must be "\*" or a SPIFFE ID pattern/);
  assert.match(validateListener(withPolicy({ ...good, servers: [{ name: 's' }] })).join(), /servers\[0\]: needs a name and a port or a listener/);
});


test('upstream protocols and gRPC retry conditions round-trip exactly, in the Envoy fields that carry them', () => {
  const mesh = parseConfigText(
    `
listeners: [{ name: out, address: 127.0.0.1:4140, routes: [r] }]
services:
  - { name: one, endpoints: [{ address: 10.0.0.1:80 }], protocol: http1 }
  - { name: two, endpoints: [{ address: 10.0.0.2:50051 }], protocol: h2c, retry: { on: [unavailable, resource-exhausted, connect-failure], maxRetries: 3 } }
  - { name: any, endpoints: [{ address: 10.0.0.3:80 }], protocol: auto }
  - { name: dflt, endpoints: [{ address: 10.0.0.4:80 }] }
routes:
  - name: r
    rules:
      - matches: [{ path: { value: /grpc.Echo/ } }]
        backendRefs: [{ name: two }]
        retry: { on: [cancelled, deadline-exceeded, internal, resource-exhausted, unavailable, reset], maxRetries: 2 }
      - backendRefs: [{ name: one }, { name: any }, { name: dflt }]
`,
    'mesh.yaml',
    'v1',
  );
  const res = received(mesh, '');
  // What Envoy (or any client) reads: HttpProtocolOptions in typed_extension_protocol_options.
  const options = (name: string): Record<string, unknown> => {
    const any = res.clusters.get(name)!.typed_extension_protocol_options!['envoy.extensions.upstreams.http.v3.HttpProtocolOptions']!;
    const m = unpackAny(any);
    assert.equal(m.type, 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions');
    return m.message;
  };
  assert.deepEqual(options('one')['explicit_http_config'], { http_protocol_options: {}, protocol_config: 'http_protocol_options' });
  assert.deepEqual(options('two')['explicit_http_config'], { http2_protocol_options: {}, protocol_config: 'http2_protocol_options' });
  assert.ok(options('any')['use_downstream_protocol_config'] !== undefined);
  assert.ok(options('dflt')['use_downstream_protocol_config'] !== undefined);
  const retryOn = res.routes.get('out')!.virtual_hosts![0]!.routes![0]!.route!.retry_policy!.retry_on;
  assert.equal(retryOn, 'cancelled,deadline-exceeded,internal,resource-exhausted,unavailable,reset');

  const t = translateXds(res, { version: 'x', zone: '', allowMissing: false });
  assert.deepEqual(t.warnings, []);
  const s = t.snapshot!;
  assert.deepEqual(validateSnapshot(s), []);
  for (const svc of mesh.services) assert.deepEqual(s.services.find((x) => x.name === svc.name), svc, svc.name);
  assert.deepEqual(
    s.services.map((x) => [x.name, x.protocol]).sort(),
    [
      ['any', 'auto'],
      ['dflt', 'auto'],
      ['one', 'http1'],
      ['two', 'h2c'],
    ],
  );
  const grpcRoute = s.routes.find((r) => r.name === 'r/0')!;
  assert.deepEqual(grpcRoute.retry, mesh.routes.find((r) => r.name === 'r/0')!.retry);
  assert.deepEqual(grpcRoute.retry!.on, ['cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable', 'reset']);

  // Without Bowline's metadata (as Envoy reads it), the route's retry_on alone gives the same conditions.
  const route = structuredClone(res.routes.get('out')!);
  for (const vh of route.virtual_hosts ?? []) for (const r of vh.routes ?? []) delete r.metadata;
  const plain = translateXds({ ...res, routes: new Map([['out', route]]) }, { version: 'y', zone: '', allowMissing: false }).snapshot!;
  assert.deepEqual(plain.routes.find((r) => r.name === 'r/0')!.retry!.on, ['cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable', 'reset']);
});

test('a listener that takes redirected connections (originalDst) round-trips as Envoy use_original_dst', () => {
  const mesh = parseConfigText(
    `
listeners:
  - { name: out, address: 127.0.0.1:4140, originalDst: true }
  - { name: plain, address: 127.0.0.1:4150, defaultService: app }
services:
  - { name: app, endpoints: [{ address: 127.0.0.1:8080 }] }
`,
    'mesh.yaml',
    'v1',
  );
  const res = received(mesh, '');
  assert.equal((res.listeners.get('out') as E.Listener).use_original_dst?.value, true);
  assert.equal((res.listeners.get('plain') as E.Listener).use_original_dst, undefined);
  const s = translateXds(res, { version: 'x1', zone: '', allowMissing: false }).snapshot!;
  assert.equal(s.listeners.find((l) => l.name === 'out')!.originalDst, true);
  assert.equal(s.listeners.find((l) => l.name === 'plain')!.originalDst, undefined);
});

test('MCP settings, policies and MCP routes round-trip exactly; a malformed MCP setting is NACKed naming the field', () => {
  const mesh = parseConfigText(
    `
policy:
  servers: [{ name: tools-srv, listener: in }]
listeners:
  - { name: in, address: 127.0.0.1:4143, direction: inbound, routes: [tools] }
  - { name: out, address: 127.0.0.1:4140, routes: [tools] }
  - { name: all-mcp, address: 127.0.0.1:4141, mcp: true, defaultService: app }
services:
  - { name: app, endpoints: [{ address: 127.0.0.1:8080 }] }
routes:
  - { name: tools, mcp: true, backendRefs: [{ name: app }] }
mcp:
  maxNames: 20
  policies:
    - name: grants
      targetRef: { kind: Server, name: tools-srv }
      rules:
        - { name: readers, meshTLS: { identities: ["spiffe://mesh.test/ns/a/sa/*"] }, tools: [search], resources: ["file:///docs/*"] }
        - { network: { networks: [{ cidr: 10.0.0.0/8 }] }, prompts: [greet] }
`,
    'mesh.yaml',
    'v1',
  );
  const res = received(mesh, '');
  const s = translateXds(res, { version: 'x1', zone: '', allowMissing: false }).snapshot!;
  assert.deepEqual(s.mcp, mesh.mcp);
  assert.equal(s.routes.find((r) => r.name === 'tools')!.mcp, true);
  assert.equal(s.listeners.find((l) => l.name === 'all-mcp')!.mcp, true);
  assert.equal(s.listeners.find((l) => l.name === 'out')!.mcp, undefined);
  assert.deepEqual(validateSnapshot(s), []);
  // A control plane that sends a broken MCP setting gets a NACK that names it.
  const l = structuredClone(res.listeners.get('out') as E.Listener);
  const meta = l.metadata!.filter_metadata!['io.bowline']!;
  const bad = toStruct({ protocol: 'detect', detectTimeoutMs: 1000, mcp: { ...mesh.mcp, oversizedBody: 'drop', policies: [{ name: 'p', target: { kind: 'route', name: 'tools' }, rules: [{ name: 'r', tools: 'search', resources: [], prompts: [] }] }] } });
  l.metadata!.filter_metadata!['io.bowline'] = { ...meta, ...bad };
  const problems = validateListener(l).join('\n');
  assert.match(problems, /io\.bowline\.mcp\.oversizedBody: must be reject or pass/);
  assert.match(problems, /io\.bowline\.mcp\.policies\[0\]\.rules\[0\]\.tools: must be a list of strings/);
});
