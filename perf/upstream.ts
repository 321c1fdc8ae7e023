// A fast benchmark upstream: answers every request with 200 and the fixed 2-byte body "ok" over
// keep-alive, on uWebSockets.js by default or on node:http with --node (the baseline it is compared with).
//
//   node dist/perf/upstream.js [--port 18300] [--host 127.0.0.1] [--node]
//
// Prints one line "upstream <impl> listening on HOST:PORT" when ready; exits on SIGTERM/SIGINT.

import * as http from 'node:http';
import { parseArgs } from 'node:util';
import type * as Uws from 'uWebSockets.js';

const BODY = 'ok';

interface Running {
  impl: string;
  port: number;
  close(): void;
}

function startNodeHttp(host: string, port: number): Promise<Running> {
  const body = Buffer.from(BODY, 'latin1');
  const server = http.createServer((req, res) => {
    // Drain any request body, then answer; keep-alive is node:http's default for HTTP/1.1.
    if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) req.resume();
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
    res.end(body);
  });
  server.keepAliveTimeout = 60_000;
  server.headersTimeout = 65_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, backlog: 4096 }, () => {
      const a = server.address();
      resolve({ impl: 'node:http', port: typeof a === 'object' && a !== null ? a.port : port, close: () => server.close() });
    });
  });
}

function startUws(uws: typeof Uws, host: string, port: number): Promise<Running> {
  const app = uws.App();
  app.any('/*', (res) => {
    // The handler runs corked: status, header and body go out in one write.
    res.writeStatus('200 OK').writeHeader('Content-Type', 'text/plain').end(BODY);
  });
  return new Promise((resolve, reject) => {
    app.listen(host, port, (ls) => {
      if (ls === false) {
        reject(new Error(`uWebSockets.js could not listen on ${host}:${port}`));
        return;
      }
      resolve({ impl: 'uWebSockets.js', port: uws.us_socket_local_port(ls as unknown as Uws.us_socket), close: () => uws.us_listen_socket_close(ls) });
    });
  });
}

function loadUws(): typeof Uws | null {
  try {
    return require('uWebSockets.js') as typeof Uws;
  } catch (e) {
    process.stderr.write(`upstream: uWebSockets.js unavailable (${(e as Error).message.split('\n')[0]}); using node:http\n`);
    return null;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: process.env.LISTEN_PORT ?? '18300' },
      host: { type: 'string', default: '127.0.0.1' },
      node: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const host = values.host!;
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad --port ${values.port}`);
  const uws = values.node ? null : loadUws();
  const running = uws === null ? await startNodeHttp(host, port) : await startUws(uws, host, port);
  process.stdout.write(`upstream ${running.impl} listening on ${host}:${running.port}\n`);
  const stop = (): void => {
    running.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e: unknown) => {
  process.stderr.write(`upstream: ${(e as Error).message}\n`);
  process.exit(1);
});
