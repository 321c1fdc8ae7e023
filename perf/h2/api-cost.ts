// What node:http2's compatibility layer (req/res objects, like node:http) costs against its core
// session API (streams and header objects), measured before Bowline's HTTP/2 path picks one (issue 6).
// Two scenarios, each API in its own process pinned to one core, h2load on the other, rounds
// alternating between the APIs: a server answering a small body, and a forwarder (h2c in, h2c out
// to one upstream session) in front of a core-API upstream.
//
//   node dist/perf/h2/api-cost.js [--duration S] [--rounds N] [--clients C] [--streams M]
//   node dist/perf/h2/api-cost.js serve <server|forward> <core|compat> PORT [UPSTREAM_PORT]   (internal)

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as http2 from 'node:http2';
import { parseArgs } from 'node:util';
import { freePort } from '../lib/free-port';

const BODY = Buffer.alloc(128, 'x');
const { HTTP2_HEADER_STATUS, HTTP2_HEADER_CONTENT_TYPE, HTTP2_HEADER_METHOD, HTTP2_HEADER_PATH } = http2.constants;

/** The server or forwarder, in this process (run as a child of the benchmark). */
function serve(role: string, api: string, port: number, upstreamPort: number): void {
  let upstream: http2.ClientHttp2Session | null = null;
  const session = (): http2.ClientHttp2Session => {
    if (upstream === null || upstream.destroyed || upstream.closed) upstream = http2.connect(`http://127.0.0.1:${upstreamPort}`);
    return upstream;
  };
  const forwardCore = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void => {
    const up = session().request({ [HTTP2_HEADER_METHOD]: headers[HTTP2_HEADER_METHOD], [HTTP2_HEADER_PATH]: headers[HTTP2_HEADER_PATH] });
    up.on('response', (h) => {
      stream.respond({ [HTTP2_HEADER_STATUS]: h[HTTP2_HEADER_STATUS], [HTTP2_HEADER_CONTENT_TYPE]: h[HTTP2_HEADER_CONTENT_TYPE] });
      up.pipe(stream);
    });
    up.on('error', () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
    // A client that goes away (h2load ending a run) cancels the upstream stream too, or the
    // upstream session fills up with streams nobody reads.
    stream.on('close', () => {
      if (!up.closed) up.close(http2.constants.NGHTTP2_CANCEL);
    });
    stream.pipe(up);
  };
  let server: http2.Http2Server;
  if (api === 'core') {
    server = http2.createServer();
    server.on('stream', (stream, headers) => {
      stream.on('error', () => {});
      if (role === 'server') {
        stream.respond({ [HTTP2_HEADER_STATUS]: 200, [HTTP2_HEADER_CONTENT_TYPE]: 'text/plain' });
        stream.end(BODY);
      } else forwardCore(stream, headers);
    });
  } else {
    server = http2.createServer((req, res) => {
      if (role === 'server') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(BODY);
        return;
      }
      const up = session().request({ [HTTP2_HEADER_METHOD]: req.method, [HTTP2_HEADER_PATH]: req.url });
      up.on('response', (h) => {
        res.writeHead(Number(h[HTTP2_HEADER_STATUS]), { 'content-type': String(h[HTTP2_HEADER_CONTENT_TYPE] ?? '') });
        up.pipe(res);
      });
      up.on('error', () => res.destroy());
      res.on('close', () => {
        if (!up.closed) up.close(http2.constants.NGHTTP2_CANCEL);
      });
      req.pipe(up);
    });
  }
  server.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
}

function start(args: string[], cpu: string): Promise<ChildProcess> {
  const child = spawn('taskset', ['-c', cpu, process.execPath, __filename, 'serve', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', () => resolve(child));
    child.once('exit', (c) => reject(new Error(`${args.join(' ')} exited (${c})`)));
  });
}

function h2load(port: number, o: { duration: number; clients: number; streams: number }, cpu: string): { rps: number; failed: number } {
  const r = spawnSync('taskset', ['-c', cpu, 'h2load', '-D', String(o.duration), '-c', String(o.clients), '-m', String(o.streams), '-t', '1', `http://127.0.0.1:${port}/`], { encoding: 'utf8' });
  const rps = Number(/finished in [^,]+, ([\d.]+) req\/s/.exec(r.stdout)?.[1] ?? NaN);
  const failed = Number(/(\d+) failed/.exec(r.stdout)?.[1] ?? NaN);
  if (!Number.isFinite(rps)) throw new Error(`h2load output not understood:\n${r.stdout}\n${r.stderr}`);
  return { rps, failed };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === 'serve') return serve(argv[1]!, argv[2]!, Number(argv[3]), Number(argv[4] ?? 0));
  const { values } = parseArgs({ args: argv, options: { duration: { type: 'string', default: '5' }, rounds: { type: 'string', default: '3' }, clients: { type: 'string', default: '10' }, streams: { type: 'string', default: '20' } } });
  const o = { duration: Number(values.duration), clients: Number(values.clients), streams: Number(values.streams) };
  const rounds = Number(values.rounds);
  if (spawnSync('h2load', ['--version']).status !== 0) throw new Error('h2load is not installed (Debian package nghttp2-client)');
  // Two cores: the measured process on cpu 1; h2load (and the forwarders' upstream) on cpu 0.
  const two = spawnSync('nproc', { encoding: 'utf8' }).stdout.trim() !== '1';
  const [measured, load] = two ? ['1', '0'] : ['0', '0'];
  const upstreamPort = await freePort();
  const upstream = await start(['server', 'core', String(upstreamPort)], load);
  const rows: { scenario: string; api: string; rps: number[]; failed: number }[] = [];
  const children: ChildProcess[] = [upstream];
  try {
    for (const scenario of ['server', 'forward']) {
      const procs: Record<string, { port: number }> = {};
      for (const api of ['core', 'compat']) {
        const port = await freePort();
        children.push(await start([scenario, api, String(port), String(upstreamPort)], measured));
        procs[api] = { port };
        rows.push({ scenario, api, rps: [], failed: 0 });
      }
      for (let r = 0; r < rounds; r++) {
        for (const api of r % 2 === 0 ? ['core', 'compat'] : ['compat', 'core']) {
          const res = h2load(procs[api]!.port, o, load);
          const row = rows.find((x) => x.scenario === scenario && x.api === api)!;
          row.rps.push(res.rps);
          // A round with no answer at all (a stalled process) counts as failed, not as a slow round.
          row.failed += res.failed + (res.rps === 0 ? 1 : 0);
          process.stderr.write(`[h2 api] ${scenario} ${api} round ${r + 1}: ${Math.round(res.rps)} req/s\n`);
        }
      }
    }
  } finally {
    for (const c of children) c.kill();
  }
  const out: string[] = [
    `### node:http2 core session API vs compatibility layer — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `h2load -c ${o.clients} -m ${o.streams} -D ${o.duration} (one thread, cpu ${load}); measured process on cpu ${measured}; ${rounds} alternating rounds, medians; node ${process.version}`,
    '',
    '| scenario | API | req/s (median) | min-max | core / compat | failed |',
    '|---|---|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const core = median(rows.find((x) => x.scenario === r.scenario && x.api === 'core')!.rps);
    out.push(`| ${r.scenario === 'server' ? 'server, 128-byte body' : 'forwarder h2c -> h2c'} | ${r.api} | ${Math.round(median(r.rps)).toLocaleString('en-US')} | ${Math.round(Math.min(...r.rps)).toLocaleString('en-US')}-${Math.round(Math.max(...r.rps)).toLocaleString('en-US')} | ${r.api === 'compat' ? `${(core / median(r.rps)).toFixed(2)}x` : ''} | ${r.failed} |`);
  }
  process.stdout.write(`${out.join('\n')}\n`);
  if (rows.some((r) => r.failed > 0)) process.exitCode = 3;
}

main().catch((e: Error) => {
  process.stderr.write(`${e.stack ?? e.message}\n`);
  process.exit(1);
});
