// An HTTP/1.1 request of an HTTP/1 client sent on as an HTTP/2 stream: to an h2c upstream, or to a
// peer Bowline over mutual TLS, where HTTP/1 requests are multiplexed onto one HTTP/2 connection
// with their version in l5d-orig-proto and restored at the far end (Linkerd's way). The link stands
// where an Http1Upstream connection would, so that the HTTP/1 exchange (retries, timeouts, queue,
// pipelining, metrics) runs unchanged: it hands over its parsed request head (writeHead) and writes
// the body bytes, which are decoded from their framing into DATA; the HTTP/2 response is framed as
// HTTP/1.1 bytes (Content-Length when known, else chunked with the trailers in the last chunk) and
// fed to it as from a connection.
// Body bytes are never copied on the way up: a chunk is released to the client's reads only once
// the HTTP/2 stream has sent it (the Writable's callback), which is what the exchange waits for.

import type * as http2 from 'node:http2';
import { Writable } from 'node:stream';
import type * as net from 'node:net';
import { ErrorCode } from '../errors';
import type { ProxyContext } from '../context';
import type { TcpStats } from '../metrics/registry';
import type { Endpoint } from '../pool/endpoint';
import { ChunkedScanner } from '../http1/chunked-scanner';
import { BodyKind, HeadInfo, parseHead } from '../http1/head-parser';
import type { ExchangeOwner, UpstreamConnection } from '../http1/upstream';
import { CONNECTION_SPECIFIC } from './h1-call';
import { ORIG_PROTO_HEADER } from './h2-exchange';
import { type CallOwner, H2Call, type HeaderBlock } from './upstream-call';

const METHODS_WITHOUT_BODY_ANSWER = new Set([204, 304]);

/**
 * The parsed form of the HTTP/1.1 response heads links compose: shared, since the exchange reads it
 * only during onResponseHead (it keeps the bytes it composes from it, never the HeadInfo).
 */
const responseHead = new HeadInfo();

const enum Phase {
  Head = 0,
  Body,
  Sent,
  Done,
}

export class H2Link implements UpstreamConnection, CallOwner {
  readonly socket: net.Socket;
  owner: ExchangeOwner | null = null;
  idleSinceMs = 0;
  connectStartMs: number;
  /** Set when the stream was refused: the exchange then replays the request (its keep-alive race path). */
  reused = false;
  responseStarted = false;
  private call: H2Call | null = null;
  private phase = Phase.Head;
  private headRequest = false;
  private remaining = 0;
  private reqChunked: ChunkedScanner | null = null;
  private resChunked = false;

  constructor(
    private readonly ctx: ProxyContext,
    readonly endpoint: Endpoint,
    private readonly tcp: TcpStats,
    private readonly maxHeadBytes: number,
    nowMs: number,
  ) {
    this.connectStartMs = nowMs;
    const w = new Writable({
      decodeStrings: false,
      write: (chunk: Buffer, _enc, cb) => this.onRequestBytes(chunk, cb),
    });
    w.on('drain', () => this.owner?.onUpstreamDrain());
    w.on('error', () => {});
    this.socket = w as unknown as net.Socket;
  }

  get connecting(): boolean {
    return this.call !== null && this.call.connecting;
  }

  get usable(): boolean {
    return false;
  }

  begin(owner: ExchangeOwner, headRequest: boolean): void {
    this.owner = owner;
    this.headRequest = headRequest;
  }

  release(): void {
    this.owner = null;
  }

  close(): void {
    this.owner = null;
    if (this.phase !== Phase.Done) {
      this.phase = Phase.Done;
      this.call?.cancel();
    }
    this.call = null;
  }

  pauseReading(): void {
    this.call?.pause();
  }

  resumeReading(): void {
    this.call?.resume();
  }

  write(chunk: Buffer): boolean {
    return this.socket.write(chunk);
  }

  // ---------------------------------------------------------------- request: HTTP/1 bytes in

  private onRequestBytes(chunk: Buffer, cb: (err?: Error | null) => void): void {
    try {
      if (this.phase === Phase.Body) this.onBodyBytes(chunk, 0, cb);
      else cb();
    } catch (e) {
      cb();
      this.ctx.internalError('h2-link', e);
      this.fail(ErrorCode.UpstreamBadResponse);
    }
  }

  /**
   * The request head, straight from the exchange's parse (never re-parsed): it opens the stream.
   * `extra` holds fields the proxy adds ("name: value\r\n" lines, e.g. l5d-client-id).
   */
  writeHead(buf: Buffer, h: HeadInfo, extra: Buffer | null): boolean {
    const headers = this.requestHeaders(buf, h);
    if (extra !== null) {
      for (const line of extra.toString('latin1').split('\r\n')) {
        const colon = line.indexOf(':');
        if (colon > 0) (headers as Record<string, string>)[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
    }
    const kind = h.bodyKind;
    const endStream = kind === BodyKind.None || (kind === BodyKind.Length && h.contentLength === 0);
    this.call = new H2Call(this.ctx, this, this.endpoint, this.tcp, headers, endStream, this.ctx.clock.now());
    if (endStream) {
      this.phase = Phase.Sent;
      return true;
    }
    this.phase = Phase.Body;
    if (kind === BodyKind.Length) this.remaining = h.contentLength;
    else this.reqChunked = new ChunkedScanner();
    return true;
  }

  /** The request head as HTTP/2 fields: request line and Host as pseudo-headers, no connection fields. */
  private requestHeaders(buf: Buffer, h: HeadInfo): http2.OutgoingHttpHeaders {
    const b = h.base;
    let target = buf.toString('latin1', b + h.targetStart, b + h.targetEnd);
    let authority = h.hostField === -1 ? '' : h.value(buf, h.hostField);
    if (target.charCodeAt(0) !== 47 && target !== '*') {
      // absolute-form: its authority wins (RFC 9112 section 3.2.2)
      try {
        const u = new URL(target);
        authority = u.host;
        target = `${u.pathname}${u.search}`;
      } catch {
        // left as it is; the upstream judges it
      }
    }
    const out: http2.OutgoingHttpHeaders = {
      ':method': buf.toString('latin1', b, b + h.methodEnd),
      ':scheme': this.endpoint.identity !== null ? 'https' : 'http',
      ':authority': authority,
      ':path': target,
    };
    const o = out as Record<string, string | string[]>;
    for (let i = 0; i < h.count; i++) {
      if (h.drop[i] !== 0) continue;
      const name = h.name(buf, i);
      if (CONNECTION_SPECIFIC.has(name)) {
        if (name === 'te' && h.value(buf, i).trim().toLowerCase() === 'trailers') o['te'] = 'trailers';
        continue;
      }
      const v = h.value(buf, i);
      const prev = o[name];
      if (prev === undefined) o[name] = v;
      else if (Array.isArray(prev)) prev.push(v);
      else o[name] = [prev, v];
    }
    if (this.endpoint.identity !== null) o[ORIG_PROTO_HEADER] = h.versionMinor === 0 ? 'HTTP/1.0' : 'HTTP/1.1';
    return out;
  }

  private onBodyBytes(buf: Buffer, start: number, cb: (err?: Error | null) => void): void {
    const call = this.call!;
    const d = this.reqChunked;
    if (d === null) {
      const n = Math.min(buf.length - start, this.remaining);
      this.remaining -= n;
      const slice = start === 0 && n === buf.length ? buf : buf.subarray(start, start + n);
      if (this.remaining === 0) {
        this.phase = Phase.Sent;
        call.write(slice, () => cb());
        call.end();
      } else call.write(slice, () => cb());
      return;
    }
    // Chunked: each run of data goes on as it is; the chunk is released when the last run was sent.
    let pending = 1;
    const release = (): void => {
      if (--pending === 0) cb();
    };
    d.onData = (b, s, e) => {
      pending++;
      call.write(b.subarray(s, e), release);
    };
    const r = d.scan(buf, start, buf.length);
    d.onData = null;
    if (r === -2) {
      release();
      this.fail(ErrorCode.UpstreamBadResponse);
      return;
    }
    if (r >= 0) {
      this.phase = Phase.Sent;
      call.end();
    }
    release();
  }

  // ---------------------------------------------------------------- response: HTTP/2 in, HTTP/1 bytes out

  onCallHead(status: number, headers: HeaderBlock, endStream: boolean): void {
    const owner = this.owner;
    if (owner === null) return;
    this.responseStarted = true;
    let s = `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\n`;
    for (const name of Object.keys(headers)) {
      if (name.charCodeAt(0) === 58 || CONNECTION_SPECIFIC.has(name)) continue;
      const v = headers[name];
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const x of v) s += `${name}: ${x}\r\n`;
      else s += `${name}: ${v}\r\n`;
    }
    const noBody = this.headRequest || METHODS_WITHOUT_BODY_ANSWER.has(status) || status < 200;
    if (!noBody && headers['content-length'] === undefined) {
      if (endStream) s += 'content-length: 0\r\n';
      else {
        s += 'transfer-encoding: chunked\r\n';
        this.resChunked = true;
      }
    }
    const buf = Buffer.from(`${s}\r\n`, 'latin1');
    const h = responseHead;
    h.reset(0);
    const end = parseHead(buf, h, false, Math.max(this.maxHeadBytes, buf.length));
    if (end <= 0) {
      // Fields HTTP/2 allowed but HTTP/1.1 cannot carry.
      this.fail(ErrorCode.UpstreamBadResponse);
      return;
    }
    if (noBody) h.bodyKind = BodyKind.None;
    owner.onResponseHead(buf, h, end);
  }

  onCallData(chunk: Buffer): boolean {
    const owner = this.owner;
    if (owner === null || chunk.length === 0) return true;
    if (!this.resChunked) return owner.onResponseBody(chunk);
    if (chunk.length <= 16 * 1024) {
      const size = chunk.length.toString(16);
      const out = Buffer.allocUnsafe(size.length + chunk.length + 4);
      out.write(size, 0, 'latin1');
      out[size.length] = 13;
      out[size.length + 1] = 10;
      chunk.copy(out, size.length + 2);
      out[out.length - 2] = 13;
      out[out.length - 1] = 10;
      return owner.onResponseBody(out);
    }
    owner.onResponseBody(Buffer.from(`${chunk.length.toString(16)}\r\n`, 'latin1'));
    owner.onResponseBody(chunk);
    return owner.onResponseBody(Buffer.from('\r\n', 'latin1'));
  }

  onCallEnd(trailers: HeaderBlock | null): void {
    const owner = this.owner;
    this.phase = Phase.Done;
    this.call = null;
    if (owner === null) return;
    if (this.resChunked) {
      let t = '0\r\n';
      if (trailers !== null) {
        for (const name of Object.keys(trailers)) {
          if (name.charCodeAt(0) === 58) continue;
          const v = trailers[name];
          if (Array.isArray(v)) for (const x of v) t += `${name}: ${x}\r\n`;
          else if (v !== undefined) t += `${name}: ${v}\r\n`;
        }
      }
      owner.onResponseBody(Buffer.from(`${t}\r\n`, 'latin1'));
    }
    owner.onUpstreamReadDone();
    owner.onResponseEnd(false);
  }

  onCallError(code: ErrorCode, started: boolean, refused: boolean): void {
    this.phase = Phase.Done;
    this.call = null;
    const owner = this.owner;
    this.owner = null;
    if (owner === null) return;
    // Refused: the exchange replays it once as it would after a keep-alive race.
    this.reused = refused && code !== ErrorCode.UpstreamConnectFailed;
    owner.onUpstreamError(code, started);
  }

  onCallDrain(): void {
    // The Writable's own 'drain' (after the callbacks of sent chunks) resumes the client.
  }

  private fail(code: ErrorCode): void {
    const owner = this.owner;
    this.close();
    owner?.onUpstreamError(code, this.responseStarted);
  }
}

/** Reason phrases of the common statuses (clients ignore the phrase; node:http's table is not loaded for it). */
const REASONS: Record<number, string> = {
  200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 206: 'Partial Content',
  301: 'Moved Permanently', 302: 'Found', 303: 'See Other', 304: 'Not Modified', 307: 'Temporary Redirect', 308: 'Permanent Redirect',
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 408: 'Request Timeout',
  409: 'Conflict', 410: 'Gone', 413: 'Content Too Large', 415: 'Unsupported Media Type', 429: 'Too Many Requests',
  500: 'Internal Server Error', 501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
};

function reasonPhrase(status: number): string {
  return REASONS[status] ?? 'Status';
}
