// Workload certificates over SDS from `bowline control`'s CA, as Envoy would fetch them: the stream's
// `authorization: Bearer` token decides the identity; the "default" secret holds a chain and key
// that belong together and verify against the "ROOTCA" bundle; renewals are pushed on open streams
// (state of the world and delta); a stream without a valid token gets no secrets.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { validateSecret, type Secret } from '../../xds/client/secrets';
import { ADS_SERVICE, serviceDefinition } from '../../xds/common/grpc-services';
import { decodeMessage } from '../../xds/common/protos';
import { LDS_TYPE, SDS_TYPE, SECRET } from '../../xds/common/type-urls';
import { CertificateAuthority } from '../../xds/server/ca/authority';
import { signToken, SignedTokenVerifier } from '../../xds/server/ca/token-verifier';
import { ControlPlane } from '../../xds/server/control-plane';
import { FileMeshSource } from '../../xds/server/mesh-source';
import { TempConfig } from '../helpers/config-file';
import { eventually } from '../helpers/proxy-process';

const SECRET_KEY = Buffer.alloc(32, 9);
let dir: string;
let cfg: TempConfig;
let cp: ControlPlane;
let ca: CertificateAuthority;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bowline-sds-ca-'));
  cfg = new TempConfig(`
listeners: [{ name: out, address: 127.0.0.1:0, routes: [r] }]
services: [{ name: web, endpoints: [{ address: 127.0.0.1:9 }] }]
routes: [{ name: r, backendRefs: [{ name: web }] }]
`);
  // Leaves of 3 s: renewal (at 70%) happens within the test.
  ca = await CertificateAuthority.open({ dir, trustDomain: 'mesh.test', generate: true, leafTtlMs: 3000 });
  cp = new ControlPlane({ source: new FileMeshSource(cfg.file), listen: '127.0.0.1:0', buildThreads: 0, log: () => {}, identity: { ca, verifier: new SignedTokenVerifier(SECRET_KEY) } });
  await cp.start();
});

after(async () => {
  await cp?.stop();
  cfg?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

type Client = grpc.Client & Record<string, (...a: unknown[]) => unknown>;
function clientFor(service: string): Client {
  const C = grpc.makeGenericClientConstructor(serviceDefinition(service), service);
  return new C(`127.0.0.1:${cp.port}`, grpc.credentials.createInsecure()) as unknown as Client;
}

function bearer(sa: string, key = SECRET_KEY): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${signToken(key, { namespace: 'shop', serviceAccount: sa }, 600)}`);
  return md;
}

interface Resp {
  type_url: string;
  version_info?: string;
  nonce: string;
  resources?: { name?: string; value?: Uint8Array; resource?: { value: Uint8Array } }[];
}

const secretOf = (value: Uint8Array): Secret & { name: string } => decodeMessage<Secret & { name: string }>(SECRET, value);

/** Checks a pair of secrets as a TLS stack would use them; returns the leaf's SPIFFE ID and serial. */
function checkSecrets(secrets: (Secret & { name: string })[]): { spiffe: string; serial: string } {
  const byName = new Map(secrets.map((s) => [s.name, s]));
  const cert = byName.get('default');
  const root = byName.get('ROOTCA');
  assert.ok(cert !== undefined && root !== undefined, `got ${[...byName.keys()].join(', ')}`);
  assert.deepEqual(validateSecret(cert), []);
  assert.deepEqual(validateSecret(root), []);
  const chainPem = Buffer.from(cert.tls_certificate!.certificate_chain!.inline_bytes!).toString();
  const certs = chainPem.split(/(?<=-----END CERTIFICATE-----)\s*/).filter((c) => c.includes('BEGIN')).map((c) => new X509Certificate(c));
  const anchor = new X509Certificate(Buffer.from(root.validation_context!.trusted_ca!.inline_bytes!).toString());
  const [leaf, issuer] = certs;
  assert.ok(leaf !== undefined && issuer !== undefined);
  assert.ok(leaf.checkIssued(issuer) && leaf.verify(issuer.publicKey), 'the leaf is signed by the issuer');
  assert.ok(issuer.verify(anchor.publicKey), 'the issuer is signed by the bundle');
  assert.ok(leaf.checkPrivateKey(createPrivateKey(Buffer.from(cert.tls_certificate!.private_key!.inline_bytes!).toString())), 'the key is the leaf\'s');
  return { spiffe: leaf.subjectAltName ?? '', serial: leaf.serialNumber };
}

test('SDS over ADS (state of the world): the token names the identity, and renewals are pushed', { timeout: 30_000 }, async () => {
  const ads = clientFor(ADS_SERVICE);
  const call = ads['StreamAggregatedResources']!(bearer('web')) as grpc.ClientDuplexStream<unknown, Resp>;
  call.on('error', () => {});
  const got: Resp[] = [];
  call.on('data', (r: Resp) => {
    got.push(r);
    call.write({ type_url: r.type_url, version_info: r.version_info, response_nonce: r.nonce, resource_names: r.type_url === SDS_TYPE ? ['default', 'ROOTCA'] : [] });
  });
  try {
    call.write({ node: { id: 'envoy-1', user_agent_name: 'envoy' }, type_url: SDS_TYPE, resource_names: ['default', 'ROOTCA'] });
    // The other types keep working on the same stream.
    call.write({ type_url: LDS_TYPE, resource_names: [] });
    await eventually(() => got.some((r) => r.type_url === SDS_TYPE) && got.some((r) => r.type_url === LDS_TYPE), 10_000, 'secrets and listeners');
    const first = checkSecrets(got.find((r) => r.type_url === SDS_TYPE)!.resources!.map((r) => secretOf(r.value!)));
    assert.equal(first.spiffe, 'URI:spiffe://mesh.test/ns/shop/sa/web');
    // Renewed at 70% of 3 s: a new certificate arrives on the open stream, unasked.
    await eventually(() => got.filter((r) => r.type_url === SDS_TYPE).length >= 2, 10_000, 'a renewal push');
    const renewed = checkSecrets(got.filter((r) => r.type_url === SDS_TYPE)[1]!.resources!.map((r) => secretOf(r.value!)));
    assert.equal(renewed.spiffe, first.spiffe);
    assert.notEqual(renewed.serial, first.serial);
  } finally {
    call.cancel();
    ads.close();
  }
});

test('SDS over delta: the secrets, then only what a renewal changed', { timeout: 30_000 }, async () => {
  const ads = clientFor(ADS_SERVICE);
  const call = ads['DeltaAggregatedResources']!(bearer('api')) as grpc.ClientDuplexStream<unknown, Resp>;
  call.on('error', () => {});
  const got: Resp[] = [];
  call.on('data', (r: Resp) => {
    got.push(r);
    call.write({ type_url: r.type_url, response_nonce: r.nonce });
  });
  try {
    call.write({ node: { id: 'envoy-2' }, type_url: SDS_TYPE, resource_names_subscribe: ['default', 'ROOTCA'] });
    await eventually(() => got.length >= 1, 10_000, 'secrets');
    const first = checkSecrets(got[0]!.resources!.map((r) => secretOf(r.resource!.value)));
    assert.equal(first.spiffe, 'URI:spiffe://mesh.test/ns/shop/sa/api');
    await eventually(() => got.length >= 2, 10_000, 'a renewal push');
    // The bundle did not change: only the certificate is sent again.
    assert.deepEqual(got[1]!.resources!.map((r) => r.name), ['default']);
    const root = got[0]!.resources!.map((r) => secretOf(r.resource!.value)).find((x) => x.name === 'ROOTCA')!;
    const renewed = checkSecrets([secretOf(got[1]!.resources![0]!.resource!.value), root]);
    assert.equal(renewed.spiffe, first.spiffe);
    assert.notEqual(renewed.serial, first.serial);
  } finally {
    call.cancel();
    ads.close();
  }
});

test('no token, or a forged one: SDS ends with UNAUTHENTICATED, and nothing is issued', { timeout: 30_000 }, async () => {
  const sds = clientFor('envoy.service.secret.v3.SecretDiscoveryService');
  const refusedBefore = cp.identity!.refused.get('token') ?? 0;
  try {
    for (const md of [new grpc.Metadata(), bearer('web', Buffer.alloc(32, 1))]) {
      const call = sds['StreamSecrets']!(md) as grpc.ClientDuplexStream<unknown, Resp>;
      const data: Resp[] = [];
      call.on('data', (r: Resp) => data.push(r));
      const err = await new Promise<grpc.ServiceError>((res) => {
        call.on('error', res);
        call.write({ node: { id: 'x' }, resource_names: ['default'] });
      });
      assert.equal(err.code, grpc.status.UNAUTHENTICATED);
      assert.match(err.details, /no workload certificate/);
      assert.equal(data.length, 0);
    }
    // The unary fetch checks the token too, and answers with a token.
    const fetchSecrets = (md: grpc.Metadata): Promise<Resp> =>
      new Promise((res, rej) => sds['FetchSecrets']!({ node: { id: 'f' }, resource_names: ['default', 'ROOTCA'] }, md, (e: Error | null, r: Resp) => (e ? rej(e) : res(r))));
    await assert.rejects(fetchSecrets(new grpc.Metadata()), (e: grpc.ServiceError) => e.code === grpc.status.UNAUTHENTICATED);
    const ok = await fetchSecrets(bearer('billing'));
    assert.equal(checkSecrets(ok.resources!.map((r) => secretOf(r.value!))).spiffe, 'URI:spiffe://mesh.test/ns/shop/sa/billing');
  } finally {
    sds.close();
  }
  assert.equal((cp.identity!.refused.get('token') ?? 0) - refusedBefore, 3);
});
