// A keep-alive HTTP/1.1 client connection for integration tests: one socket, one request at a time,
// responses framed by content-length, chunked or close. Tests see exactly which connection a request
// used (so "the next request on the same open connection" can be checked) and the bytes it moved.

import * as net from 'node:net';

export interface HttpResponse {
  status: number;
  /** Lower-case names; the last value wins. */
  headers: Record<string, string>;
  body: string;
}

export interface RequestOptions {
  method?: string;
  host?: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs?: number;
}

interface Pending {
  resolve: (r: HttpResponse) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class HttpConn {
  readonly openedAtMs = Date.now();
  closed = false;
  /** The last response asked to close the connection. */
  closing = false;
  private buf: Buffer = Buffer.alloc(0);
  private pending: Pending | null = null;
  private closeWaiters: (() => void)[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => {
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      this.tryParse(false);
    });
    socket.on('end', () => this.tryParse(true));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.tryParse(true);
      this.fail(new Error('connection closed before a complete response'));
      for (const f of this.closeWaiters.splice(0)) f();
    });
  }

  /** Connects to 127.0.0.1:port; rejects on refusal or after timeoutMs. */
  static connect(port: number, timeoutMs = 3000): Promise<HttpConn> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error(`connect to ${port} timed out`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(t);
        s.removeListener('error', onError);
        resolve(new HttpConn(s));
      });
      const onError = (e: Error): void => {
        clearTimeout(t);
        reject(e);
      };
      s.once('error', onError);
    });
  }

  /** Bytes written to / read from the socket so far. */
  get bytesSent(): number {
    return this.socket.bytesWritten;
  }
  get bytesReceived(): number {
    return this.socket.bytesRead;
  }

  request(path: string, o: RequestOptions = {}): Promise<HttpResponse> {
    if (this.pending !== null) return Promise.reject(new Error('a request is already in flight on this connection'));
    if (this.closed || this.socket.destroyed) return Promise.reject(new Error('connection is closed'));
    const body = o.body ?? '';
    let head = `${o.method ?? 'GET'} ${path} HTTP/1.1\r\nhost: ${o.host ?? 'test.local'}\r\n`;
    for (const [k, v] of Object.entries(o.headers ?? {})) head += `${k}: ${v}\r\n`;
    if (body !== '' || (o.method !== undefined && o.method !== 'GET' && o.method !== 'HEAD')) head += `content-length: ${Buffer.byteLength(body)}\r\n`;
    head += '\r\n';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new Error(`no response to ${path} within ${o.timeoutMs ?? 5000} ms`)), o.timeoutMs ?? 5000);
      this.pending = { resolve, reject, timer };
      this.socket.write(head + body);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  /** Resolves when the socket is closed (by either side), or after timeoutMs with false. */
  waitClosed(timeoutMs = 3000): Promise<boolean> {
    if (this.closed) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.closeWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  private fail(e: Error): void {
    const p = this.pending;
    if (p === null) return;
    this.pending = null;
    clearTimeout(p.timer);
    p.reject(e);
  }

  private tryParse(ended: boolean): void {
    const p = this.pending;
    if (p === null) return;
    const headEnd = this.buf.indexOf('\r\n\r\n');
    if (headEnd < 0) return;
    const lines = this.buf.toString('latin1', 0, headEnd).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!m) {
      this.fail(new Error(`bad status line: ${lines[0]}`));
      this.socket.destroy();
      return;
    }
    const status = Number(m[1]);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const c = l.indexOf(':');
      if (c > 0) headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
    }
    if (status < 200) {
      // Interim response: drop it and wait for the final one.
      this.buf = this.buf.subarray(headEnd + 4);
      this.tryParse(ended);
      return;
    }
    const start = headEnd + 4;
    let end: number;
    let body: string;
    if (headers['transfer-encoding']?.toLowerCase().includes('chunked')) {
      const parts: Buffer[] = [];
      let i = start;
      for (;;) {
        const le = this.buf.indexOf('\r\n', i);
        if (le < 0) return;
        const size = parseInt(this.buf.toString('latin1', i, le), 16);
        if (size === 0) {
          const te = this.buf.indexOf('\r\n\r\n', le);
          if (te < 0) return;
          end = te + 4;
          break;
        }
        if (this.buf.length < le + 2 + size + 2) return;
        parts.push(this.buf.subarray(le + 2, le + 2 + size));
        i = le + 2 + size + 2;
      }
      body = Buffer.concat(parts).toString('utf8');
    } else if (headers['content-length'] !== undefined) {
      end = start + Number(headers['content-length']);
      if (this.buf.length < end) return;
      body = this.buf.toString('utf8', start, end);
    } else {
      if (!ended) return;
      end = this.buf.length;
      body = this.buf.toString('utf8', start, end);
    }
    this.buf = this.buf.subarray(end);
    this.pending = null;
    clearTimeout(p.timer);
    if ((headers['connection'] ?? '').toLowerCase().includes('close')) this.closing = true;
    p.resolve({ status, headers, body });
  }
}

/** Tries to connect: 'refused' (ECONNREFUSED), 'reset' (accepted, then closed without a reply to a request), or 'served'. */
export async function probeConnect(port: number, timeoutMs = 1000): Promise<'refused' | 'reset' | 'served' | 'timeout'> {
  let c: HttpConn;
  try {
    c = await HttpConn.connect(port, timeoutMs);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ECONNREFUSED' ? 'refused' : 'timeout';
  }
  try {
    await c.request('/', { timeoutMs });
    return 'served';
  } catch (e) {
    return /within/.test((e as Error).message) ? 'timeout' : 'reset';
  } finally {
    c.close();
  }
}
