// The mTLS benchmark (`bash perf/run.sh mtls`): Bowline with mutual TLS 1.3 on the mesh hop beside
// HAProxy doing the same, in one run, with the same certificates (issued by Bowline's own CA) and the
// same upstream. Two topologies, and a reference, all started once and measured in rotating rounds:
//   bowline: wrk -> Bowline client side :18610 -> mTLS -> Bowline server side :18611 -> nginx :18600
//   haproxy: wrk -> HAProxy client side :18620 -> mTLS -> HAProxy server side :18621 -> nginx :18600
//   relay:   wrk -> node:tls relay client :18630 -> mTLS -> node:tls relay server :18631 -> nginx :18600
// The relay pair (node-relay.ts) relays bytes with no HTTP: the ceiling node:tls sets in this layout.
// It runs in the throughput and latency phases only, not in the handshake phase.
// Pinning (2 cores): both proxies of a topology share PROXY_CPU (1); wrk, the other clients and the
// upstream run on LOAD_CPU (0). Phases: throughput (wrk, keep-alive), latency at a fixed rate (the
// shared harness's fixedrate.js), handshakes per second against the server side alone (openssl s_time
// -new: a full TLS 1.3 handshake with the client certificate and one HTTP/1.0 GET per connection).
// Knobs: see perf/README.md ("mTLS"). Exit status: 0 ok, 1 setup failure, 3 the run had errors.

import { readFileSync, mkdirSync, writeFileSync, statSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import * as tls from 'node:tls';
import { writeBenchCerts } from './certs';
import { PORTS, writeConfigs } from './configs';
import { parseFixedRate, parseSTime, parseWrk } from './parse';
import { alive, cpuUse, type Group, killAllNow, runClient, sessionPeakRssKib, snap, startGroup, stopAll } from './procs';
import { buildReport, type HsRun, type LatRun, type Rss, type TopologyName, type TputRun } from './report';

const DIST = resolve(__dirname, '../..');
const REPO = resolve(DIST, '..');
const BOWLINE = join(DIST, 'bin', 'bowline.js');
const RELAY = join(__dirname, 'node-relay.js');

const num = (k: string, d: number): number => {
  const v = process.env[k];
  if (v === undefined || v === '') return d;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) fail(`${k} must be a number >= 0, got "${v}"`, 2);
  return n;
};
const str = (k: string, d: string): string => process.env[k] ?? d;

function fail(msg: string, code = 1): never {
  process.stderr.write(`perf/mtls: ERROR: ${msg}\n`);
  killAllNow();
  process.exit(code);
}
const log = (msg: string): void => {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] mtls: ${msg}\n`);
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ knobs
const ROUNDS = num('ROUNDS', 3);
const DURATION = num('DURATION', 8);
const CONNS = num('CONNS', 50);
const WARMUP = num('WARMUP', 2);
const WRK_THREADS = num('WRK_THREADS', 1);
const TPUT = num('TPUT', 1) === 1;
const LAT = num('LAT', 1) === 1;
const RATE = num('RATE', 1000);
const LAT_DURATION = num('LAT_DURATION', 5);
const LAT_ROUNDS = num('LAT_ROUNDS', 2);
const LAT_CONNS = num('LAT_CONNS', 16);
const HS = num('HS', 1) === 1;
const HS_DURATION = Math.max(1, num('HS_DURATION', 5));
const HS_ROUNDS = num('HS_ROUNDS', ROUNDS);
const HS_CLIENTS = Math.max(1, num('HS_CLIENTS', 4));
const QUIET_MAX = num('QUIET_MAX', 10);
const QUIET_WAIT = num('QUIET_WAIT', 30);
const NOISY_MAX = num('NOISY_MAX', 10);
const RETRIES = num('RETRIES', 1);
const TWO_CORES = cpus().length >= 2;
const PROXY_CPU = TWO_CORES ? str('PROXY_CPU', '1') : '';
const LOAD_CPU = TWO_CORES ? str('LOAD_CPU', '0') : '';
const STAMP = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
const OUT = resolve(str('OUT', `/tmp/bowline-perf/mtls-${STAMP}`));
const FIXEDRATE = process.env['FIXEDRATE'] ?? join(process.env['PEERS'] ? dirname(process.env['PEERS']) : join(REPO, '..', 'shared', 'bench'), 'lib', 'fixedrate.js');
const BOWLINE_ARGS = str('BOWLINE_ARGS', '').split(/\s+/).filter(Boolean);
/** The client side's service protocol toward its meshed peer: '' (the default: HTTP/2, requests multiplexed) or http1 (HTTP/1.1 over mTLS). */
const MESH_PROTOCOL = str('MESH_PROTOCOL', '');

// ------------------------------------------------------------------ helpers
/**
 * The interpreter line of dist/bin/bowline.js (env settings and node flags), applied to process.execPath;
 * `argv` ends with bowline.js. The node:tls relay runs with the same interpreter, env and flags.
 */
function bowlineArgv(): { argv: string[]; env: Record<string, string> } {
  const first = readFileSync(BOWLINE, 'utf8').split('\n', 1)[0] ?? '';
  const env: Record<string, string> = {};
  const flags: string[] = [];
  const m = /^#!\S*env -S (.*)$/.exec(first);
  if (m) {
    for (const tok of m[1]!.trim().split(/\s+/)) {
      if (/^[A-Z_][A-Z0-9_]*=/.test(tok)) env[tok.slice(0, tok.indexOf('='))] = tok.slice(tok.indexOf('=') + 1);
      else if (tok !== 'node') flags.push(tok);
    }
  }
  return { argv: [process.execPath, ...flags, BOWLINE], env };
}

function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = net.createServer();
    s.once('error', () => res(false));
    s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
  });
}

function httpGet(port: number, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 2000 }, (r) => {
      let body = '';
      r.on('data', (d: Buffer) => (body += d.toString()));
      r.on('end', () => res({ status: r.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', rej);
  });
}

interface TlsAttempt {
  ok: boolean;
  protocol: string;
  cipher: string;
  /** Everything read until the server closed (the plaintext of the answer). */
  response: string;
  error: string;
}

/** One mTLS connection to a server side, `GET / HTTP/1.0` (what s_time sends), read until close. */
function tlsGet(port: number, o: tls.ConnectionOptions): Promise<TlsAttempt> {
  return new Promise((res) => {
    const s = tls.connect({ host: '127.0.0.1', port, checkServerIdentity: () => undefined, ...o });
    let response = '';
    let error = '';
    let protocol = '';
    let cipher = '';
    const t = setTimeout(() => s.destroy(new Error('timeout')), 3000);
    s.on('secureConnect', () => {
      // Read these now: on Node 20, getProtocol() on a closed TLS socket crashes the process (SIGSEGV).
      protocol = s.getProtocol() ?? '';
      cipher = s.getCipher()?.name ?? '';
      s.write('GET / HTTP/1.0\r\n\r\n');
    });
    s.on('data', (d: Buffer) => (response += d.toString('latin1')));
    s.on('error', (e) => (error = e.message));
    s.on('close', () => {
      clearTimeout(t);
      res({ ok: /^HTTP\/1\.[01] 200 /.test(response) && response.endsWith('\r\n\r\nok'), protocol, cipher, response, error });
    });
  });
}

async function waitFor(what: string, g: Group | undefined, check: () => Promise<boolean>, logFile: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (g && !alive(g)) fail(`${what} exited during startup; last lines of ${logFile}:\n${tail(logFile)}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) fail(`${what} not ready within 20 s; last lines of ${logFile}:\n${tail(logFile)}`);
    await sleep(200);
  }
}

const tail = (file: string, n = 15): string => {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
};

async function scrape(port: number): Promise<string> {
  try {
    const r = await httpGet(port, '/metrics');
    return r.status === 200 ? r.body : '';
  } catch {
    return '';
  }
}

/** Sum of a Prometheus counter over the series whose labels match `labels` (a regex on the label text). */
function counter(text: string, name: string, labels: RegExp = /.*/): number {
  let total = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`, 'gm'))) {
    if (labels.test(m[1] ?? '')) total += Number(m[2]);
  }
  return total;
}

// ------------------------------------------------------------------ topologies
interface Topology {
  name: TopologyName;
  entryPort: number;
  serverPort: number;
  client?: Group;
  server?: Group;
  /** Bytes of a whole answer to `GET / HTTP/1.0` from the server side (checked per s_time connection). */
  hsResponseBytes: number;
}

const topologies: Record<TopologyName, Topology> = {
  bowline: { name: 'bowline', entryPort: PORTS.bowlineClient, serverPort: PORTS.bowlineServer, hsResponseBytes: 0 },
  haproxy: { name: 'haproxy', entryPort: PORTS.haproxyClient, serverPort: PORTS.haproxyServer, hsResponseBytes: 0 },
  relay: { name: 'relay', entryPort: PORTS.relayClient, serverPort: PORTS.relayServer, hsResponseBytes: 0 },
};
/** The topologies of the keep-alive phases (throughput, latency) and of the handshake phase. */
const KEEPALIVE: TopologyName[] = ['bowline', 'haproxy', 'relay'];
const HANDSHAKE: TopologyName[] = ['bowline', 'haproxy'];
let upstream: Group | undefined;
const problems: string[] = [];
const notes: string[] = [];

const sids = (): number[] => [upstream, ...Object.values(topologies).flatMap((t) => [t.client, t.server])].filter((g): g is Group => g !== undefined).map((g) => g.pid);

async function waitQuiet(): Promise<void> {
  const deadline = Date.now() + QUIET_WAIT * 1000;
  for (;;) {
    const a = snap(sids());
    await sleep(1000);
    const other = cpuUse(a, snap(sids())).otherPct;
    if (other < QUIET_MAX) return;
    if (Date.now() >= deadline) {
      log(`   machine not quiet (other processes at ${other.toFixed(0)}% of a core); measuring anyway`);
      return;
    }
    log(`   waiting for quiet: other processes at ${other.toFixed(0)}% of a core`);
  }
}

/** Runs `body` between two CPU snapshots, repeating it (up to RETRIES) when other processes were busy. */
async function measured<T>(label: string, body: () => Promise<T>, prepare?: () => Promise<void>): Promise<{ result: T; cpu: ReturnType<typeof cpuUse>; noisy: boolean }> {
  for (let attempt = 0; ; attempt++) {
    await waitQuiet();
    log(label);
    if (prepare) await prepare();
    const a = snap(sids());
    const result = await body();
    const cpu = cpuUse(a, snap(sids()));
    if (cpu.otherPct <= NOISY_MAX) return { result, cpu, noisy: false };
    if (attempt >= RETRIES) {
      log(`   other processes used ${cpu.otherPct.toFixed(0)}% of a core during the run; kept (flagged noisy)`);
      return { result, cpu, noisy: true };
    }
    log(`   other processes used ${cpu.otherPct.toFixed(0)}% of a core during the run; repeating it`);
  }
}

function checkAlive(t: Topology): void {
  for (const [side, g] of [['client side', t.client], ['server side', t.server]] as const) {
    if (g && !alive(g)) {
      const msg = `${t.name} ${side} (pid ${g.pid}) died; see ${OUT}/logs`;
      if (!problems.includes(msg)) {
        problems.push(msg);
        log(`!! ${msg}`);
      }
    }
  }
}

/**
 * Round r's order: `names` rotated by r - 1, so that each takes each place in turn (drift on a shared
 * machine favours none): with two, A B, then B A, ...; with three, A B C, B C A, C A B, ...
 */
const orderFor = (r: number, names: TopologyName[]): TopologyName[] => {
  const k = (r - 1) % names.length;
  return [...names.slice(k), ...names.slice(0, k)];
};

// ------------------------------------------------------------------ phases
function wrkArgv(port: number, seconds: number): string[] {
  return ['wrk', `-t${WRK_THREADS}`, `-c${CONNS}`, `-d${seconds}s`, '--timeout', '5s', '--latency', `http://127.0.0.1:${port}/`];
}

async function throughput(): Promise<TputRun[]> {
  const runs: TputRun[] = [];
  for (let r = 1; r <= ROUNDS; r++) {
    for (const name of orderFor(r, KEEPALIVE)) {
      const t = topologies[name];
      if (!t.client || !alive(t.client) || !t.server || !alive(t.server)) continue;
      const raw = join(OUT, 'raw', `tput-${name}-r${r}.txt`);
      const { result, cpu, noisy } = await measured(`throughput round ${r}/${ROUNDS}: ${name}`, () => runClient(LOAD_CPU, wrkArgv(t.entryPort, DURATION), (DURATION + 30) * 1000));
      writeFileSync(raw, result.stdout + result.stderr);
      const w = parseWrk(result.stdout);
      if (result.code !== 0) {
        w.errors += 1;
        w.notes.push(`wrk exit ${result.code}${result.timedOut ? ' (timed out)' : ''}`);
      }
      const proxyCpuPct = (cpu.sessionPct.get(t.client.pid) ?? 0) + (cpu.sessionPct.get(t.server.pid) ?? 0);
      runs.push({ topology: name, round: r, noisy, otherPct: cpu.otherPct, errors: w.errors, notes: w.notes, rps: w.rps, p50Ms: w.p50Ms, p99Ms: w.p99Ms, proxyCpuPct });
      checkAlive(t);
    }
  }
  return runs;
}

async function latency(): Promise<LatRun[]> {
  const runs: LatRun[] = [];
  for (let r = 1; r <= LAT_ROUNDS; r++) {
    for (const name of orderFor(r, KEEPALIVE)) {
      const t = topologies[name];
      if (!t.client || !alive(t.client) || !t.server || !alive(t.server)) continue;
      const argv = [process.execPath, FIXEDRATE, '127.0.0.1', String(t.entryPort), String(RATE), String(LAT_DURATION), String(LAT_CONNS), '1'];
      const { result, cpu, noisy } = await measured(`fixed-rate ${RATE} req/s round ${r}/${LAT_ROUNDS}: ${name}`, () => runClient(LOAD_CPU, argv, (LAT_DURATION + 30) * 1000));
      writeFileSync(join(OUT, 'raw', `lat-${name}-r${r}.json`), result.stdout + result.stderr);
      const l = parseFixedRate(result.stdout);
      runs.push({ topology: name, round: r, noisy, otherPct: cpu.otherPct, errors: l.errors, notes: l.notes, achievedRps: l.achievedRps, p50Ms: l.p50Ms, p99Ms: l.p99Ms, p999Ms: l.p999Ms });
      checkAlive(t);
    }
  }
  return runs;
}

async function handshakes(): Promise<HsRun[]> {
  const runs: HsRun[] = [];
  const c = (f: string): string => join(OUT, 'certs', f);
  for (let r = 1; r <= HS_ROUNDS; r++) {
    for (const name of orderFor(r, HANDSHAKE)) {
      const t = topologies[name];
      if (!t.server || !alive(t.server)) continue;
      const argv = ['openssl', 's_time', '-connect', `127.0.0.1:${t.serverPort}`, '-new', '-cert', c('web.crt'), '-key', c('web.key'), '-CAfile', c('client-ca.crt'), '-time', String(HS_DURATION), '-www', '/'];
      const before = name === 'bowline' ? await scrape(PORTS.bowlineServerAdmin) : '';
      let wallS = 0;
      const { result, cpu, noisy } = await measured(
        `handshakes round ${r}/${HS_ROUNDS}: ${name} server side, ${HS_CLIENTS} s_time client(s)`,
        async () => {
          const t0 = process.hrtime.bigint();
          const res = await Promise.all(Array.from({ length: HS_CLIENTS }, () => runClient(LOAD_CPU, argv, (HS_DURATION + 30) * 1000)));
          wallS = Number(process.hrtime.bigint() - t0) / 1e9;
          return res;
        },
        // s_time stops at the first whole second past its start + -time: start every client just after
        // a second boundary, so that they all run the same span.
        () => sleep(1000 - (Date.now() % 1000) + 20),
      );
      writeFileSync(join(OUT, 'raw', `hs-${name}-r${r}.txt`), result.map((x, k) => `--- client ${k} (exit ${x.code})\n${x.stdout}${x.stderr}`).join('\n'));
      let conns = 0;
      let errors = 0;
      const why: string[] = [];
      for (const x of result) {
        const st = parseSTime(x.stdout);
        if (x.code !== 0 || !st) {
          errors += 1;
          why.push(`s_time exit ${x.code}${x.timedOut ? ' (timed out)' : ''}: ${(x.stderr.trim().split('\n').pop() ?? '').slice(0, 80)}`);
        }
        if (!st) continue;
        conns += st.connections;
        const whole = t.hsResponseBytes > 0 ? Math.floor(st.bytesRead / t.hsResponseBytes) : st.connections;
        if (whole < st.connections) {
          errors += st.connections - whole;
          why.push(`${st.connections - whole} connection(s) without a whole response (${st.bytesRead} bytes for ${st.connections} × ${t.hsResponseBytes})`);
        } else if (t.hsResponseBytes > 0 && st.bytesRead !== st.connections * t.hsResponseBytes) {
          errors += 1;
          why.push(`bytes read ${st.bytesRead} ≠ ${st.connections} × ${t.hsResponseBytes}`);
        }
      }
      if (name === 'bowline') {
        const after = await scrape(PORTS.bowlineServerAdmin);
        const failed = counter(after, 'tls_handshakes_total', /result="failed"/) - counter(before, 'tls_handshakes_total', /result="failed"/);
        if (failed > 0) {
          why.push(`Bowline counted ${failed} failed handshake(s)`);
          if (errors === 0) errors = failed;
        }
      }
      runs.push({ topology: name, round: r, noisy, otherPct: cpu.otherPct, errors, notes: why, handshakes: conns, perSec: conns / wallS, serverCpuPct: cpu.sessionPct.get(t.server.pid) ?? 0, clientCpuPct: cpu.clientPct });
      checkAlive(t);
    }
  }
  return runs;
}

// ------------------------------------------------------------------ main
async function main(): Promise<void> {
  for (const c of ['wrk', 'haproxy', 'nginx', 'openssl', ...(TWO_CORES ? ['taskset'] : [])]) {
    if (spawnSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' }).status !== 0) fail(`${c} missing (perf/run.sh installs it)`);
  }
  try {
    statSync(BOWLINE);
  } catch {
    fail(`${BOWLINE} missing: run npm run build`);
  }
  for (const [k, p] of Object.entries(PORTS)) if (!(await portFree(p))) fail(`port ${p} (${k}) is in use (ss -tlnp shows by whom)`);
  mkdirSync(join(OUT, 'logs'), { recursive: true });
  mkdirSync(join(OUT, 'raw'), { recursive: true });

  log(`issuing certificates with Bowline's CA into ${OUT}/certs`);
  const ids = await writeBenchCerts(join(OUT, 'certs'));
  const files = writeConfigs(OUT, join(OUT, 'certs'), ids.api, PORTS, MESH_PROTOCOL);
  const logf = (n: string): string => join(OUT, 'logs', `${n}.log`);

  upstream = startGroup('upstream', LOAD_CPU, ['nginx', '-p', `${OUT}/`, '-e', logf('upstream-nginx-error'), '-c', files.upstream], logf('upstream'));
  const bl = bowlineArgv();
  const blArgs = (cfg: string, admin: number): string[] => [...bl.argv, 'proxy', '--config', cfg, '--workers', '1', '--admin', `127.0.0.1:${admin}`, ...BOWLINE_ARGS];
  topologies.bowline.server = startGroup('bowline-server', PROXY_CPU, blArgs(files.bowlineServer, PORTS.bowlineServerAdmin), logf('bowline-server'), bl.env);
  topologies.bowline.client = startGroup('bowline-client', PROXY_CPU, blArgs(files.bowlineClient, PORTS.bowlineClientAdmin), logf('bowline-client'), bl.env);
  topologies.haproxy.server = startGroup('haproxy-server', PROXY_CPU, ['haproxy', '-db', '-f', files.haproxyServer], logf('haproxy-server'));
  topologies.haproxy.client = startGroup('haproxy-client', PROXY_CPU, ['haproxy', '-db', '-f', files.haproxyClient], logf('haproxy-client'));
  // The reference: node:tls relays with Bowline's interpreter line (same node, flags and env).
  const relayArgv = [...bl.argv.slice(0, -1), RELAY];
  const certDir = join(OUT, 'certs');
  topologies.relay.server = startGroup('relay-server', PROXY_CPU, [...relayArgv, 'server', String(PORTS.relayServer), String(PORTS.upstream), certDir], logf('relay-server'), bl.env);
  topologies.relay.client = startGroup('relay-client', PROXY_CPU, [...relayArgv, 'client', String(PORTS.relayClient), String(PORTS.relayServer), certDir, ids.api], logf('relay-client'), bl.env);
  log(`started upstream nginx (cpu ${LOAD_CPU || 'any'}), Bowline, HAProxy and node:tls relay client and server sides (cpu ${PROXY_CPU || 'any'})`);

  const okGet = async (port: number): Promise<boolean> => {
    const r = await httpGet(port);
    return r.status === 200 && r.body === 'ok';
  };
  const certs = (f: string): string => readFileSync(join(OUT, 'certs', f), 'utf8');
  const mesh = { cert: certs('web.crt'), key: certs('web.key'), ca: certs('bundle.crt'), minVersion: 'TLSv1.3' as const };
  await waitFor('upstream nginx', upstream, () => okGet(PORTS.upstream), logf('upstream'));
  const setup: string[] = [];
  for (const t of Object.values(topologies)) {
    await waitFor(`${t.name} server side`, t.server, async () => (await tlsGet(t.serverPort, mesh)).ok, logf(`${t.name}-server`));
    await waitFor(`${t.name} client side`, t.client, () => okGet(t.entryPort), logf(`${t.name}-client`));
    // The server sides must be equally strict: TLS 1.3 only, a client certificate required.
    const good = await tlsGet(t.serverPort, mesh);
    const noCert = await tlsGet(t.serverPort, { ca: mesh.ca });
    const tls12 = await tlsGet(t.serverPort, { ...mesh, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' });
    t.hsResponseBytes = Buffer.byteLength(good.response, 'latin1');
    setup.push(`${t.name} server side: ${good.protocol} ${good.cipher} with the client certificate; without one ${noCert.ok ? 'ACCEPTED' : 'refused'}; TLS 1.2 ${tls12.ok ? 'ACCEPTED' : 'refused'}; answer to GET / HTTP/1.0 ${t.hsResponseBytes} bytes`);
    if (good.protocol !== 'TLSv1.3') problems.push(`${t.name} server side negotiated ${good.protocol}, not TLSv1.3`);
    if (noCert.ok) problems.push(`${t.name} server side answered a client without a certificate`);
    if (tls12.ok) problems.push(`${t.name} server side answered over TLS 1.2`);
  }
  // The Bowline hop must really be mTLS: its server side counts the client side's handshakes.
  const afterChecks = await scrape(PORTS.bowlineServerAdmin);
  const hs0 = counter(afterChecks, 'tls_handshakes_total', /result="ok"/);
  if (!(hs0 >= 2)) problems.push(`Bowline server side counted ${hs0} TLS handshakes after the checks (expected the client side's and the check's)`);
  // The refused attempts above (no certificate, TLS 1.2) are counted as failed: not errors of the run.
  const checkFailures = counter(afterChecks, 'tls_handshakes_total', /result="failed"/);

  const versions = [
    `node ${process.version}`,
    (spawnSync('haproxy', ['-v'], { encoding: 'utf8' }).stdout.split('\n')[0] ?? '').split(' ').slice(0, 3).join(' '),
    spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim().replace('nginx version: ', ''),
    spawnSync('openssl', ['version'], { encoding: 'utf8' }).stdout.trim(),
    `Node's OpenSSL ${process.versions.openssl}`,
  ].join('; ');
  const header = [
    `### Bowline vs HAProxy with mutual TLS on the mesh hop — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    '```',
    `rounds=${ROUNDS} duration=${DURATION}s conns=${CONNS} wrk_threads=${WRK_THREADS} warmup=${WARMUP}s; lat=${LAT ? 1 : 0} rate=${RATE} lat_duration=${LAT_DURATION}s lat_rounds=${LAT_ROUNDS} lat_conns=${LAT_CONNS}; hs=${HS ? 1 : 0} hs_duration=${HS_DURATION}s hs_rounds=${HS_ROUNDS} hs_clients=${HS_CLIENTS}`,
    `layout: both proxies of a topology on cpu ${PROXY_CPU || 'any'}; wrk, fixedrate, s_time and the upstream nginx on cpu ${LOAD_CPU || 'any'}; Bowline --workers 1, HAProxy nbthread 1 (one process per side); reference: node:tls relay pair (no HTTP, one process per side, Bowline's node flags), throughput and latency only`,
    `identities: client side ${ids.web}, server side ${ids.api} (ECDSA P-256, issued by Bowline's CA; the same files for both)`,
    ...setup,
    `host: ${cpus().length} cpus, ${cpus()[0]?.model ?? '?'}; ${versions}`,
    '```',
  ];
  if (problems.length) log(`!! setup checks: ${problems.join('; ')}`);

  if (WARMUP > 0 && TPUT) {
    log(`warm-up ${WARMUP}s each`);
    for (const name of orderFor(1, KEEPALIVE)) {
      const res = await runClient(LOAD_CPU, wrkArgv(topologies[name].entryPort, WARMUP), (WARMUP + 30) * 1000);
      writeFileSync(join(OUT, 'raw', `warmup-${name}.txt`), res.stdout + res.stderr);
    }
  }
  const tput = TPUT ? await throughput() : [];
  let lat: LatRun[] = [];
  if (LAT) {
    try {
      statSync(FIXEDRATE);
      lat = await latency();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      notes.push(`latency phase skipped: ${FIXEDRATE} (the shared harness's fixed-rate client) not found; PEERS=/path/to/peers.sh or FIXEDRATE=/path/to/fixedrate.js`);
    }
  }
  // Peak RSS over the keep-alive phases, before the handshake phase's connection churn on the server sides.
  const rss = (): Partial<Record<TopologyName, Rss>> => {
    const r: Partial<Record<TopologyName, Rss>> = {};
    for (const t of Object.values(topologies)) {
      if (t.client && t.server && alive(t.client) && alive(t.server)) r[t.name] = { clientKib: sessionPeakRssKib(t.client.pid), serverKib: sessionPeakRssKib(t.server.pid) };
    }
    return r;
  };
  const rssKeepAlive = rss();
  const hs = HS ? await handshakes() : [];
  const rssEnd = rss();

  // What the proxies say about themselves, after all phases.
  const mc = await scrape(PORTS.bowlineClientAdmin);
  const ms = await scrape(PORTS.bowlineServerAdmin);
  writeFileSync(join(OUT, 'bowline-client-metrics.prom'), mc);
  writeFileSync(join(OUT, 'bowline-server-metrics.prom'), ms);
  if (mc && ms) {
    const non2xx = (t: string): number => counter(t, 'response_total', /status_code="[^2]/);
    const line =
      `Bowline's own counters: client side ${counter(mc, 'response_total').toLocaleString('en-US')} responses (${non2xx(mc)} non-2xx), ${counter(mc, 'response_errors_total')} proxy errors, ${counter(mc, 'internal_errors_total')} internal errors; ` +
      `server side ${counter(ms, 'response_total').toLocaleString('en-US')} responses (${non2xx(ms)} non-2xx), TLS handshakes ${counter(ms, 'tls_handshakes_total', /result="ok"/).toLocaleString('en-US')} ok / ` +
      `${counter(ms, 'tls_handshakes_total', /result="failed"/) - checkFailures} failed (not counting the ${checkFailures} refusals the setup checks asked for), ${counter(ms, 'internal_errors_total')} internal errors`;
    notes.push(line);
    const bad =
      counter(mc, 'response_errors_total') + counter(mc, 'internal_errors_total') + counter(ms, 'internal_errors_total') + non2xx(mc) + non2xx(ms) + counter(ms, 'tls_handshakes_total', /result="failed"/) - checkFailures;
    if (bad > 0) problems.push(`Bowline's counters show errors (${OUT}/bowline-*-metrics.prom): ${line}`);
  } else {
    notes.push('Bowline admin /metrics could not be read at the end');
  }
  for (const n of ['bowline-client', 'bowline-server', 'haproxy-client', 'haproxy-server', 'relay-client', 'relay-server']) {
    const lines = tail(logf(n), 400)
      .split('\n')
      .filter((l) => /error|warn|alert|exception/i.test(l));
    if (lines.length) notes.push(`${n} logged ${lines.length} warning/error line(s), first: \`${lines[0]!.slice(0, 160)}\` (${logf(n)})`);
  }

  const report = buildReport({
    header,
    order: ['haproxy', 'bowline', 'relay'],
    tput,
    lat,
    hs,
    rssKeepAlive,
    rssEnd,
    tputTitle: `wrk -t${WRK_THREADS} -c${CONNS} --latency over keep-alive connections into the client side, ${ROUNDS} rotating round(s) × ${DURATION} s, medians. Paired = median over rounds of (Bowline ÷ HAProxy in the same round). The node:tls relay row is a reference (bytes relayed, no HTTP): the ceiling of node:tls in this layout.`,
    latTitle: `${RATE} req/s over ${LAT_CONNS} keep-alive connections (fixedrate.js, uniform schedule), ${LAT_ROUNDS} round(s) × ${LAT_DURATION} s, medians; end to end through both sides.`,
    hsTitle: `new connections straight to the server side: \`openssl s_time -new -www /\` × ${HS_CLIENTS} on cpu ${LOAD_CPU || 'any'}, a full TLS 1.3 handshake with the client certificate and one HTTP/1.0 GET each (answered by the upstream), ${HS_ROUNDS} round(s) × ~${HS_DURATION} s. When the server's CPU is below 100 % the clients were the limit: compare per server core then.`,
    notes,
    problems,
  });
  writeFileSync(join(OUT, 'summary.md'), `${report.text}\n`);
  process.stdout.write(`\n${report.text}\n\n`);
  log(`results in ${OUT} (summary.md, raw/, logs/, conf/, certs/)`);
  await stopAll();
  process.exitCode = report.errors > 0 ? 3 : 0;
}

process.on('exit', killAllNow);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    log(`${sig}: stopping everything this run started`);
    killAllNow();
    process.exit(130);
  });
}
main().catch((e: unknown) => fail(e instanceof Error ? (e.stack ?? e.message) : String(e)));
