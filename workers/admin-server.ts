// The admin listener (default 127.0.0.1:4191) on the main thread: /metrics (Prometheus text, merged
// across workers), /ready, /live and /config_dump. node:http serves it: the admin port carries a
// scrape every few seconds, and uWebSockets.js here measurably cost RSS (about 2 MB of the 56 MB
// budget, see perf/README.md) for no gain that matters at that rate.

import * as http from 'node:http';

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

export function startAdminServer(host: string, port: number, h: AdminHandlers): Promise<AdminServer> {
  const send = (res: http.ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void => {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const get = req.method === 'GET' || req.method === 'HEAD';
    if (get && url.pathname === '/metrics') {
      h.metrics().then(
        (body) => send(res, 200, body, 'text/plain; version=0.0.4; charset=utf-8'),
        (e: Error) => send(res, 500, `metrics failed: ${e.message}\n`),
      );
    } else if (get && url.pathname === '/ready') {
      if (h.ready()) send(res, 200, 'ready\n');
      else send(res, 503, 'not ready\n');
    } else if (get && url.pathname === '/live') {
      send(res, 200, 'live\n');
    } else if (get && url.pathname === '/config_dump') {
      send(res, 200, JSON.stringify(h.configDump(), null, 2) + '\n', 'application/json');
    } else if (req.method === 'POST' && url.pathname === '/debug/crash' && h.crashWorker !== undefined) {
      const n = Number(url.searchParams.get('worker') ?? '0');
      if (h.crashWorker(n)) send(res, 202, `crashing worker ${n}\n`);
      else send(res, 404, 'no such worker\n');
    } else {
      send(res, 404, 'not found: try /metrics, /ready, /live, /config_dump\n');
    }
    req.resume();
  });
  server.keepAliveTimeout = 30_000;
  return new Promise((resolve, reject) => {
    server.once('error', (e) => reject(new Error(`admin server cannot listen on ${host}:${port}: ${e.message}`)));
    server.listen(port, host, () => {
      const a = server.address();
      resolve({
        port: typeof a === 'object' && a !== null ? a.port : port,
        close: () => {
          server.close();
          server.closeAllConnections();
        },
      });
    });
  });
}
