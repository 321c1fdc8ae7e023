// Certificate issuance end to end: the control plane's CA (generated for local use), the Identity
// gRPC service with signed tokens, and the proxy's identity client (key in memory, CSR, renewal at
// 70%). The certificates are real: a TLS 1.3 handshake with client certificates succeeds between two
// workloads, and fails for a certificate from another CA. Issuer and anchor rotation keep old
// certificates verifying.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { type Identity, IdentityClient } from '../../xds/client/identity-client';
import { CertificateAuthority } from '../../xds/server/ca/authority';
import { addIdentityService } from '../../xds/server/ca/identity-service';
import { signToken, SignedTokenVerifier } from '../../xds/server/ca/token-verifier';

const SECRET = Buffer.alloc(32, 7);
let dir: string;
let ca: CertificateAuthority;
let server: grpc.Server;
let port = 0;
const logs: string[] = [];

function tokenFile(name: string, ns: string, sa: string, ttlSec = 600, secret = SECRET): string {
  const f = join(dir, `${name}.token`);
  writeFileSync(f, signToken(secret, { namespace: ns, serviceAccount: sa }, ttlSec));
  return f;
}

function client(token: string, o: Partial<ConstructorParameters<typeof IdentityClient>[0]> = {}): IdentityClient {
  return new IdentityClient({ server: `127.0.0.1:${port}`, tokenFile: token, backoffMinMs: 50, backoffMaxMs: 200, ...o });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bowline-ca-'));
  ca = await CertificateAuthority.open({ dir: join(dir, 'ca'), trustDomain: 'mesh.test', generate: true, leafTtlMs: 3000, log: (l, m) => logs.push(`${l} ${m}`) });
  server = new grpc.Server();
  addIdentityService(server, ca, new SignedTokenVerifier(SECRET), () => {});
  port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
});

after(() => {
  server?.forceShutdown();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function verifies(chainPem: string, bundlePem: string): boolean {
  const [leafPem, issuerPem] = chainPem.split(/(?=-----BEGIN CERTIFICATE-----)/);
  const leaf = new X509Certificate(leafPem!);
  const issuer = new X509Certificate(issuerPem!);
  const anchors = bundlePem.split(/(?=-----BEGIN CERTIFICATE-----)/).filter((p) => p.trim() !== '').map((p) => new X509Certificate(p));
  return leaf.checkIssued(issuer) && leaf.verify(issuer.publicKey) && anchors.some((a) => issuer.checkIssued(a) && issuer.verify(a.publicKey));
}

test('a generated CA warns, writes its files, and loads the same anchor again', async () => {
  assert.ok(logs.some((l) => /LOCAL USE/.test(l)));
  for (const f of ['anchor.crt', 'anchor.key', 'issuer.crt', 'issuer.key']) assert.ok(existsSync(join(dir, 'ca', f)), f);
  const again = await CertificateAuthority.open({ dir: join(dir, 'ca'), trustDomain: 'mesh.test' });
  assert.equal(again.trustBundlePem, ca.trustBundlePem);
  await assert.rejects(CertificateAuthority.open({ dir: join(dir, 'empty'), trustDomain: 'mesh.test' }), /anchor\.crt and issuer\.crt\/issuer\.key are needed/);
});

test('a workload gets a certificate with its SPIFFE ID that chains to the trust anchor, and renews it at 70%', { timeout: 20_000 }, async () => {
  const c = client(tokenFile('web', 'default', 'web'), { expectedIdentity: 'spiffe://mesh.test/ns/default/sa/web' });
  try {
    const first = await c.start();
    assert.equal(first.spiffeId, 'spiffe://mesh.test/ns/default/sa/web');
    assert.ok(verifies(first.certChainPem, first.trustBundlePem));
    const leaf = new X509Certificate(first.certChainPem.split(/(?=-----BEGIN CERTIFICATE-----)/)[0]!);
    assert.equal(leaf.subjectAltName, 'URI:spiffe://mesh.test/ns/default/sa/web');
    assert.ok(first.notAfterMs - Date.now() <= 3000 + 100);
    // Lifetime 3 s (+1 min back-dating): renewal comes well before expiry, with a new key.
    const renewed = await new Promise<Identity>((res) => c.once('identity', res));
    assert.notEqual(renewed.keyPem, first.keyPem);
    assert.ok(renewed.notAfterMs > first.notAfterMs);
    assert.ok(Date.now() < first.notAfterMs, 'renewed before the old one expired');
  } finally {
    c.stop();
  }
});

test('a bad token, an expired token and a wrong expected identity are refused; the client keeps retrying', { timeout: 20_000 }, async () => {
  const cases: [string, IdentityClient][] = [
    ['signature', client(tokenFile('forged', 'default', 'web', 600, Buffer.alloc(32, 9)))],
    ['expired', client(tokenFile('old', 'default', 'web', -10))],
    ['identity', client(tokenFile('api', 'default', 'api'), { expectedIdentity: 'spiffe://mesh.test/ns/default/sa/web' })],
  ];
  const warned: string[] = [];
  for (const [, c] of cases) {
    (c as unknown as { o: { log: (l: string, m: string, f?: Record<string, unknown>) => void } }).o.log = (_l, _m, f) => warned.push(String(f?.['error'] ?? ''));
    void c.start();
  }
  try {
    await new Promise((r) => setTimeout(r, 600));
    for (const [name, c] of cases) {
      assert.equal(c.current, null, `${name}: no identity`);
      assert.ok(c.counts.failed >= 2, `${name}: retried (${c.counts.failed})`);
    }
    const all = warned.join('\n');
    assert.match(all, /UNAUTHENTICATED: bad token signature/);
    assert.match(all, /UNAUTHENTICATED: token expired/);
    assert.match(all, /PERMISSION_DENIED: the token proves spiffe:\/\/mesh\.test\/ns\/default\/sa\/api, not spiffe:\/\/mesh\.test\/ns\/default\/sa\/web/);
  } finally {
    for (const [, c] of cases) c.stop();
  }
});

function handshake(server: Identity, clientId: Identity | null, expectPeer: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const srv = tls.createServer(
      { key: server.keyPem, cert: server.certChainPem, ca: server.trustBundlePem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' },
      (s) => {
        const peer = s.getPeerCertificate();
        s.end(`${s.getProtocol()} ${peer.subjectaltname}`);
      },
    );
    srv.listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      const opts: tls.ConnectionOptions = {
        host: '127.0.0.1',
        port: p,
        ca: server.trustBundlePem,
        minVersion: 'TLSv1.3',
        // Mesh identities are URIs, not host names: check the SPIFFE ID instead.
        checkServerIdentity: (_h, cert) => (cert.subjectaltname === `URI:${expectPeer}` ? undefined : new Error(`peer is ${cert.subjectaltname}`)),
      };
      if (clientId !== null) {
        opts.key = clientId.keyPem;
        opts.cert = clientId.certChainPem;
      }
      const s = tls.connect(opts);
      let out = '';
      s.on('data', (d: Buffer) => (out += d.toString()));
      s.on('end', () => {
        srv.close();
        // A server that refused the client certificate closes without an answer.
        if (out === '') reject(new Error('closed without an answer'));
        else resolve(out);
      });
      s.on('error', (e) => {
        srv.close();
        reject(e);
      });
    });
  });
}

test('issued certificates make a mutual TLS 1.3 handshake; a certificate from another CA does not', { timeout: 20_000 }, async () => {
  const a = client(tokenFile('a', 'default', 'web'));
  const b = client(tokenFile('b', 'shop', 'api'));
  try {
    const [web, api] = await Promise.all([a.start(), b.start()]);
    assert.equal(await handshake(api, web, 'spiffe://mesh.test/ns/shop/sa/api'), 'TLSv1.3 URI:spiffe://mesh.test/ns/default/sa/web');
    await assert.rejects(handshake(api, web, 'spiffe://mesh.test/ns/shop/sa/other'), /peer is URI:spiffe:\/\/mesh.test\/ns\/shop\/sa\/api/);
    // Another CA's workload is not trusted.
    const otherCa = await CertificateAuthority.open({ dir: join(dir, 'other-ca'), trustDomain: 'mesh.test', generate: true });
    const otherServer = new grpc.Server();
    addIdentityService(otherServer, otherCa, new SignedTokenVerifier(SECRET), () => {});
    const otherPort = await new Promise<number>((res, rej) => otherServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    const stranger = new IdentityClient({ server: `127.0.0.1:${otherPort}`, tokenFile: tokenFile('s', 'default', 'web') });
    try {
      const outsider = await stranger.start();
      await assert.rejects(handshake(api, outsider, 'spiffe://mesh.test/ns/shop/sa/api'));
    } finally {
      stranger.stop();
      otherServer.forceShutdown();
    }
  } finally {
    a.stop();
    b.stop();
  }
});

test('issuer rotation keeps earlier certificates valid; anchor rotation trusts old and new until retired', { timeout: 20_000 }, async () => {
  const c = client(tokenFile('r', 'default', 'web'));
  try {
    const before = await c.start();
    const oldIssuer = ca.issuerPem;
    await ca.rotateIssuer();
    assert.notEqual(ca.issuerPem, oldIssuer);
    const after = await new Promise<Identity>((res) => c.once('identity', res));
    assert.ok(after.certChainPem.includes(ca.issuerPem.trim().split('\n')[1]!), 'new leaves come from the new issuer');
    assert.ok(verifies(before.certChainPem, after.trustBundlePem), 'a leaf of the old issuer still verifies');
    await ca.rotateAnchor();
    const bundle = ca.trustBundlePem;
    assert.equal(bundle.match(/BEGIN CERTIFICATE/g)!.length, 2);
    assert.ok(verifies(after.certChainPem, bundle), 'a leaf under the old anchor verifies against the bundle');
    const next = await new Promise<Identity>((res) => c.once('identity', res));
    assert.ok(verifies(next.certChainPem, bundle));
    assert.equal(readFileSync(join(dir, 'ca', 'trust-bundle.crt'), 'utf8'), bundle);
    ca.retireOldAnchors();
    assert.equal(ca.trustBundlePem.match(/BEGIN CERTIFICATE/g)!.length, 1);
    assert.ok(!verifies(after.certChainPem, ca.trustBundlePem), 'after retiring, the old anchor is not trusted');
  } finally {
    c.stop();
  }
});

test('Kubernetes tokens are checked with a TokenReview (against a stand-in API server: no cluster runs here)', { timeout: 20_000 }, async () => {
  const { KubernetesTokenVerifier, TokenError } = await import('../../xds/server/ca/token-verifier');
  const https = await import('node:https');
  const { execFileSync } = await import('node:child_process');
  // The stand-in API server's certificate, valid for 127.0.0.1 as a real one is for its service IP.
  const key = join(dir, 'api.key');
  const cert = join(dir, 'api.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=kube-apiserver', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const reviews: { auth: string; body: { spec?: { token?: string; audiences?: string[] } } }[] = [];
  const srv = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const parsed = JSON.parse(body) as { spec?: { token?: string; audiences?: string[] } };
      reviews.push({ auth: String(req.headers.authorization), body: parsed });
      const ok = req.url === '/apis/authentication.k8s.io/v1/tokenreviews' && parsed.spec?.token === 'good-sa-token';
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'TokenReview', status: ok ? { authenticated: true, user: { username: 'system:serviceaccount:shop:api' } } : { authenticated: false, error: 'invalid bearer token' } }));
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  try {
    const p = (srv.address() as { port: number }).port;
    const v = new KubernetesTokenVerifier({ apiServer: `https://127.0.0.1:${p}`, token: 'cp-token', ca: readFileSync(cert, 'utf8'), audiences: ['bowline'] });
    assert.deepEqual(await v.verify(Buffer.from('good-sa-token\n')), { namespace: 'shop', serviceAccount: 'api' });
    await assert.rejects(v.verify(Buffer.from('stolen')), (e: unknown) => e instanceof TokenError && /invalid bearer token/.test((e as Error).message));
    assert.equal(reviews[0]!.auth, 'Bearer cp-token');
    assert.deepEqual(reviews[0]!.body.spec!.audiences, ['bowline']);
    // An API server this CA does not vouch for is not believed.
    const wrong = new KubernetesTokenVerifier({ apiServer: `https://127.0.0.1:${p}`, token: 'cp-token', ca: ca.trustBundlePem });
    await assert.rejects(wrong.verify(Buffer.from('good-sa-token')), /certificate/);
  } finally {
    srv.close();
  }
});

test('reload: an issuer replaced in the directory signs from then on; half-written or foreign files are refused', { timeout: 20_000 }, async () => {
  const { cpSync, unlinkSync } = await import('node:fs');
  const d = join(dir, 'reload');
  cpSync(join(dir, 'ca'), d, { recursive: true });
  // Production keeps the anchor's key offline: the CA runs without it.
  unlinkSync(join(d, 'anchor.key'));
  const running = await CertificateAuthority.open({ dir: d, trustDomain: 'mesh.test' });
  assert.equal(await running.reload(), 'none');
  await assert.rejects(running.rotateIssuer(), /anchor\.key is needed to sign a new issuer/);
  // A new issuer made elsewhere (where the anchor key is).
  const offline = join(dir, 'offline');
  cpSync(join(dir, 'ca'), offline, { recursive: true });
  const signer = await CertificateAuthority.open({ dir: offline, trustDomain: 'mesh.test' });
  await signer.rotateIssuer();
  const before = running.issuerPem;
  // Half of the change (the new key beside the old certificate) is refused; the issuer in force stays.
  writeFileSync(join(d, 'issuer.key'), readFileSync(join(offline, 'issuer.key')));
  await assert.rejects(running.reload(), /issuer\.key does not belong to issuer\.crt/);
  assert.equal(running.issuerPem, before);
  writeFileSync(join(d, 'issuer.crt'), readFileSync(join(offline, 'issuer.crt')));
  assert.equal(await running.reload(), 'issuer');
  assert.equal(running.issuerPem, signer.issuerPem);
  // An issuer from another CA does not chain to our anchor.
  const foreign = await CertificateAuthority.open({ dir: join(dir, 'foreign'), trustDomain: 'mesh.test', generate: true });
  writeFileSync(join(d, 'issuer.crt'), foreign.issuerPem);
  writeFileSync(join(d, 'issuer.key'), readFileSync(join(dir, 'foreign', 'issuer.key')));
  await assert.rejects(running.reload(), /not signed by the trust anchor/);
  assert.equal(running.issuerPem, signer.issuerPem);
});
