// The proxy's workload identity: an ECDSA P-256 key generated in memory (it never leaves the
// process: only a CSR does), a token that proves who the workload is, and the control plane's
// Identity service that signs. The certificate is renewed at 70% of its lifetime with a fresh key,
// with backoff on failure; the current one keeps serving until a new one arrives.

import { type ControlPlaneTls, controlPlaneChannel } from './control-channel';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { serviceDefinition } from '../common/grpc-services';
import { type CertifyResponse, IDENTITY_SERVICE, identityRoot } from '../common/identity-proto';
import { EC_P256, generateKeyPair, privateKeyPem, x509 } from '../common/x509';

export interface Identity {
  /** The SPIFFE ID in the certificate. */
  spiffeId: string;
  /** Leaf then issuer, PEM. */
  certChainPem: string;
  /** The private key, PKCS#8 PEM, in memory only. */
  keyPem: string;
  /** Trust anchors, PEM. */
  trustBundlePem: string;
  notBeforeMs: number;
  notAfterMs: number;
}

export interface IdentityClientOptions {
  /** The control plane's gRPC address, HOST:PORT. */
  server: string;
  /** TLS to the control plane (the bootstrap's); absent: plaintext. */
  tls?: ControlPlaneTls;
  /** A file holding the token (re-read for every request: Kubernetes rotates projected tokens). */
  tokenFile: string;
  /** The SPIFFE ID the proxy expects to get (checked by the control plane); '' lets the token decide. */
  expectedIdentity?: string;
  /** Share of the lifetime after which to renew (default 0.7). */
  renewAt?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  log?: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
}

export interface IdentityClientEvents {
  identity: [Identity];
}

type Certify = (req: object, cb: (e: grpc.ServiceError | null, r?: CertifyResponse) => void) => void;

export class IdentityClient extends EventEmitter<IdentityClientEvents> {
  private readonly client: grpc.Client;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private backoffMs: number;
  current: Identity | null = null;
  /** Requests made, and refused (for tests and the config dump). */
  readonly counts = { issued: 0, failed: 0 };

  constructor(private readonly o: IdentityClientOptions) {
    super();
    const C = grpc.makeGenericClientConstructor(serviceDefinition(IDENTITY_SERVICE, identityRoot()), 'Identity');
    const channel = controlPlaneChannel(o.tls);
    this.client = new C(o.server, channel.credentials, channel.options);
    this.backoffMs = o.backoffMinMs ?? 500;
  }

  /** Resolves with the first identity (retrying until one is issued or stop() is called). */
  start(): Promise<Identity> {
    return new Promise((resolve) => {
      this.once('identity', resolve);
      void this.renew();
    });
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.client.close();
  }

  private async renew(): Promise<void> {
    if (this.stopped) return;
    try {
      const id = await this.request();
      const receivedAt = Date.now();
      this.current = id;
      this.counts.issued++;
      this.backoffMs = this.o.backoffMinMs ?? 500;
      // The lifetime counts from now, not from notBefore (back-dated a little for clock skew).
      const at = receivedAt + (id.notAfterMs - receivedAt) * (this.o.renewAt ?? 0.7);
      this.o.log?.('info', 'identity certificate received', { identity: id.spiffeId, validUntil: new Date(id.notAfterMs).toISOString() });
      this.emit('identity', id);
      this.schedule(Math.max(0, at - Date.now()));
    } catch (e) {
      this.counts.failed++;
      const delay = this.backoffMs * (0.5 + Math.random() / 2);
      this.backoffMs = Math.min(this.backoffMs * 2, this.o.backoffMaxMs ?? 60_000);
      // The current certificate keeps serving; retry before it expires where possible.
      this.o.log?.('warn', 'identity certificate request failed; retrying', { error: (e as Error).message, retryInMs: Math.round(delay), current: this.current?.spiffeId ?? null });
      this.schedule(delay);
    }
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.renew();
    }, ms);
  }

  private async request(): Promise<Identity> {
    const keys = await generateKeyPair();
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=bowline-proxy', keys, signingAlgorithm: EC_P256 });
    const token = readFileSync(this.o.tokenFile);
    const res = await new Promise<CertifyResponse>((resolve, reject) =>
      (this.client as unknown as { Certify: Certify }).Certify(
        { identity: this.o.expectedIdentity ?? '', token, certificate_signing_request: Buffer.from(csr.rawData) },
        (e, r) => (e ? reject(e) : resolve(r!)),
      ),
    );
    const chain = res.certificate_chain.map((d) => new x509.X509Certificate(Buffer.from(d)));
    const leaf = chain[0];
    if (leaf === undefined) throw new Error('the control plane returned no certificate');
    const san = leaf.getExtension(x509.SubjectAlternativeNameExtension);
    const uri = san?.names.items.find((n) => n.type === 'url')?.value ?? '';
    if ((this.o.expectedIdentity ?? '') !== '' && uri !== this.o.expectedIdentity) throw new Error(`issued for ${uri}, expected ${this.o.expectedIdentity}`);
    // The certificate must be for our key.
    const leafKey = Buffer.from(leaf.publicKey.rawData);
    if (!leafKey.equals(Buffer.from(csr.publicKey.rawData))) throw new Error('the certificate is not for our key');
    return {
      spiffeId: uri,
      certChainPem: chain.map((c) => c.toString('pem')).join('\n'),
      keyPem: await privateKeyPem(keys.privateKey),
      trustBundlePem: res.trust_anchors.map((d) => new x509.X509Certificate(Buffer.from(d)).toString('pem')).join('\n'),
      notBeforeMs: leaf.notBefore.getTime(),
      notAfterMs: leaf.notAfter.getTime(),
    };
  }
}
