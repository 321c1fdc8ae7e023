// Transparent interception end to end, in network namespaces on this machine: a client "pod" and a
// server "pod" (each a netns joined by a veth pair), each with its own Bowline under its own UID and
// the rules of `bowline init`. The client talks to the server's plain address with no proxy
// settings; the traffic goes through both proxies (mutual TLS between them, the app seeing the
// caller's identity) as their metrics show; skipped ports bypass the proxies; a proxy whose UID is
// not excluded refuses its own looped connections instead of multiplying them; `--remove` restores
// direct traffic.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Identity } from '../../xds/client/identity-client';
import { identityYaml, issueIdentities } from '../helpers/mesh-identity';
import { type CommandResult, runCommand as run } from '../helpers/run-command';

const BIN = resolve(__dirname, '../../bin/bowline.js');
const PROXY_UID = 2102;
const tag = Math.random().toString(36).slice(2, 7);
const CLI = `blc-${tag}`;
const SRV = `bls-${tag}`;
const net3 = 10 + Math.floor(Math.random() * 200);
const CLI_IP = `10.99.${net3}.1`;
const SRV_IP = `10.99.${net3}.2`;

async function must(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const inNs = (ns: string, cmd: string, args: string[], timeoutMs?: number): Promise<CommandResult> => run('ip', ['netns', 'exec', ns, cmd, ...args], timeoutMs);

let dir: string;
const children: ChildProcess[] = [];
const stderrs = new Map<string, () => string>();

/** A long-running process in a namespace (optionally as the proxy's UID); resolves once `ready` shows on stdout. */
async function startIn(ns: string, name: string, args: string[], ready: RegExp, asProxy = false): Promise<ChildProcess> {
  const full = asProxy ? ['netns', 'exec', ns, 'setpriv', `--reuid=${PROXY_UID}`, `--regid=${PROXY_UID}`, '--clear-groups', process.execPath, ...args] : ['netns', 'exec', ns, process.execPath, ...args];
  const c = spawn('ip', full, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(c);
  let out = '';
  let err = '';
  c.stdout!.on('data', (d) => (out += d));
  c.stderr!.on('data', (d) => (err += d));
  stderrs.set(name, () => err);
  const deadline = Date.now() + 15_000;
  while (!ready.test(out)) {
    if (c.exitCode !== null || Date.now() > deadline) throw new Error(`${name} did not start: ${out}\n${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return c;
}

function proxyConfig(name: string, id: Identity, meshed: string): string {
  return `
proxy:
${identityYaml(dir, name, id)}
listeners:
  - { name: in, address: 0.0.0.0:4143, direction: inbound, originalDst: true }
  - { name: out, address: 127.0.0.1:4140, originalDst: true }
services:
${meshed}
`;
}

async function metrics(ns: string): Promise<string> {
  return (await inNs(ns, 'curl', ['-s', 'http://127.0.0.1:4191/metrics'])).stdout;
}

function sum(text: string, name: string, match: (labels: string) => boolean): number {
  let n = 0;
  for (const m of text.matchAll(new RegExp(`^${name}\\{([^}]*)\\} (\\d+)`, 'gm'))) if (match(m[1]!)) n += Number(m[2]);
  return n;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bowline-netns-'));
  chmodSync(dir, 0o755);
  const ids = await issueIdentities(dir, join(dir, 'ca'), ['web', 'api']);
  await must('ip', ['netns', 'add', CLI]);
  await must('ip', ['netns', 'add', SRV]);
  await must('ip', ['link', 'add', `vc-${tag}`, 'type', 'veth', 'peer', 'name', `vs-${tag}`]);
  await must('ip', ['link', 'set', `vc-${tag}`, 'netns', CLI]);
  await must('ip', ['link', 'set', `vs-${tag}`, 'netns', SRV]);
  for (const [ns, dev, ip] of [[CLI, `vc-${tag}`, CLI_IP], [SRV, `vs-${tag}`, SRV_IP]] as const) {
    await must('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', dev]);
    await must('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  // The server pod's apps: 8080 behind the proxy, 9090 on a skipped port; both tell who called.
  const app = `require('http').createServer((q, s) => s.end(JSON.stringify({ port: +process.argv[1], from: q.socket.remoteAddress, id: q.headers['l5d-client-id'] || null, url: q.url }))).listen(+process.argv[1], '0.0.0.0', () => console.log('listening'))`;
  await startIn(SRV, 'app8080', ['-e', app, '8080'], /listening/);
  await startIn(SRV, 'app9090', ['-e', app, '9090'], /listening/);
  // A TCP service on an opaque port: it echoes what it gets, after a greeting of its own.
  const echo = `require('net').createServer((c) => { c.write('hi '); c.pipe(c); }).listen(7070, '0.0.0.0', () => console.log('listening'))`;
  await startIn(SRV, 'echo7070', ['-e', echo], /listening/);
  // Key files readable by the proxy's UID.
  for (const f of readdirSync(dir)) if (f.endsWith('.key') || f.endsWith('.crt')) chmodSync(join(dir, f), 0o644);
  const srvCfg = join(dir, 'server.yaml');
  writeFileSync(srvCfg, proxyConfig('api', ids['api']!, '  []'));
  const cliCfg = join(dir, 'client.yaml');
  // The client's mesh knows the server's app address as a meshed endpoint (its identity is api).
  writeFileSync(cliCfg, proxyConfig('web', ids['web']!, `  - { name: api, identity: "spiffe://mesh.test/ns/shop/sa/api", endpoints: [{ address: "${SRV_IP}:8080" }] }`));
  chmodSync(srvCfg, 0o644);
  chmodSync(cliCfg, 0o644);
  await startIn(SRV, 'server-proxy', [BIN, 'proxy', '--config', srvCfg, '--workers', '1', '--admin', '0.0.0.0:4191', '--opaque-ports', '7070'], /admin on/, true);
  await startIn(CLI, 'client-proxy', [BIN, 'proxy', '--config', cliCfg, '--workers', '1', '--admin', '0.0.0.0:4191', '--opaque-ports', '7070'], /admin on/, true);
  await must('ip', ['netns', 'exec', SRV, process.execPath, BIN, 'init', '--proxy-uid', String(PROXY_UID), '--skip-inbound-ports', '4190,4191,9090']);
  await must('ip', ['netns', 'exec', CLI, process.execPath, BIN, 'init', '--proxy-uid', String(PROXY_UID), '--skip-outbound-ports', '9090']);
});

after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await run('ip', ['netns', 'del', CLI]);
  await run('ip', ['netns', 'del', SRV]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the client calls the server by its plain address; both proxies carry it, over mutual TLS', { timeout: 60_000 }, async () => {
  const r = await inNs(CLI, 'curl', ['-s', '--max-time', '5', `http://${SRV_IP}:8080/hello`]);
  assert.equal(r.code, 0, `${r.stderr}\nclient proxy: ${stderrs.get('client-proxy')!()}\nserver proxy: ${stderrs.get('server-proxy')!()}`);
  const seen = JSON.parse(r.stdout) as { port: number; from: string; id: string | null; url: string };
  assert.equal(seen.url, '/hello');
  // The app is reached by the server-side proxy over localhost, and learns the caller's identity.
  assert.equal(seen.from, '127.0.0.1');
  assert.equal(seen.id, 'spiffe://mesh.test/ns/shop/sa/web');
  const cm = await metrics(CLI);
  const sm = await metrics(SRV);
  assert.ok(sum(cm, 'request_total', (l) => l.includes('direction="outbound"') && l.includes('backend="api"')) >= 1, cm);
  assert.ok(sum(sm, 'request_total', (l) => l.includes('direction="inbound"') && l.includes('client_id="spiffe://mesh.test/ns/shop/sa/web"')) >= 1, sm);
});

test('a destination no service owns goes straight through the client proxy (original destination)', { timeout: 60_000 }, async () => {
  // The server pod's own outbound traffic to the client pod's address: no service there lists it.
  const r = await inNs(SRV, 'curl', ['-s', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code}', `http://${CLI_IP}:4191/ready`]);
  assert.equal(r.stdout, '200', r.stderr);
  const sm = await metrics(SRV);
  assert.ok(sum(sm, 'request_total', (l) => l.includes('direction="outbound"') && l.includes('backend="original-dst"')) >= 1, sm);
});

test('an opaque port (--opaque-ports, as bowline inject passes it) is carried as TCP by both proxies, never parsed', { timeout: 60_000 }, async () => {
  const tcp = (m: string): number => sum(m, 'tcp_open_total', () => true);
  const [c0, s0] = [tcp(await metrics(CLI)), tcp(await metrics(SRV))];
  // Not valid HTTP (a control character in a field): a proxy that parsed it would answer 400.
  const client = `const s = require('net').connect(7070, '${SRV_IP}', () => s.write('GET / HTTP/1.1\\r\\nX: \\x01\\r\\n\\r\\n')); let got = ''; s.on('data', (d) => { got += d; if (got.length >= 31) { console.log(JSON.stringify(got)); s.destroy(); } }); setTimeout(() => { console.log(JSON.stringify(got)); process.exit(0); }, 3000);`;
  const r = await inNs(CLI, process.execPath, ['-e', client]);
  assert.equal(JSON.parse(r.stdout.trim()), 'hi GET / HTTP/1.1\r\nX: \x01\r\n\r\n', r.stderr);
  // Both proxies opened connections for it (client side out, server side in and to the app).
  assert.ok(tcp(await metrics(CLI)) > c0, 'through the client proxy');
  assert.ok(tcp(await metrics(SRV)) > s0, 'through the server proxy');
});

test('a skipped port bypasses both proxies', { timeout: 60_000 }, async () => {
  const before = sum(await metrics(CLI), 'request_total', () => true);
  const r = await inNs(CLI, 'curl', ['-s', '--max-time', '5', `http://${SRV_IP}:9090/direct`]);
  assert.equal(r.code, 0, r.stderr);
  const seen = JSON.parse(r.stdout) as { from: string; id: string | null };
  assert.equal(seen.from, CLI_IP, 'the app sees the client pod itself');
  assert.equal(seen.id, null);
  assert.equal(sum(await metrics(CLI), 'request_total', () => true), before);
});

test('bowline init is idempotent, and --remove restores direct traffic', { timeout: 60_000 }, async () => {
  const rules = await must('ip', ['netns', 'exec', CLI, process.execPath, BIN, 'init', '--show']);
  await must('ip', ['netns', 'exec', CLI, process.execPath, BIN, 'init', '--proxy-uid', String(PROXY_UID), '--skip-outbound-ports', '9090']);
  assert.equal(await must('ip', ['netns', 'exec', CLI, process.execPath, BIN, 'init', '--show']), rules, 'applying again changes nothing');
  assert.match(rules, /-A OUTPUT -p tcp -j BOWLINE_OUTBOUND/);
  assert.match(rules, new RegExp(`--uid-owner ${PROXY_UID} -j RETURN`));
  await must('ip', ['netns', 'exec', CLI, process.execPath, BIN, 'init', '--remove']);
  await must('ip', ['netns', 'exec', SRV, process.execPath, BIN, 'init', '--remove']);
  const nat = await must('ip', ['netns', 'exec', CLI, 'iptables', '-t', 'nat', '-S']);
  assert.doesNotMatch(nat, /BOWLINE/);
  const before = sum(await metrics(CLI), 'request_total', () => true);
  const r = await inNs(CLI, 'curl', ['-s', '--max-time', '5', `http://${SRV_IP}:8080/after`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { from: string }).from, CLI_IP, 'direct again');
  assert.equal(sum(await metrics(CLI), 'request_total', () => true), before);
});

test('without the UID exclusion the proxy refuses its own looped connections instead of multiplying them', { timeout: 60_000 }, async () => {
  await must('ip', ['netns', 'exec', CLI, process.execPath, BIN, 'init']);
  try {
    // A destination the proxy holds no connection to yet (port 9090 is not skipped by these rules):
    // its connection out is redirected back to it.
    const r = await inNs(CLI, 'curl', ['-s', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code}', `http://${SRV_IP}:9090/loop`]);
    assert.match(r.stdout, /^5\d\d$/, `a failed answer, not a hang: ${r.stdout} ${r.stderr}`);
    await new Promise((res) => setTimeout(res, 300));
    const cm = await metrics(CLI);
    const loops = sum(cm, 'original_dst_loops_total', () => true);
    assert.ok(loops >= 1 && loops <= 10, `loops refused: ${loops}; answer ${r.stdout}; client proxy: ${stderrs.get("client-proxy")!()}\n${cm.split("\n").filter((l) => /^(request_total|response_total|tcp_open_total|original)/.test(l)).join("\n")}`);
  } finally {
    await must('ip', ['netns', 'exec', CLI, process.execPath, BIN, 'init', '--remove']);
  }
});
