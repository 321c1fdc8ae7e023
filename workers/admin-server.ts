// The admin listener (default 127.0.0.1:4191) on the main thread: /metrics (Prometheus text, merged
// across workers), /ready, /live and /config_dump. It reads requests with the engine's own strict
// HTTP/1 head parser over node:net and answers each on its own connection (connection: close).
// Neither node:http nor uWebSockets.js is loaded for it: measured, they add 2.5 MB and 2 MB of RSS
// to a proxy whose whole budget is 56 MB (perf/README.md), for a port scraped every few seconds.

import * as net from 'node:net';
import { HeadInfo, NEED_MORE, PARSE_ERROR, parseHead } from '../engine';

export interface AdminHandlers {
  metrics(): Promise<string>;
  ready(): boolean;
  configDump(): unknown;
  /** Test hook: crash worker N (only when enabled). */
  crashWorker?(index: number): boolean;
}

export interface AdminServer {
  port: number;
  close(): void;
}

const MAX_HEAD = 16 * 1024;
const REQUEST_TIMEOUT_MS = 10_000;
const REASONS: Record<number, string> = { 200: 'OK', 202: 'Accepted', 400: 'Bad Request', 404: 'Not Found', 405: 'Method Not Allowed', 500: 'Internal Server Error', 503: 'Service Unavailable' };

interface AdminResponse {
  status: number;
  body: string;
  type?: string;
}

function respond(sock: net.Socket, r: AdminResponse, head: boolean): void {
  const body = Buffer.from(r.body);
  sock.end(
    Buffer.concat([
      Buffer.from(
        `HTTP/1.1 ${r.status} ${REASONS[r.status] ?? ''}\r\ncontent-type: ${r.type ?? 'text/plain; charset=utf-8'}\r\n` +
          `content-length: ${body.length}\r\nconnection: close\r\n\r\n`,
        'latin1',
      ),
      head ? Buffer.alloc(0) : body,
    ]),
  );
}

async function route(method: string, target: string, h: AdminHandlers): Promise<AdminResponse> {
  const url = new URL(target, 'http://admin');
  const get = method === 'GET' || method === 'HEAD';
  switch (url.pathname) {
    case '/metrics':
      if (!get) break;
      return { status: 200, body: await h.metrics(), type: 'text/plain; version=0.0.4; charset=utf-8' };
    case '/ready':
      if (!get) break;
      return h.ready() ? { status: 200, body: 'ready\n' } : { status: 503, body: 'not ready\n' };
    case '/live':
      if (!get) break;
      return { status: 200, body: 'live\n' };
    case '/config_dump':
      if (!get) break;
      return { status: 200, body: JSON.stringify(h.configDump(), null, 2) + '\n', type: 'application/json' };
    case '/debug/crash': {
      if (method !== 'POST' || h.crashWorker === undefined) break;
      const n = Number(url.searchParams.get('worker') ?? '0');
      return h.crashWorker(n) ? { status: 202, body: `crashing worker ${n}\n` } : { status: 404, body: 'no such worker\n' };
    }
    default:
      return { status: 404, body: 'not found: try /metrics, /ready, /live, /config_dump\n' };
  }
  return { status: 405, body: `${method} not allowed on ${url.pathname}\n` };
}

export function startAdminServer(host: string, port: number, h: AdminHandlers): Promise<AdminServer> {
  const server = net.createServer((sock) => {
    let buf: Buffer | null = null;
    const head = new HeadInfo();
    head.reset(0);
    sock.setTimeout(REQUEST_TIMEOUT_MS, () => sock.destroy());
    sock.on('error', () => sock.destroy());
    sock.on('data', (d: Buffer) => {
      buf = buf === null ? d : Buffer.concat([buf, d]);
      const end = parseHead(buf, head, true, MAX_HEAD);
      if (end === NEED_MORE) return;
      sock.removeAllListeners('data');
      sock.pause();
      if (end === PARSE_ERROR) {
        respond(sock, { status: 400, body: 'bad request\n' }, false);
        return;
      }
      const b = head.base;
      const method = buf.toString('latin1', b, b + head.methodEnd);
      const target = buf.toString('latin1', b + head.targetStart, b + head.targetEnd);
      route(method, target, h).then(
        (r) => respond(sock, r, method === 'HEAD'),
        (e: Error) => respond(sock, { status: 500, body: `admin: ${e.message}\n` }, false),
      );
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e) => reject(new Error(`admin server cannot listen on ${host}:${port}: ${e.message}`)));
    server.listen(port, host, () => {
      const a = server.address();
      resolve({ port: typeof a === 'object' && a !== null ? a.port : port, close: () => server.close() });
    });
  });
}
