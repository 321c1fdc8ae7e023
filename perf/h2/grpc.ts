// gRPC unary through Bowline, beside HAProxy (HTTP/2 both sides) and the server direct, in one run:
// a @grpc/grpc-js echo server on the load core, each proxy alone on the other, and h2load sending
// gRPC-framed unary calls (POST, application/grpc, te: trailers, one length-prefixed message) in
// rounds that rotate the order. Every answer is checked for grpc-status 0 in its trailers (h2load
// only sees HTTP status; a sample of calls goes through grpc-js itself before and after).
//
//   node dist/perf/h2/grpc.js [--duration S] [--rounds N] [--clients C] [--streams M] [--bytes B]
//   node dist/perf/h2/grpc.js serve PORT     (internal: the gRPC server)

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from '../lib/free-port';
import * as grpc from '@grpc/grpc-js';

const ECHO: grpc.MethodDefinition<Buffer, Buffer> = {
  path: '/bench.Echo/Unary',
  requestStream: false,
  responseStream: false,
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
};

function serve(port: number): void {
  const server = new grpc.Server();
  server.addService({ unary: ECHO }, { unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request) });
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e) => {
    if (e) throw e;
    process.stdout.write('ready\n');
  });
}

async function waitPort(port: number, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const c = net.connect(port, '127.0.0.1', () => {
        c.destroy();
        r(true);
      });
      c.on('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function start(cmd: string, args: string[], cpu: string): ChildProcess {
  const c = spawn('taskset', ['-c', cpu, cmd, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  c.stdout!.resume();
  return c;
}

/** One unary call through grpc-js: the path answers gRPC correctly, not just HTTP 200. */
function check(port: number, msg: Buffer): Promise<void> {
  const Client = grpc.makeGenericClientConstructor({ unary: ECHO }, 'Echo');
  const c = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & { unary: (r: Buffer, cb: (e: grpc.ServiceError | null, r?: Buffer) => void) => void };
  return new Promise((res, rej) =>
    c.unary(msg, (e, r) => {
      c.close();
      if (e) rej(new Error(`grpc call on ${port}: ${e.message}`));
      else if (!r!.equals(msg)) rej(new Error(`grpc call on ${port}: wrong answer`));
      else res();
    }),
  );
}

function h2load(port: number, o: { duration: number; clients: number; streams: number }, body: string, cpu: string): { rps: number; failed: number; errored: number } {
  const r = spawnSync('taskset', ['-c', cpu, 'h2load', '-D', String(o.duration), '-c', String(o.clients), '-m', String(o.streams), '-t', '1', '-d', body, '-H', 'content-type: application/grpc', '-H', 'te: trailers', `http://127.0.0.1:${port}${ECHO.path}`], { encoding: 'utf8' });
  const rps = Number(/finished in [^,]+, ([\d.]+) req\/s/.exec(r.stdout)?.[1] ?? NaN);
  const failed = Number(/(\d+) failed/.exec(r.stdout)?.[1] ?? NaN);
  const errored = Number(/(\d+) errored/.exec(r.stdout)?.[1] ?? NaN);
  if (!Number.isFinite(rps) || !Number.isFinite(failed) || !Number.isFinite(errored)) throw new Error(`h2load output not understood:\n${r.stdout}\n${r.stderr}`);
  return { rps, failed, errored };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === 'serve') return serve(Number(argv[1]));
  const { values } = parseArgs({ args: argv, options: { duration: { type: 'string', default: '5' }, rounds: { type: 'string', default: '3' }, clients: { type: 'string', default: '10' }, streams: { type: 'string', default: '10' }, bytes: { type: 'string', default: '64' } } });
  const o = { duration: Number(values.duration), clients: Number(values.clients), streams: Number(values.streams) };
  const rounds = Number(values.rounds);
  for (const tool of ['h2load', 'haproxy']) if (spawnSync(tool, tool === 'haproxy' ? ['-v'] : ['--version']).status !== 0) throw new Error(`${tool} is not installed`);
  const two = spawnSync('nproc', { encoding: 'utf8' }).stdout.trim() !== '1';
  const [proxyCpu, loadCpu] = two ? ['1', '0'] : ['0', '0'];
  const dir = mkdtempSync(join(tmpdir(), 'bowline-grpc-bench-'));
  const msg = Buffer.alloc(Number(values.bytes), 'g');
  const frame = Buffer.alloc(5 + msg.length);
  frame.writeUInt32BE(msg.length, 1);
  msg.copy(frame, 5);
  const body = join(dir, 'call.bin');
  writeFileSync(body, frame);
  const children: ChildProcess[] = [];
  try {
    const serverPort = await freePort();
    children.push(start(process.execPath, [__filename, 'serve', String(serverPort)], loadCpu));
    await waitPort(serverPort);
    const bowlinePort = await freePort();
    const bowline = resolve(__dirname, '../../bin/bowline.js');
    children.push(start(process.execPath, ['--max-semi-space-size=1', bowline, 'proxy', '--listen', `127.0.0.1:${bowlinePort}`, '--to', `127.0.0.1:${serverPort}`, '--workers', '1', '--admin', '127.0.0.1:0'], proxyCpu));
    const haproxyPort = await freePort();
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(cfg, `global\n  nbthread 1\n  maxconn 8000\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\nfrontend fe\n  bind 127.0.0.1:${haproxyPort} proto h2\n  default_backend be\nbackend be\n  server s1 127.0.0.1:${serverPort} proto h2\n`);
    children.push(start('haproxy', ['-db', '-f', cfg], proxyCpu));
    await waitPort(bowlinePort);
    await waitPort(haproxyPort);
    const targets: Record<string, number> = { direct: serverPort, bowline: bowlinePort, haproxy: haproxyPort };
    for (const p of Object.values(targets)) await check(p, msg);
    const rows: Record<string, number[]> = { direct: [], haproxy: [], bowline: [] };
    let bad = 0;
    const names = Object.keys(rows);
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < names.length; i++) {
        const name = names[(i + r) % names.length]!;
        const res = h2load(targets[name]!, o, body, loadCpu);
        rows[name]!.push(res.rps);
        bad += res.failed + res.errored;
        process.stderr.write(`[grpc] round ${r + 1}: ${name} ${Math.round(res.rps)} calls/s${res.failed + res.errored > 0 ? ` (${res.failed} failed, ${res.errored} errored)` : ''}\n`);
      }
    }
    for (const p of Object.values(targets)) await check(p, msg);
    const ha = median(rows['haproxy']!);
    const direct = median(rows['direct']!);
    const out = [
      `### gRPC unary (h2load, gRPC framing) — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
      '',
      `h2load -c ${o.clients} -m ${o.streams} -D ${o.duration}, ${msg.length}-byte messages, one thread on cpu ${loadCpu} with the grpc-js server; each proxy alone on cpu ${proxyCpu} (1 worker / 1 thread); ${rounds} rotating rounds, medians; node ${process.version}`,
      '',
      '| target | calls/s (median) | min-max | vs direct | vs HAProxy |',
      '|---|---:|---:|---:|---:|',
      ...names.map((n) => {
        const xs = rows[n]!;
        return `| ${n} | ${Math.round(median(xs)).toLocaleString('en-US')} | ${Math.round(Math.min(...xs)).toLocaleString('en-US')}-${Math.round(Math.max(...xs)).toLocaleString('en-US')} | ${(median(xs) / direct).toFixed(2)}x | ${(median(xs) / ha).toFixed(2)}x |`;
      }),
      '',
      `Failed or errored calls: ${bad}. grpc-js calls through each target before and after: OK.`,
    ];
    process.stdout.write(`${out.join('\n')}\n`);
    if (bad > 0) process.exitCode = 3;
  } finally {
    for (const c of children) c.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  process.stderr.write(`${e.stack ?? e.message}\n`);
  process.exit(1);
});
