// The control plane's certificate authority: a trust anchor (a root kept offline in production,
// loaded from files) and an issuer signed by it that signs the workloads' short-lived leaves. Both
// come from a directory of PEM files, or are generated there on first start for local use (with a
// warning: such a root is only as safe as that directory). The issuer rotates without downtime:
// leaves carry their issuer, and peers trust the anchors, which do not change; rotating the anchor
// itself keeps the old one in the trust bundle until leaves signed under it have expired.

import { createPrivateKey, createPublicKey, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CryptoKey, EC_P256, generateKeyPair, privateKeyPem, x509 } from '../../common/x509';

export interface AuthorityOptions {
  /** Directory with anchor.crt/anchor.key and issuer.crt/issuer.key (PEM). */
  dir: string;
  trustDomain: string;
  /** Create what is missing (local use). Default false: missing files are an error. */
  generate?: boolean;
  /** Lifetime of workload certificates (default 24 h). */
  leafTtlMs?: number;
  /** Lifetime of a generated issuer (default 30 days) and anchor (default 10 years). */
  issuerTtlMs?: number;
  anchorTtlMs?: number;
  log?: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
  /** Injected for tests (certificate validity windows). */
  now?: () => number;
}

interface Pair {
  cert: x509.X509Certificate;
  /** null: not on this host (an anchor's key kept offline). */
  key: CryptoKey | null;
}

export interface Issued {
  /** DER, leaf first, then the issuer. */
  chain: Buffer[];
  /** DER trust anchors. */
  anchors: Buffer[];
  notAfterMs: number;
}

const DAY = 24 * 3600 * 1000;

export class CertificateAuthority {
  /** The signing anchor (first) and, during an anchor rotation, the old ones still trusted. */
  private anchors: x509.X509Certificate[] = [];
  private anchor!: Pair;
  private issuer!: Pair;
  private readonly now: () => number;

  private constructor(private readonly o: AuthorityOptions) {
    this.now = o.now ?? Date.now;
  }

  /** Loads the CA from its directory (generating what is missing when allowed). */
  static async open(o: AuthorityOptions): Promise<CertificateAuthority> {
    const ca = new CertificateAuthority(o);
    await ca.load();
    return ca;
  }

  get trustDomain(): string {
    return this.o.trustDomain;
  }

  /** The trust bundle, PEM (old and new anchors while one is rotated). */
  get trustBundlePem(): string {
    return this.anchors.map((a) => a.toString('pem')).join('\n');
  }

  /** What the CA holds, for people (no keys). */
  describe(): { trustDomain: string; issuer: { subject: string; serial: string; notAfter: string }; anchors: { subject: string; serial: string; notAfter: string }[] } {
    const d = (c: x509.X509Certificate): { subject: string; serial: string; notAfter: string } => ({ subject: c.subject, serial: c.serialNumber, notAfter: c.notAfter.toISOString() });
    return { trustDomain: this.o.trustDomain, issuer: d(this.issuer.cert), anchors: this.anchors.map(d) };
  }

  get issuerPem(): string {
    return this.issuer.cert.toString('pem');
  }

  /** Issues a leaf for the CSR's key with the SPIFFE ID as its only SAN. The CSR's signature is checked. */
  async issue(csrDer: Uint8Array, spiffe: string): Promise<Issued> {
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(Buffer.from(csrDer));
    } catch (e) {
      throw new CsrError(`the CSR does not parse: ${(e as Error).message}`);
    }
    if (!(await csr.verify())) throw new CsrError('the CSR signature does not verify');
    const alg = csr.publicKey.algorithm as { name?: string; namedCurve?: string };
    if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') throw new CsrError(`the CSR key must be ECDSA P-256, got ${alg.name ?? '?'} ${alg.namedCurve ?? ''}`);
    const now = this.now();
    const notAfter = Math.min(now + (this.o.leafTtlMs ?? DAY), this.issuer.cert.notAfter.getTime());
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: randomBytes(16).toString('hex').replace(/^[89a-f]/, '1'),
      subject: '',
      issuer: this.issuer.cert.subject,
      // A little back-dating absorbs clock skew between hosts.
      notBefore: new Date(now - 60_000),
      notAfter: new Date(notAfter),
      publicKey: csr.publicKey,
      signingKey: this.issuer.key!,
      signingAlgorithm: EC_P256,
      extensions: [
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffe }], true),
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
        await x509.AuthorityKeyIdentifierExtension.create(this.issuer.cert, false),
      ],
    });
    return {
      chain: [Buffer.from(leaf.rawData), Buffer.from(this.issuer.cert.rawData)],
      anchors: this.anchors.map((a) => Buffer.from(a.rawData)),
      notAfterMs: notAfter,
    };
  }

  /**
   * Replaces the issuer with a new one signed by the current anchor (written to the directory).
   * Leaves issued before keep verifying: they carry the old issuer, signed by the same anchor.
   */
  async rotateIssuer(): Promise<void> {
    this.issuer = await this.createIssuer(this.anchor);
    await this.save('issuer', this.issuer);
    this.o.log?.('info', 'CA issuer rotated', { subject: this.issuer.cert.subject, notAfter: this.issuer.cert.notAfter.toISOString() });
  }

  /**
   * Starts an anchor rotation: a new anchor and an issuer under it sign from now on; the trust bundle
   * carries the old anchor too until retireOldAnchors() (call it once leaves under it have expired).
   */
  async rotateAnchor(): Promise<void> {
    const anchor = await this.createAnchor();
    this.anchor = anchor;
    this.anchors = [anchor.cert, ...this.anchors];
    this.issuer = await this.createIssuer(anchor);
    await this.save('anchor', anchor);
    await this.save('issuer', this.issuer);
    writeFileSync(join(this.o.dir, 'trust-bundle.crt'), this.trustBundlePem);
  }

  retireOldAnchors(): void {
    this.anchors = this.anchors.slice(0, 1);
    writeFileSync(join(this.o.dir, 'trust-bundle.crt'), this.trustBundlePem);
  }

  private async load(): Promise<void> {
    const dir = this.o.dir;
    const has = (n: string): boolean => existsSync(join(dir, `${n}.crt`)) && existsSync(join(dir, `${n}.key`));
    if (!existsSync(join(dir, 'anchor.crt')) || !has('issuer')) {
      if (this.o.generate !== true) throw new Error(`${dir}: anchor.crt and issuer.crt/issuer.key are needed (or let bowline generate a CA for local use)`);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      this.o.log?.('warn', 'generating a certificate authority for LOCAL USE; its keys are in files here. Bring your own anchor and issuer for production', { dir });
      if (!has('anchor')) await this.save('anchor', await this.createAnchor());
      if (!has('issuer')) await this.save('issuer', await this.createIssuer(await this.read('anchor')));
    }
    const f = await this.readFiles();
    this.anchor = f.anchor;
    this.anchors = f.anchors;
    this.issuer = f.issuer;
  }

  /**
   * Re-reads the directory: an issuer replaced there (by `bowline ca rotate-issuer`, cert-manager or
   * by hand) signs from now on, and a changed trust bundle is served. A half-written or invalid set
   * of files is refused (the CA in force stays) and tried again at the next call. Returns what changed.
   */
  async reload(): Promise<'issuer' | 'bundle' | 'none'> {
    const f = await this.readFiles();
    const issuerChanged = f.issuer.cert.serialNumber !== this.issuer.cert.serialNumber;
    const bundleChanged = f.anchors.map((a) => a.serialNumber).join() !== this.anchors.map((a) => a.serialNumber).join();
    this.anchor = f.anchor;
    this.anchors = f.anchors;
    this.issuer = f.issuer;
    if (issuerChanged) this.o.log?.('info', 'CA issuer reloaded', { subject: f.issuer.cert.subject, serial: f.issuer.cert.serialNumber, notAfter: f.issuer.cert.notAfter.toISOString() });
    return issuerChanged ? 'issuer' : bundleChanged ? 'bundle' : 'none';
  }

  /** The anchor (its key only where present: production keeps it offline), bundle and issuer, checked. */
  private async readFiles(): Promise<{ anchor: Pair; anchors: x509.X509Certificate[]; issuer: Pair }> {
    const dir = this.o.dir;
    const anchor = await this.read('anchor', existsSync(join(dir, 'anchor.key')));
    // A bundle written during an anchor rotation carries the old anchor(s) too.
    const extra: x509.X509Certificate[] = [];
    const bundleFile = join(dir, 'trust-bundle.crt');
    if (existsSync(bundleFile)) {
      for (const pem of readFileSync(bundleFile, 'utf8').split(/(?=-----BEGIN CERTIFICATE-----)/).filter((p) => p.trim() !== '')) {
        const cert = new x509.X509Certificate(pem);
        if (cert.serialNumber !== anchor.cert.serialNumber) extra.push(cert);
      }
    }
    const issuer = await this.read('issuer');
    // The issuer must chain to an anchor we trust, and its key must be its certificate's.
    const issuerCert = new X509Certificate(issuer.cert.toString('pem'));
    const signer = new X509Certificate(anchor.cert.toString('pem'));
    if (!issuerCert.checkIssued(signer) || !issuerCert.verify(signer.publicKey)) {
      throw new Error(`${dir}: issuer.crt is not signed by the trust anchor (anchor.crt)`);
    }
    const keyDer = createPublicKey(createPrivateKey(readFileSync(join(dir, 'issuer.key'), 'utf8'))).export({ type: 'spki', format: 'der' });
    if (!Buffer.from(issuer.cert.publicKey.rawData).equals(keyDer)) throw new Error(`${dir}: issuer.key does not belong to issuer.crt`);
    return { anchor, anchors: [anchor.cert, ...extra], issuer };
  }

  private async createAnchor(): Promise<Pair> {
    const keys = await generateKeyPair();
    const now = this.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomBytes(16).toString('hex').replace(/^[89a-f]/, '1'),
      name: `CN=Bowline trust anchor, O=${this.o.trustDomain}`,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + (this.o.anchorTtlMs ?? 3650 * DAY)),
      keys,
      signingAlgorithm: EC_P256,
      extensions: [new x509.BasicConstraintsExtension(true, 1, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true), await x509.SubjectKeyIdentifierExtension.create(keys.publicKey)],
    });
    return { cert, key: keys.privateKey };
  }

  private async createIssuer(anchor: Pair): Promise<Pair> {
    if (anchor.key === null) throw new Error(`${this.o.dir}: anchor.key is needed to sign a new issuer (or put the new issuer.crt/issuer.key there)`);
    const keys = await generateKeyPair();
    const now = this.now();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomBytes(16).toString('hex').replace(/^[89a-f]/, '1'),
      subject: `CN=Bowline issuer ${new Date(now).toISOString()}, O=${this.o.trustDomain}`,
      issuer: anchor.cert.subject,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(Math.min(now + (this.o.issuerTtlMs ?? 30 * DAY), anchor.cert.notAfter.getTime())),
      publicKey: keys.publicKey,
      signingKey: anchor.key,
      signingAlgorithm: EC_P256,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(anchor.cert, false),
      ],
    });
    return { cert, key: keys.privateKey };
  }

  /** Writes the key, then the certificate, each atomically (a reader sees old or new files, never half of one). */
  private async save(name: string, p: Pair): Promise<void> {
    const put = (file: string, text: string, mode: number): void => {
      const tmp = join(this.o.dir, `.${file}.${process.pid}.tmp`);
      writeFileSync(tmp, text, { mode });
      renameSync(tmp, join(this.o.dir, file));
    };
    if (p.key !== null) put(`${name}.key`, await privateKeyPem(p.key), 0o600);
    put(`${name}.crt`, p.cert.toString('pem'), 0o644);
  }

  private async read(name: string, withKey = true): Promise<Pair> {
    const dir = this.o.dir;
    const cert = new x509.X509Certificate(readFileSync(join(dir, `${name}.crt`), 'utf8'));
    if (!withKey) return { cert, key: null };
    const pem = readFileSync(join(dir, `${name}.key`), 'utf8');
    const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    const { webcrypto } = await import('node:crypto');
    const key = await webcrypto.subtle.importKey('pkcs8', der, EC_P256, true, ['sign']);
    return { cert, key };
  }
}

export class CsrError extends Error {
  override readonly name = 'CsrError';
}
