// Real upstream servers for tests, on 127.0.0.1 with port 0.

import { createHash } from 'node:crypto';
import * as http from 'node:http';
import * as net from 'node:net';

const tracked = new WeakMap<net.Server, Set<net.Socket>>();

/** Listens on 127.0.0.1:0 and tracks the server's connections, so that close() can end them all. */
export async function listen(server: net.Server): Promise<number> {
  const sockets = new Set<net.Socket>();
  tracked.set(server, sockets);
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

/** An HTTP server that echoes what it received as JSON: method, url, headers, body length. */
export async function echoServer(): Promise<{ server: http.Server; port: number; requests: http.IncomingHttpHeaders[] }> {
  const requests: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.headers);
    let n = 0;
    req.on('data', (d: Buffer) => (n += d.length));
    req.on('end', () => {
      const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodyLength: n });
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'x-upstream-port': String((server.address() as net.AddressInfo).port),
      });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 30_000;
  const port = await listen(server);
  return { server, port, requests };
}

/** A raw TCP server that answers every connection with `handler` (for malformed or dying upstreams). */
export async function rawServer(handler: (s: net.Socket, data: Buffer) => void): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.includes('\r\n\r\n')) {
        const b = buf;
        buf = Buffer.alloc(0);
        handler(s, b);
      }
    });
    s.on('error', () => {});
  });
  const port = await listen(server);
  return { server, port };
}

/** Stops the server and destroys every connection it still has (upgraded and half-closed ones too). */
export function close(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    for (const s of tracked.get(server) ?? []) s.destroy();
  });
}

/**
 * A port nothing listens on, below the kernel's ephemeral range (32768-60999 here): servers of tests
 * running in parallel bind port 0 and get ephemeral ports, so none of them can take this one (a
 * port from binding 0 and closing can be handed to the next server that binds 0).
 */
export async function freePortBelowEphemeral(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(Math.random() * 10000);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free port found in 20000-29999');
}

/** Reads a request's body without keeping it: calls `done` with its length and its SHA-256 (hex). */
export function readBodyDigest(req: http.IncomingMessage, done: (bytes: number, sha256: string) => void): void {
  const h = createHash('sha256');
  let n = 0;
  req.on('data', (d: Buffer) => {
    h.update(d);
    n += d.length;
  });
  req.on('end', () => done(n, h.digest('hex')));
}
