// HTTP/2 clients and servers for tests: node:http2 on 127.0.0.1, port 0, every wait bounded.

import * as http2 from 'node:http2';
import type * as net from 'node:net';

export interface H2Response {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
  trailers: http2.IncomingHttpHeaders | null;
}

/** One request on `session` (body sent whole), with the whole answer; rejects on reset or after timeoutMs. */
export function h2request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer | string, timeoutMs = 5000): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': body === undefined ? 'GET' : 'POST', ':path': '/', ...headers }, { endStream: body === undefined });
    const timer = setTimeout(() => {
      req.close(http2.constants.NGHTTP2_CANCEL);
      reject(new Error(`h2 request timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    let res: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | null = null;
    const chunks: Buffer[] = [];
    req.on('response', (h) => (res = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      clearTimeout(timer);
      resolve({ status: Number(res[':status']), headers: res, body: Buffer.concat(chunks), trailers });
    });
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    if (body !== undefined) req.end(body);
  });
}

/** An h2c client session, connected. */
export async function h2connect(port: number): Promise<http2.ClientHttp2Session> {
  const s = http2.connect(`http://127.0.0.1:${port}`);
  s.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('error', reject);
  });
  return s;
}

export function closeSession(s: http2.ClientHttp2Session): Promise<void> {
  return new Promise((resolve) => {
    if (s.closed || s.destroyed) resolve();
    else s.close(() => resolve());
    setTimeout(() => {
      s.destroy();
      resolve();
    }, 1000).unref();
  });
}

export interface H2Server {
  server: http2.Http2Server;
  port: number;
  /** Connections (sessions) accepted so far. */
  sessions: number;
  /** Streams seen, with their request headers. */
  requests: http2.IncomingHttpHeaders[];
  close(): Promise<void>;
}

/** An h2c server calling `handler` per stream; `settings` go to every session (e.g. maxConcurrentStreams). */
export async function h2server(handler: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void, settings: http2.Settings = {}): Promise<H2Server> {
  const server = http2.createServer({ settings });
  const out: H2Server = { server, port: 0, sessions: 0, requests: [], close: async () => {} };
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    out.sessions++;
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    out.requests.push(headers);
    stream.on('error', () => {});
    handler(stream, headers);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  out.port = (server.address() as net.AddressInfo).port;
  out.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sessions) s.destroy();
      server.close(() => resolve());
    });
  return out;
}
