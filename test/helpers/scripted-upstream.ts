// An HTTP upstream for integration tests whose answers the path chooses: `/status/NNN` answers NNN,
// `/slow/MS` answers after MS milliseconds, `/hold` waits until the test calls release() (so that
// "a request in flight" is deterministic), anything else 200. Every response names the upstream in
// `x-upstream`, and the server counts the bytes it moved so tests can check the proxy's counters.

import * as http from 'node:http';
import type * as net from 'node:net';
import { close, listen } from './upstream';

export interface ScriptedUpstream {
  name: string;
  port: number;
  server: http.Server;
  /** Requests received (heads), by path. */
  requests: string[];
  /** Requests to /hold waiting for release(). */
  readonly held: number;
  /** Answers every held request with 200 (or `status`). */
  release(status?: number): void;
  /** Bytes read from / written to the proxy over all connections, closed ones included. */
  bytes(): { read: number; written: number };
  /** Connections the proxy opened to this upstream. */
  readonly connections: number;
  close(): Promise<void>;
}

export async function scriptedUpstream(name: string): Promise<ScriptedUpstream> {
  const requests: string[] = [];
  const held: { res: http.ServerResponse; path: string }[] = [];
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const reply = (res: http.ServerResponse, status: number, path: string): void => {
    if (res.destroyed || res.writableEnded) return;
    const body = `${name} ${status} ${path}\n`;
    res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'x-upstream': name });
    res.end(body);
  };
  const server = http.createServer((req, res) => {
    const path = req.url ?? '/';
    requests.push(path);
    req.resume();
    req.on('end', () => {
      let m: RegExpExecArray | null;
      if ((m = /^\/status\/(\d{3})/.exec(path))) reply(res, Number(m[1]), path);
      else if ((m = /^\/slow\/(\d+)/.exec(path))) setTimeout(() => reply(res, 200, path), Number(m[1]));
      else if (path.startsWith('/hold')) held.push({ res, path });
      else reply(res, 200, path);
    });
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', (s: net.Socket) => {
    connections++;
    sockets.add(s);
  });
  const port = await listen(server);
  return {
    name,
    port,
    server,
    requests,
    get held() {
      return held.filter((h) => !h.res.destroyed).length;
    },
    get connections() {
      return connections;
    },
    release(status = 200) {
      for (const h of held.splice(0)) reply(h.res, status, h.path);
    },
    bytes() {
      let read = 0;
      let written = 0;
      for (const s of sockets) {
        read += s.bytesRead;
        written += s.bytesWritten;
      }
      return { read, written };
    },
    async close() {
      held.splice(0).forEach((h) => h.res.destroy());
      await close(server);
    },
  };
}
