// Mesh identities for tests: certificates issued by a real CertificateAuthority through the real
// Identity gRPC service and IdentityClient, written out as the PEM files `proxy.identity` names.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type Identity, IdentityClient } from '../../xds/client/identity-client';
import { CertificateAuthority } from '../../xds/server/ca/authority';
import { addIdentityService } from '../../xds/server/ca/identity-service';
import { signToken, SignedTokenVerifier } from '../../xds/server/ca/token-verifier';

const SECRET = Buffer.alloc(32, 5);

/** Certificates for the given service accounts (namespace "shop" unless "ns/sa"), from a CA generated in `caDir`. */
export async function issueIdentities(dir: string, caDir: string, sas: string[], trustDomain = 'mesh.test'): Promise<Record<string, Identity>> {
  const ca = await CertificateAuthority.open({ dir: caDir, trustDomain, generate: true });
  const server = new grpc.Server();
  addIdentityService(server, ca, new SignedTokenVerifier(SECRET), () => {});
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  const out: Record<string, Identity> = {};
  try {
    for (const name of sas) {
      const [namespace, serviceAccount] = name.includes('/') ? name.split('/') : ['shop', name];
      const tf = join(dir, `${name.replace('/', '.')}.token`);
      writeFileSync(tf, signToken(SECRET, { namespace: namespace!, serviceAccount: serviceAccount! }, 600));
      const c = new IdentityClient({ server: `127.0.0.1:${port}`, tokenFile: tf });
      out[name] = await c.start();
      c.stop();
    }
  } finally {
    server.forceShutdown();
  }
  return out;
}

/** Writes an identity's PEM files and returns the `identity:` line of a `proxy:` block (indented two spaces). */
export function identityYaml(dir: string, name: string, id: Identity): string {
  const files = { chain: join(dir, `${name}.crt`), key: join(dir, `${name}.key`), bundle: join(dir, `${name}-bundle.crt`) };
  writeFileSync(files.chain, id.certChainPem);
  writeFileSync(files.key, id.keyPem);
  writeFileSync(files.bundle, id.trustBundlePem);
  return `  identity: { certificateChainFile: ${files.chain}, privateKeyFile: ${files.key}, trustBundleFile: ${files.bundle} }`;
}
