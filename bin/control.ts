// `bowline control`: the xDS control plane on a mesh file. Loaded only for this command, so that the
// proxy never loads gRPC or protobufjs.

import { parseArgs } from 'node:util';
import { parseSocketAddress } from '../engine/config/file/socket-address';
import { startAdminServer } from '../workers/admin-server';
import { ControlPlane } from '../xds/server/control-plane';
import { FileMeshSource } from '../xds/server/mesh-source';

function log(level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
  const line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields });
  (level === 'info' ? process.stdout : process.stderr).write(`${line}\n`);
}

export async function control(argv: string[], fail: (msg: string) => never): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string' },
        listen: { type: 'string', default: '127.0.0.1:18000' },
        admin: { type: 'string', default: '127.0.0.1:9901' },
        'build-threads': { type: 'string', default: '1' },
        'ca-dir': { type: 'string' },
        'generate-ca': { type: 'boolean', default: false },
        'trust-domain': { type: 'string', default: 'cluster.local' },
        'token-secret': { type: 'string' },
        'kubernetes-tokens': { type: 'boolean', default: false },
        'token-audience': { type: 'string', multiple: true },
        'leaf-ttl-s': { type: 'string', default: '86400' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
      },
      strict: true,
    }));
  } catch (e) {
    fail((e as Error).message);
  }
  if (values.config === undefined) fail('control needs --config MESH_FILE');
  const threads = Number(values['build-threads']);
  if (!Number.isInteger(threads) || threads < 0) fail(`--build-threads must be a whole number >= 0, got "${values['build-threads']}"`);
  let admin: { host: string; port: number };
  try {
    parseSocketAddress(values.listen, 0);
    admin = parseSocketAddress(values.admin, 0);
  } catch (e) {
    fail((e as Error).message);
  }
  let tls: { certFile: string; keyFile: string } | undefined;
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) fail('--tls-cert and --tls-key go together');
  if (values['tls-cert'] !== undefined) {
    tls = { certFile: values['tls-cert'], keyFile: values['tls-key']! };
    // Checked now, so that a wrong file is an error naming it rather than failed handshakes later.
    const { readFileSync } = await import('node:fs');
    const { createPrivateKey, X509Certificate } = await import('node:crypto');
    let cert: InstanceType<typeof X509Certificate>;
    try {
      cert = new X509Certificate(readFileSync(tls.certFile));
    } catch (e) {
      fail(`--tls-cert ${tls.certFile}: not a PEM certificate (${(e as Error).message})`);
    }
    let key: ReturnType<typeof createPrivateKey>;
    try {
      key = createPrivateKey(readFileSync(tls.keyFile));
    } catch (e) {
      fail(`--tls-key ${tls.keyFile}: not a PEM private key (${(e as Error).message})`);
    }
    if (!cert.checkPrivateKey(key)) fail(`--tls-key ${tls.keyFile}: not the key of ${tls.certFile}`);
  }
  let identity: ConstructorParameters<typeof ControlPlane>[0]['identity'];
  if (values['ca-dir'] !== undefined) {
    // Loaded only with a CA: X.509 and WebCrypto stay out otherwise.
    const { CertificateAuthority } = await import('../xds/server/ca/authority');
    const { KubernetesTokenVerifier, SignedTokenVerifier } = await import('../xds/server/ca/token-verifier');
    if ((values['token-secret'] === undefined) === (values['kubernetes-tokens'] !== true)) fail('with --ca-dir, give one of --token-secret FILE or --kubernetes-tokens');
    const audiences = values['token-audience'];
    if (audiences !== undefined && values['token-secret'] !== undefined) fail('--token-audience goes with --kubernetes-tokens');
    // Injected proxies send a token projected for audience "bowline": TokenReview accepts it only
    // when asked for that audience (without one it checks for the API server's).
    const verifier = values['token-secret'] !== undefined ? new SignedTokenVerifier(values['token-secret']) : new KubernetesTokenVerifier({ audiences });
    const ttl = Number(values['leaf-ttl-s']);
    if (!(ttl >= 1)) fail(`--leaf-ttl-s must be a number of seconds >= 1, got "${values['leaf-ttl-s']}"`);
    const ca = await CertificateAuthority.open({ dir: values['ca-dir'], trustDomain: values['trust-domain'], generate: values['generate-ca'], leafTtlMs: ttl * 1000, log });
    identity = { ca, verifier, watchDir: values['ca-dir'] };
  }
  const cp = new ControlPlane({ source: new FileMeshSource(values.config), listen: values.listen, buildThreads: threads, log, identity, ...(tls === undefined ? {} : { tls }) });
  await cp.start();
  const adminServer = await startAdminServer(admin.host, admin.port, {
    metrics: () => Promise.resolve(cp.metrics.render()),
    ready: () => cp.cache.generation > 0,
    configDump: () => cp.configDump(),
  });
  const host = values.listen.slice(0, values.listen.lastIndexOf(':'));
  process.stdout.write(`bowline control: xds on ${host}:${cp.port}, admin on ${admin.host}:${adminServer.port} (mesh ${values.config}${tls === undefined ? '' : `; TLS with ${tls.certFile}`}${identity ? `; issuing certificates for ${values['trust-domain']}` : ''})\n`);
  let stopping = false;
  const stop = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    log('info', `${sig}: stopping`);
    adminServer.close();
    void cp.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
