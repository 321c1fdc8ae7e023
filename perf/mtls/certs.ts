// Certificates for the mTLS benchmark (perf/mtls/run.sh): one real CertificateAuthority (generated in
// OUT/ca) issues the client side's and the server side's identities through the real Identity service,
// and the same files are laid out for both Bowline (`proxy.identity`) and HAProxy (`crt`, `ca-file`).
//
//   node dist/perf/mtls/certs.js OUT_DIR [TRUST_DOMAIN]
//
// Writes into OUT_DIR: {web,api}.crt (leaf then issuer, PEM), {web,api}.key (PKCS#8), bundle.crt (the
// trust anchors), {web,api}.pem (chain then key, what HAProxy's `crt` wants), and client-ca.crt (the
// anchors and the issuer) for `openssl s_time`, which has no option for a certificate chain: OpenSSL
// completes a client's chain from its CA file, so the issuer must be there for the handshake to pass
// a server that trusts only the anchors. Prints the two SPIFFE IDs.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { issueIdentities } from '../../test/helpers/mesh-identity';

const SIDES = { web: 'bench/web', api: 'bench/api' } as const;

export interface BenchIdentities {
  /** The client side's SPIFFE ID (service account web). */
  web: string;
  /** The server side's SPIFFE ID (service account api). */
  api: string;
}

/** Generates a CA in `dir`/ca and issues both sides' certificates into `dir` (see the header). */
export async function writeBenchCerts(dir: string, trustDomain = 'bench.local'): Promise<BenchIdentities> {
  mkdirSync(join(dir, 'tokens'), { recursive: true });
  const ids = await issueIdentities(join(dir, 'tokens'), join(dir, 'ca'), Object.values(SIDES), trustDomain);
  let bundle = '';
  let issuer = '';
  const spiffe: Record<string, string> = {};
  for (const [name, sa] of Object.entries(SIDES)) {
    const id = ids[sa];
    if (id === undefined) throw new Error(`no identity issued for ${sa}`);
    const chain = id.certChainPem.endsWith('\n') ? id.certChainPem : `${id.certChainPem}\n`;
    writeFileSync(join(dir, `${name}.crt`), chain);
    writeFileSync(join(dir, `${name}.key`), id.keyPem, { mode: 0o600 });
    writeFileSync(join(dir, `${name}.pem`), chain + id.keyPem, { mode: 0o600 });
    bundle = id.trustBundlePem.endsWith('\n') ? id.trustBundlePem : `${id.trustBundlePem}\n`;
    issuer = chain.split(/(?=-----BEGIN CERTIFICATE-----)/).slice(1).join('');
    spiffe[name] = id.spiffeId;
  }
  if (issuer === '') throw new Error('the issued chain has no issuer certificate');
  writeFileSync(join(dir, 'bundle.crt'), bundle);
  writeFileSync(join(dir, 'client-ca.crt'), bundle + issuer);
  return { web: spiffe['web']!, api: spiffe['api']! };
}

if (require.main === module) {
  const out = process.argv[2];
  if (out === undefined || out === '') {
    process.stderr.write('usage: node dist/perf/mtls/certs.js OUT_DIR [TRUST_DOMAIN]\n');
    process.exit(2);
  }
  writeBenchCerts(resolve(out), process.argv[3]).then(
    (ids) => process.stdout.write(`web ${ids.web}\napi ${ids.api}\n`),
    (e: unknown) => {
      process.stderr.write(`certs: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exit(1);
    },
  );
}
