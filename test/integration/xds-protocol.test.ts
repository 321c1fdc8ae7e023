// The xDS protocol details on both sides, with a raw peer on the other end: the proxy's client
// NACKs a bad resource with the last good version, the response nonce and a reason that names the
// field, and goes on with the last good config; the control plane's per-type services (stream,
// fetch) answer like ADS; its delta server reports names that do not exist as removed; the client
// fetches the secrets its TLS transport sockets name over SDS and NACKs a broken one.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { TempConfig } from '../helpers/config-file';
import { eventually } from '../helpers/proxy-process';
import { AdsClient } from '../../xds/client/ads-client';
import type { Bootstrap } from '../../xds/client/bootstrap';
import { ADS_SERVICE, serviceDefinition } from '../../xds/common/grpc-services';
import { decodeMessage, packAny } from '../../xds/common/protos';
import { CDS_TYPE, EDS_TYPE, LDS_TYPE, SDS_TYPE } from '../../xds/common/type-urls';
import { ControlPlane } from '../../xds/server/control-plane';
import { FileMeshSource } from '../../xds/server/mesh-source';

interface Req {
  type_url?: string;
  version_info?: string;
  response_nonce?: string;
  error_detail?: { message?: string };
  resource_names?: string[];
}

test("the client NACKs a bad listener with the last good version, the nonce and the field, and keeps the last good config", { timeout: 20_000 }, async () => {
  const requests: Req[] = [];
  let stream: grpc.ServerDuplexStream<unknown, unknown> | null = null;
  const server = new grpc.Server();
  server.addService(serviceDefinition(ADS_SERVICE), {
    StreamAggregatedResources: (call: grpc.ServerDuplexStream<unknown, unknown>) => {
      stream = call;
      call.on('data', (r: Req) => requests.push(r));
    },
    DeltaAggregatedResources: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.end(),
  });
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  const b: Bootstrap = { node: { id: 'n1', cluster: 'c', zone: '' }, admin: null, ads: { host: '127.0.0.1', port, delta: false }, static: { listeners: [], clusters: [] }, ignored: [] };
  const client = new AdsClient(b, { log: () => {}, initialFetchTimeoutMs: 200 });
  const invalid: Error[] = [];
  client.on('invalid', (e) => invalid.push(e));
  const first = client.start();
  try {
    await eventually(() => stream !== null && requests.some((r) => r.type_url === LDS_TYPE), 5000, 'the LDS subscription');
    const hcm = packAny('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', {
      stat_prefix: 'x',
      route_config: { name: 'inline', virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'svc' } }] }] },
    });
    const good = { name: 'out', address: { socket_address: { address: '127.0.0.1', port_value: 0 } }, filter_chains: [{ filters: [{ name: 'hcm', typed_config: hcm }] }] };
    const listenerAny = (l: object): object => packAny('envoy.config.listener.v3.Listener', l);
    stream!.write({ version_info: 'v1', type_url: CDS_TYPE, nonce: 'n-c1', resources: [packAny('envoy.config.cluster.v3.Cluster', { name: 'svc', type: 'STATIC', load_assignment: { cluster_name: 'svc', endpoints: [] } })] });
    stream!.write({ version_info: 'v1', type_url: LDS_TYPE, nonce: 'n-l1', resources: [listenerAny(good)] });
    const snap = await first;
    assert.deepEqual(snap.listeners.map((l) => l.name), ['out']);
    await eventually(() => requests.some((r) => r.type_url === LDS_TYPE && r.response_nonce === 'n-l1' && r.version_info === 'v1' && r.error_detail == null), 5000, 'the ACK of v1');

    // v2 has a listener on a pipe: refused, with v1 as the version in force.
    stream!.write({ version_info: 'v2', type_url: LDS_TYPE, nonce: 'n-l2', resources: [listenerAny(good), listenerAny({ name: 'bad', address: { pipe: { path: '/tmp/x' } } })] });
    await eventually(() => requests.some((r) => r.response_nonce === 'n-l2'), 5000, 'the answer to v2');
    const nack = requests.find((r) => r.response_nonce === 'n-l2')!;
    assert.equal(nack.version_info, 'v1');
    assert.match(nack.error_detail?.message ?? '', /listener "bad": address\.socket_address is required/);
    assert.equal(invalid.length, 1);
    assert.equal(client.counts.nacks, 1);
  } finally {
    client.stop();
    server.forceShutdown();
  }
});

let cfg: TempConfig;
let cp: ControlPlane;

before(async () => {
  cfg = new TempConfig(`
listeners: [{ name: out, address: 127.0.0.1:0, routes: [r] }]
services: [{ name: web, endpoints: [{ address: 127.0.0.1:9, zone: a }] }]
routes: [{ name: r, backendRefs: [{ name: web }] }]
`);
  cp = new ControlPlane({ source: new FileMeshSource(cfg.file), listen: '127.0.0.1:0', buildThreads: 0, log: () => {} });
  await cp.start();
});

after(async () => {
  await cp?.stop();
  cfg?.remove();
});

function clientFor(service: string, port = cp.port): grpc.Client & Record<string, (...a: unknown[]) => unknown> {
  const C = grpc.makeGenericClientConstructor(serviceDefinition(service), service);
  return new C(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<string, (...a: unknown[]) => unknown>;
}

test('delta: a wildcard subscription to a type the mesh has none of gets an empty answer at once (no services: no CDS)', { timeout: 20_000 }, async () => {
  // Regression: no response at all made a proxy wait its 15 s first-snapshot timeout.
  const empty = new TempConfig('listeners: [{ name: out, address: 127.0.0.1:0, originalDst: true }]\nservices: []\n');
  const cp2 = new ControlPlane({ source: new FileMeshSource(empty.file), listen: '127.0.0.1:0', buildThreads: 0, log: () => {} });
  await cp2.start();
  const ads = clientFor(ADS_SERVICE, cp2.port);
  const call = ads['DeltaAggregatedResources']!() as grpc.ClientDuplexStream<unknown, { type_url: string; resources?: { name: string }[]; removed_resources?: string[]; nonce: string }>;
  call.on('error', () => {});
  const responses: { type_url: string; resources?: { name: string }[]; nonce: string }[] = [];
  call.on('data', (r: { type_url: string; resources?: { name: string }[]; nonce: string }) => responses.push(r));
  try {
    call.write({ node: { id: 'e' }, type_url: CDS_TYPE });
    call.write({ node: { id: 'e' }, type_url: LDS_TYPE });
    await eventually(() => responses.length >= 2, 5000, 'an answer for CDS and LDS');
    const cds = responses.find((r) => r.type_url === CDS_TYPE)!;
    assert.deepEqual(cds.resources ?? [], []);
    assert.ok(cds.nonce !== '');
    assert.deepEqual((responses.find((r) => r.type_url === LDS_TYPE)!.resources ?? []).map((x) => x.name), ['out']);
    // ACKed: nothing more while nothing changes (an empty answer is sent once, not on every push).
    call.write({ type_url: CDS_TYPE, response_nonce: cds.nonce });
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(responses.filter((r) => r.type_url === CDS_TYPE).length, 1);
  } finally {
    call.cancel();
    ads.close();
    await cp2.stop();
    empty.remove();
  }
});

test('the per-type services answer like ADS: FetchClusters and StreamEndpoints', { timeout: 20_000 }, async () => {
  const cds = clientFor('envoy.service.cluster.v3.ClusterDiscoveryService');
  const eds = clientFor('envoy.service.endpoint.v3.EndpointDiscoveryService');
  try {
    const fetched = await new Promise<{ resources: { type_url: string; value: Uint8Array }[] }>((res, rej) =>
      cds['FetchClusters']!({ node: { id: 'f' } }, (e: Error | null, r: { resources: { type_url: string; value: Uint8Array }[] }) => (e ? rej(e) : res(r))),
    );
    assert.deepEqual(fetched.resources.map((r) => (decodeMessage('envoy.config.cluster.v3.Cluster', r.value) as { name: string }).name), ['web']);
    const call = eds['StreamEndpoints']!() as grpc.ClientDuplexStream<unknown, { type_url: string; resources: { value: Uint8Array }[]; nonce: string }>;
    call.on('error', () => {}); // CANCELLED when this test cancels it
    const got = await new Promise<{ resources: { value: Uint8Array }[] }>((res) => {
      call.once('data', res);
      call.write({ node: { id: 's' }, resource_names: ['web'] }); // the type comes from the service
    });
    const cla = decodeMessage<{ cluster_name: string; endpoints: unknown[] }>('envoy.config.endpoint.v3.ClusterLoadAssignment', got.resources[0]!.value);
    assert.equal(cla.cluster_name, 'web');
    call.cancel();
  } finally {
    cds.close();
    eds.close();
  }
});

test('delta: a subscribed name that does not exist is reported removed, and an unsubscribe stops updates', { timeout: 20_000 }, async () => {
  const ads = clientFor(ADS_SERVICE);
  const call = ads['DeltaAggregatedResources']!() as grpc.ClientDuplexStream<unknown, { resources?: { name: string }[]; removed_resources?: string[]; nonce: string }>;
  call.on('error', () => {}); // CANCELLED when this test cancels it
  const responses: { resources?: { name: string }[]; removed_resources?: string[]; nonce: string }[] = [];
  call.on('data', (r: { resources?: { name: string }[]; removed_resources?: string[]; nonce: string }) => responses.push(r));
  try {
    call.write({ node: { id: 'd' }, type_url: EDS_TYPE, resource_names_subscribe: ['web', 'nope'] });
    await eventually(() => responses.length > 0, 5000, 'a delta response');
    const r = responses[0]!;
    assert.deepEqual((r.resources ?? []).map((x) => x.name), ['web']);
    assert.deepEqual(r.removed_resources, ['nope']);
    call.write({ type_url: EDS_TYPE, response_nonce: r.nonce, resource_names_unsubscribe: ['web'] });
    cfg.replace(`
listeners: [{ name: out, address: 127.0.0.1:0, routes: [r] }]
services: [{ name: web, endpoints: [{ address: 127.0.0.1:10, zone: a }] }]
routes: [{ name: r, backendRefs: [{ name: web }] }]
`);
    await eventually(async () => {
      await cp.settled();
      return cp.metrics.meshVersion === 'file-2';
    }, 5000, 'the new mesh');
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(responses.length, 1, 'nothing sent for an unsubscribed resource');
  } finally {
    call.cancel();
    ads.close();
  }
});

test('SDS: the client fetches the secrets its transport sockets name, checks them, and NACKs a key that does not match', { timeout: 20_000 }, async () => {
  const { execFileSync } = await import('node:child_process');
  const { mkdtempSync, readFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'bowline-sds-'));
  const pair = (name: string): { cert: string; key: string } => {
    const key = join(dir, `${name}.key`);
    const cert = join(dir, `${name}.crt`);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${name}`, '-addext', 'subjectAltName=URI:spiffe://cluster.local/ns/default/sa/web'], { stdio: 'ignore' });
    return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
  };
  const a = pair('a');
  const b = pair('b');
  const requests: Req[] = [];
  let stream: grpc.ServerDuplexStream<unknown, unknown> | null = null;
  const server = new grpc.Server();
  server.addService(serviceDefinition(ADS_SERVICE), {
    StreamAggregatedResources: (call: grpc.ServerDuplexStream<unknown, unknown>) => {
      stream = call;
      call.on('data', (r: Req) => requests.push(r));
    },
    DeltaAggregatedResources: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.end(),
  });
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  const boot: Bootstrap = { node: { id: 'n2', cluster: 'c', zone: '' }, admin: null, ads: { host: '127.0.0.1', port, delta: false }, static: { listeners: [], clusters: [] }, ignored: [] };
  const client = new AdsClient(boot, { log: () => {}, initialFetchTimeoutMs: 200 });
  const first = client.start();
  try {
    await eventually(() => stream !== null && requests.some((r) => r.type_url === LDS_TYPE), 5000, 'the LDS subscription');
    const tls = packAny('envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext', {
      common_tls_context: { tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: { ads: {} } }], validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: { ads: {} } } },
    });
    const hcm = packAny('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', {
      stat_prefix: 'x',
      route_config: { name: 'inline', virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'svc' } }] }] },
    });
    stream!.write({ version_info: 'c1', type_url: CDS_TYPE, nonce: 'c1', resources: [packAny('envoy.config.cluster.v3.Cluster', { name: 'svc', type: 'STATIC', load_assignment: { cluster_name: 'svc', endpoints: [] } })] });
    stream!.write({
      version_info: 'l1',
      type_url: LDS_TYPE,
      nonce: 'l1',
      resources: [packAny('envoy.config.listener.v3.Listener', { name: 'in', address: { socket_address: { address: '127.0.0.1', port_value: 0 } }, filter_chains: [{ transport_socket: { name: 'tls', typed_config: tls }, filters: [{ name: 'hcm', typed_config: hcm }] }] })],
    });
    await first;
    // The listener names two secrets: the client asks for exactly those.
    await eventually(() => requests.some((r) => r.type_url === SDS_TYPE && [...(r.resource_names ?? [])].sort().join() === 'ROOTCA,default'), 5000, 'the SDS subscription');
    const secret = (name: string, o: object): object => packAny('envoy.extensions.transport_sockets.tls.v3.Secret', { name, ...o });
    stream!.write({
      version_info: 's1',
      type_url: SDS_TYPE,
      nonce: 's1',
      resources: [secret('default', { tls_certificate: { certificate_chain: { inline_string: a.cert }, private_key: { inline_string: a.key } } }), secret('ROOTCA', { validation_context: { trusted_ca: { inline_string: a.cert } } })],
    });
    await eventually(() => requests.some((r) => r.type_url === SDS_TYPE && r.response_nonce === 's1' && r.error_detail == null), 5000, 'the SDS ACK');
    const held = client.describeSecrets();
    assert.deepEqual(held.map((s) => s['name']).sort(), ['ROOTCA', 'default']);
    assert.match(String(held.find((s) => s['name'] === 'default')!['subjectAltName']), /spiffe:\/\/cluster.local\/ns\/default\/sa\/web/);
    assert.ok(!JSON.stringify(held).includes('PRIVATE KEY'), 'no key material in the dump');
    // A certificate with another pair's key: refused, and the good one stays.
    stream!.write({ version_info: 's2', type_url: SDS_TYPE, nonce: 's2', resources: [secret('default', { tls_certificate: { certificate_chain: { inline_string: a.cert }, private_key: { inline_string: b.key } } })] });
    await eventually(() => requests.some((r) => r.response_nonce === 's2'), 5000, 'the answer to s2');
    const nack = requests.find((r) => r.response_nonce === 's2')!;
    assert.equal(nack.version_info, 's1');
    assert.match(nack.error_detail?.message ?? '', /secret "default": tls_certificate.private_key does not match the certificate/);
    assert.match(String(client.describeSecrets().find((s) => s['name'] === 'default')!['subject']), /CN=a/);
  } finally {
    client.stop();
    server.forceShutdown();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('state of the world: an empty list after explicit names unsubscribes (an empty answer, then nothing)', { timeout: 20_000 }, async () => {
  const ads = clientFor(ADS_SERVICE);
  const call = ads['StreamAggregatedResources']!() as grpc.ClientDuplexStream<unknown, { resources?: unknown[]; nonce: string; version_info: string }>;
  call.on('error', () => {}); // CANCELLED when this test cancels it
  const responses: { resources?: unknown[]; nonce: string; version_info: string }[] = [];
  call.on('data', (r: { resources?: unknown[]; nonce: string; version_info: string }) => responses.push(r));
  try {
    call.write({ node: { id: 'u' }, type_url: EDS_TYPE, resource_names: ['web'] });
    await eventually(() => responses.length === 1, 5000, 'the first response');
    assert.equal(responses[0]!.resources?.length, 1);
    call.write({ type_url: EDS_TYPE, version_info: responses[0]!.version_info, response_nonce: responses[0]!.nonce, resource_names: [] });
    await eventually(() => responses.length === 2, 5000, 'the answer to the unsubscribe');
    assert.equal(responses[1]!.resources?.length ?? 0, 0, 'an empty list is not "everything"');
    call.write({ type_url: EDS_TYPE, version_info: responses[1]!.version_info, response_nonce: responses[1]!.nonce, resource_names: [] });
    cfg.replace(`
listeners: [{ name: out, address: 127.0.0.1:0, routes: [r] }]
services: [{ name: web, endpoints: [{ address: 127.0.0.1:11, zone: a }] }]
routes: [{ name: r, backendRefs: [{ name: web }] }]
`);
    const version = cp.metrics.meshVersion;
    await eventually(async () => {
      await cp.settled();
      return cp.metrics.meshVersion !== version;
    }, 5000, 'the new mesh');
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(responses.length, 2, 'nothing pushed to a stream subscribed to nothing');
  } finally {
    call.cancel();
    ads.close();
  }
});
