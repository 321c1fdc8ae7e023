// Workload certificates over SDS, for Envoy and other xDS clients that take their TLS secrets from
// the control plane instead of running our identity client. A client proves its workload identity
// as it does to the Identity service, with a token, here in the stream's `authorization: Bearer`
// metadata (Envoy's grpc_service.initial_metadata). It then gets two Secrets, named as Istio names
// them so that existing Envoy configs work: "default" (its certificate chain and private key) and
// "ROOTCA" (the trust bundle). Unlike the Identity service the key is made here (SDS carries keys);
// it is made per identity, shared by that identity's streams, and renewed at 70% of its lifetime,
// which pushes the new secrets to every stream holding them.

import { EventEmitter } from 'node:events';
import { encodeMessage } from '../../common/protos';
import { SDS_TYPE, SECRET } from '../../common/type-urls';
import { EC_P256, generateKeyPair, privateKeyPem, spiffeId, x509 } from '../../common/x509';
import { type EncodedResource, resourceVersion, XdsSnapshot } from '../xds-snapshot';
import type { CertificateAuthority } from './authority';
import type { IdentityCounters } from './identity-service';
import { TokenError, type TokenVerifier } from './token-verifier';

export const SDS_CERTIFICATE_SECRET = 'default';
export const SDS_TRUST_BUNDLE_SECRET = 'ROOTCA';

/** One identity's secrets, shared by its streams; `snapshot` is replaced at each renewal. */
export class WorkloadSecret extends EventEmitter<{ update: [] }> {
  snapshot: XdsSnapshot | null = null;
  notAfterMs = 0;
  refs = 0;
  timer: NodeJS.Timeout | null = null;
  ready: Promise<void> | null = null;

  constructor(readonly spiffe: string) {
    super();
    this.setMaxListeners(0);
  }
}

export class SdsSecretError extends Error {
  constructor(
    message: string,
    /** UNAUTHENTICATED for a bad or missing token, UNAVAILABLE when it could not be checked. */
    readonly unauthenticated: boolean,
  ) {
    super(message);
  }
}

export class WorkloadSecrets {
  private readonly byIdentity = new Map<string, WorkloadSecret>();
  private serial = 0;

  constructor(
    private readonly ca: CertificateAuthority,
    private readonly verifier: TokenVerifier,
    private readonly counters: IdentityCounters,
    private readonly log: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void,
    /** When a certificate is renewed, as a fraction of its lifetime (default 0.7). */
    private readonly renewAt = 0.7,
  ) {}

  /** The secrets of the identity the token proves (issued on first use). Call release() when the stream ends. */
  async acquire(authorization: string | undefined): Promise<WorkloadSecret> {
    const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
    if (m === null) throw this.refuse('token', 'no "authorization: Bearer <token>" metadata on the stream', true);
    let who;
    try {
      who = await this.verifier.verify(Buffer.from(m[1]!));
    } catch (e) {
      throw this.refuse(e instanceof TokenError ? 'token' : 'verifier', (e as Error).message, e instanceof TokenError);
    }
    const id = spiffeId(this.ca.trustDomain, who.namespace, who.serviceAccount);
    let s = this.byIdentity.get(id);
    if (s === undefined) {
      s = new WorkloadSecret(id);
      this.byIdentity.set(id, s);
      const fresh = s;
      s.ready = this.issue(fresh).catch((e: Error) => {
        this.byIdentity.delete(id);
        throw this.refuse('internal', e.message, false);
      });
    }
    s.refs++;
    try {
      await s.ready;
    } catch (e) {
      s.refs--;
      throw e;
    }
    return s;
  }

  release(s: WorkloadSecret): void {
    if (--s.refs > 0) return;
    if (s.timer !== null) clearTimeout(s.timer);
    s.timer = null;
    if (this.byIdentity.get(s.spiffe) === s) this.byIdentity.delete(s.spiffe);
  }

  /** Identities with live SDS streams (for the config dump and tests). */
  get identities(): { spiffe: string; streams: number; notAfter: string }[] {
    return [...this.byIdentity.values()].filter((s) => s.snapshot !== null).map((s) => ({ spiffe: s.spiffe, streams: s.refs, notAfter: new Date(s.notAfterMs).toISOString() }));
  }

  close(): void {
    for (const s of this.byIdentity.values()) if (s.timer !== null) clearTimeout(s.timer);
    this.byIdentity.clear();
  }

  private refuse(reason: string, details: string, unauthenticated: boolean): SdsSecretError {
    this.counters.refused.set(reason, (this.counters.refused.get(reason) ?? 0) + 1);
    this.log('warn', 'SDS certificate refused', { reason, details });
    return new SdsSecretError(details, unauthenticated);
  }

  /** A new key and certificate for `s`, swapped in as a new snapshot; renewal scheduled. */
  private async issue(s: WorkloadSecret): Promise<void> {
    const keys = await generateKeyPair();
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=bowline-sds', keys, signingAlgorithm: EC_P256 });
    const issued = await this.ca.issue(Buffer.from(csr.rawData), s.spiffe);
    const pem = (der: Buffer): string => new x509.X509Certificate(der).toString('pem');
    const chainPem = issued.chain.map(pem).join('\n');
    const bundlePem = issued.anchors.map(pem).join('\n');
    const keyPem = await privateKeyPem(keys.privateKey);
    const secrets: [string, object][] = [
      [SDS_CERTIFICATE_SECRET, { name: SDS_CERTIFICATE_SECRET, tls_certificate: { certificate_chain: { inline_bytes: Buffer.from(chainPem) }, private_key: { inline_bytes: Buffer.from(keyPem) } } }],
      [SDS_TRUST_BUNDLE_SECRET, { name: SDS_TRUST_BUNDLE_SECRET, validation_context: { trusted_ca: { inline_bytes: Buffer.from(bundlePem) } } }],
    ];
    const byName = new Map<string, EncodedResource>();
    for (const [name, msg] of secrets) {
      const value = Buffer.from(encodeMessage(SECRET, msg));
      byName.set(name, { name, version: resourceVersion(value), typeUrl: SDS_TYPE, value });
    }
    const snap = new XdsSnapshot(`sds-${++this.serial}`, new Map([[SDS_TYPE, byName]]), new Set());
    const prev = s.snapshot;
    if (prev !== null) snap.diffFrom(prev);
    s.snapshot = snap;
    s.notAfterMs = issued.notAfterMs;
    this.counters.issued++;
    this.log('info', 'certificate issued over SDS', { identity: s.spiffe, validUntil: new Date(issued.notAfterMs).toISOString() });
    this.scheduleRenewal(s, issued.notAfterMs);
    if (prev !== null) s.emit('update');
  }

  private scheduleRenewal(s: WorkloadSecret, notAfterMs: number, failures = 0): void {
    const now = Date.now();
    const delay = failures === 0 ? Math.max(1000, (notAfterMs - now) * this.renewAt) : Math.min(60_000, 1000 * 2 ** failures);
    s.timer = setTimeout(() => {
      s.timer = null;
      if (s.refs <= 0) return;
      this.issue(s).catch((e: Error) => {
        this.log('warn', 'SDS certificate renewal failed; retrying', { identity: s.spiffe, error: e.message });
        if (s.refs > 0) this.scheduleRenewal(s, notAfterMs, failures + 1);
      });
    }, delay);
    s.timer.unref();
  }
}
