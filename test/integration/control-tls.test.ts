// TLS between proxies and the control plane (real processes): `bowline control --tls-cert/--tls-key`
// serves xDS and the Identity service over TLS; a proxy whose bootstrap names the trust bundle and the
// name to check gets its config and its workload certificate; one that trusts another anchor, or
// expects another name, gets nothing (its token never crosses an unchecked connection).

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TempConfig } from '../helpers/config-file';
import { type Control, startControl, writeBootstrap } from '../helpers/control-process';
import { admin, BOWLINE_BIN, eventually, startProxy } from '../helpers/proxy-process';

let mesh: TempConfig;
let cp: Control;

/** A self-signed P-256 certificate for `name` (its own trust anchor), as PEM files in the mesh's directory. */
function selfSigned(base: string, name: string): { cert: string; key: string } {
  const cert = join(mesh.dir, `${base}.crt`);
  const key = join(mesh.dir, `${base}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name}`], { stdio: 'ignore' });
  return { cert, key };
}

function bootstrap(port: number, caFile: string, sni: string): string {
  return writeBootstrap(join(mesh.dir, `bootstrap-${sni}-${caFile.replace(/\W/g, '')}.yaml`), port, { tls: { caFile, sni } });
}

function token(sa: string): string {
  const f = join(mesh.dir, `${sa}.token`);
  writeFileSync(f, execFileSync(process.execPath, [BOWLINE_BIN, 'token', '--secret', join(mesh.dir, 'token-secret'), '--namespace', 'shop', '--service-account', sa]));
  return f;
}

let server: { cert: string; key: string };

before(async () => {
  mesh = new TempConfig(`
listeners: [{ name: out, address: 127.0.0.1:0, routes: [r] }]
services: [{ name: web, endpoints: [{ address: 127.0.0.1:9 }] }]
routes: [{ name: r, backendRefs: [{ name: web }] }]
`);
  writeFileSync(join(mesh.dir, 'token-secret'), Buffer.alloc(48, 5));
  server = selfSigned('control', 'control.bowline.test');
  cp = await startControl(mesh.file, 0, ['--ca-dir', join(mesh.dir, 'ca'), '--generate-ca', '--trust-domain', 'mesh.test', '--token-secret', join(mesh.dir, 'token-secret'), '--tls-cert', server.cert, '--tls-key', server.key]);
});

after(async () => {
  await cp?.stop();
  mesh?.remove();
});

test('a proxy that trusts the control plane gets its config and its certificate over TLS', { timeout: 30_000 }, async () => {
  assert.match(cp.out(), /TLS with .*control\.crt/);
  const p = await startProxy(['--bootstrap', bootstrap(cp.port, server.cert, 'control.bowline.test'), '--identity-token', token('web'), '--workers', '1'], { timeoutMs: 20_000 });
  try {
    await eventually(async () => (await admin(p, '/ready')).status === 200, 10_000, 'ready');
    const dump = JSON.parse((await admin(p, '/config_dump')).body) as { version: string; source: { identity: { spiffeId: string } } };
    assert.match(dump.version, /^xds-/);
    assert.equal(dump.source.identity.spiffeId, 'spiffe://mesh.test/ns/shop/sa/web');
  } finally {
    await p.stop();
  }
});

test('a proxy that trusts another anchor, or checks another name, gets nothing', { timeout: 30_000 }, async () => {
  const other = selfSigned('other', 'control.bowline.test');
  const before = (await (await fetch(`http://127.0.0.1:${cp.adminPort}/metrics`)).text()).match(/^identity_certificates_issued_total (\d+)/m)?.[1] ?? '0';
  for (const [ca, sni, why] of [
    [other.cert, 'control.bowline.test', /self-signed certificate/],
    [server.cert, 'impostor.bowline.test', /does not match certificate's altnames|altnames/i],
  ] as const) {
    // Without its first config the proxy does not start serving; it keeps retrying and says why.
    const err = await startProxy(['--bootstrap', bootstrap(cp.port, ca, sni), '--identity-token', token('web'), '--workers', '1'], { timeoutMs: 3000 }).then(
      async (p) => {
        await p.stop();
        return 'started';
      },
      (e: Error) => e.message,
    );
    assert.match(err, /did not start in time/, `${sni} trusting ${ca}`);
    assert.match(err, why);
    assert.match(err, /identity certificate request failed/);
  }
  const m = await (await fetch(`http://127.0.0.1:${cp.adminPort}/metrics`)).text();
  assert.equal(m.match(/^identity_certificates_issued_total (\d+)/m)?.[1] ?? '0', before, 'no certificate was issued over an unchecked connection');
});

test('--tls-cert and --tls-key are checked when the control plane starts', () => {
  const run = (args: string[]): string => {
    try {
      execFileSync(process.execPath, [BOWLINE_BIN, 'control', '--config', mesh.file, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', ...args], { stdio: 'pipe', timeout: 10_000 });
      return '';
    } catch (e) {
      return String((e as { stderr?: Buffer }).stderr ?? '');
    }
  };
  assert.match(run(['--tls-cert', server.cert]), /--tls-cert and --tls-key go together/);
  const other = selfSigned('mismatch', 'x.test');
  assert.match(run(['--tls-cert', server.cert, '--tls-key', other.key]), /--tls-key .*mismatch\.key: not the key of/);
  assert.match(run(['--tls-cert', mesh.file, '--tls-key', server.key]), /--tls-cert .*: not a PEM certificate/);
});
