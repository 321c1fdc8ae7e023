// An attempt of an HTTP/2 request on an HTTP/1.1 upstream: the request head is written as HTTP/1.1
// (a body of unknown length goes chunked), the response head becomes a header object without its
// connection-specific fields, and a chunked response body is decoded into its data. Runs on the
// pooled Http1Upstream connections of the endpoint, shared with HTTP/1 traffic.

import type * as http2 from 'node:http2';
import { ErrorCode } from '../errors';
import type { ProxyContext } from '../context';
import type { TcpStats } from '../metrics/registry';
import type { Endpoint } from '../pool/endpoint';
import { ChunkedScanner } from '../http1/chunked-scanner';
import { BodyKind, type HeadInfo } from '../http1/head-parser';
import { type ExchangeOwner, Http1Upstream } from '../http1/upstream';
import type { CallOwner, HeaderBlock, UpstreamCall } from './upstream-call';

/** Fields that are about one HTTP/1.1 connection and mean nothing (or are forbidden) in HTTP/2. */
export const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'host', 'http2-settings']);

const CRLF = Buffer.from('\r\n', 'latin1');
const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');

/**
 * The HTTP/1.1 request head for an HTTP/2 request: its pseudo-header fields become the request line
 * and Host, other fields pass as they are (the HTTP/2 codec already refused connection-specific ones),
 * and `chunked` adds the framing of a body whose length is not known.
 */
export function http1RequestHead(headers: http2.OutgoingHttpHeaders, chunked: boolean, extra: string): Buffer {
  let s = `${String(headers[':method'])} ${String(headers[':path'] ?? '/')} HTTP/1.1\r\nhost: ${String(headers[':authority'] ?? '')}\r\n`;
  for (const name of Object.keys(headers)) {
    if (name.charCodeAt(0) === 58 || CONNECTION_SPECIFIC.has(name)) continue;
    const v = headers[name];
    if (v === undefined) continue;
    if (Array.isArray(v)) {
      // Cookies were split into one field per crumb for HPACK: one field again (RFC 9113 8.2.3).
      if (name === 'cookie') s += `cookie: ${v.join('; ')}\r\n`;
      else for (const x of v) s += `${name}: ${x}\r\n`;
    } else s += `${name}: ${String(v)}\r\n`;
  }
  if (chunked) s += 'transfer-encoding: chunked\r\n';
  return Buffer.from(`${s}${extra}\r\n`, 'latin1');
}

export class H1Call implements UpstreamCall, ExchangeOwner {
  private readonly up: Http1Upstream;
  responseStarted = false;
  private decoder: ChunkedScanner | null = null;
  private decodedOk = true;
  private done = false;

  constructor(
    private readonly ctx: ProxyContext,
    private owner: CallOwner | null,
    endpoint: Endpoint<Http1Upstream>,
    tcp: TcpStats,
    maxHeadBytes: number,
    head: Buffer,
    private readonly chunked: boolean,
    headRequest: boolean,
    nowMs: number,
  ) {
    let up = endpoint.takeIdle();
    if (up === null) up = new Http1Upstream(ctx, endpoint, tcp, maxHeadBytes, nowMs);
    this.up = up;
    up.begin(this, headRequest, false, false);
    up.socket.write(head);
  }

  get connecting(): boolean {
    return this.up.connecting;
  }

  write(chunk: Buffer, flushed?: () => void): boolean {
    const s = this.up.socket;
    flushed?.(); // request chunks of HTTP/2 streams are fresh buffers: nothing to hold
    if (!this.chunked) return s.write(chunk);
    if (chunk.length === 0) return true;
    s.cork();
    s.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
    s.write(chunk);
    const ok = s.write(CRLF);
    s.uncork();
    return ok;
  }

  end(): void {
    if (this.chunked) this.up.socket.write(LAST_CHUNK);
  }

  pause(): void {
    this.up.pauseReading();
  }

  resume(): void {
    this.up.resumeReading();
  }

  cancel(): void {
    this.owner = null;
    if (!this.done) {
      this.done = true;
      this.up.close();
    }
  }

  // ExchangeOwner: the HTTP/1.1 connection's side.

  onResponseHead(buf: Buffer, h: HeadInfo): void {
    const status = h.statusCode;
    if (status < 200) return; // interim responses are not passed on to HTTP/2
    this.responseStarted = true;
    const headers: HeaderBlock = { ':status': String(status) } as HeaderBlock;
    const out = headers as Record<string, string | string[]>;
    for (let i = 0; i < h.count; i++) {
      if (h.drop[i] !== 0) continue;
      const name = h.name(buf, i);
      if (CONNECTION_SPECIFIC.has(name)) continue;
      const v = h.value(buf, i);
      const prev = out[name];
      if (prev === undefined) out[name] = v;
      else if (Array.isArray(prev)) prev.push(v);
      else out[name] = [prev, v];
    }
    if (h.bodyKind === BodyKind.Chunked) {
      const d = new ChunkedScanner();
      // Decoded data is copied: the connection's read buffer is refilled by its next read, while an
      // HTTP/2 stream keeps what it is given until the frames are sent.
      d.onData = (b, s, e) => {
        const o = this.owner;
        if (o !== null && !o.onCallData(Buffer.from(b.subarray(s, e)))) this.decodedOk = false;
      };
      this.decoder = d;
    }
    this.owner?.onCallHead(status, headers, h.bodyKind === BodyKind.None);
  }

  onResponseBody(chunk: Buffer): boolean {
    const o = this.owner;
    if (o === null) return true;
    const d = this.decoder;
    if (d === null) return o.onCallData(Buffer.from(chunk));
    this.decodedOk = true;
    d.scan(chunk, 0, chunk.length);
    return this.decodedOk;
  }

  onResponseEnd(reusable: boolean): void {
    const up = this.up;
    this.done = true;
    up.release();
    if (reusable) up.endpoint.putIdle(up, this.ctx.clock.now());
    else up.close();
    const o = this.owner;
    this.owner = null;
    o?.onCallEnd(null);
  }

  onUpstreamError(code: ErrorCode, responseStarted: boolean): void {
    this.done = true;
    const o = this.owner;
    this.owner = null;
    const up = this.up;
    // A pooled connection the server closed just as it was reused never saw the request.
    o?.onCallError(code, responseStarted || this.responseStarted, (up.reused && code === ErrorCode.UpstreamReset && !up.responseStarted) || code === ErrorCode.UpstreamConnectFailed);
  }

  onUpstreamReadDone(): void {}

  onUpstreamDrain(): void {
    this.owner?.onCallDrain();
  }

  onTunnelData(): boolean {
    return true;
  }

  onTunnelEnd(): void {}
}
