// A raw TCP client for HTTP/1 tests: sends exact bytes and collects what comes back, so that tests
// can check framing, pipelining and refusals byte for byte.

import * as net from 'node:net';

export interface RawExchange {
  /** All bytes received until the peer closed or the timeout. */
  data: Buffer;
  closed: boolean;
}

/** Sends `payload` (or each chunk with a delay between) and reads until close or `timeoutMs`. */
export function rawRequest(port: number, payload: Buffer | string | (Buffer | string)[], timeoutMs = 3000, gapMs = 0): Promise<RawExchange> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect(port, '127.0.0.1');
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(t);
      s.destroy();
      resolve({ data: Buffer.concat(chunks), closed });
    };
    const t = setTimeout(() => finish(false), timeoutMs);
    s.on('data', (d) => chunks.push(d));
    s.on('close', () => finish(true));
    s.on('error', (e) => {
      if (!done && chunks.length === 0 && (e as NodeJS.ErrnoException).code === 'ECONNREFUSED') {
        done = true;
        clearTimeout(t);
        reject(e);
      }
    });
    s.on('connect', async () => {
      const parts = Array.isArray(payload) ? payload : [payload];
      for (const p of parts) {
        if (s.destroyed) return;
        s.write(p);
        if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
  });
}

/** Splits a byte stream of HTTP/1 responses into status codes (for bodies framed by content-length). */
export function statusCodes(data: Buffer): number[] {
  return [...data.toString('latin1').matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]));
}

export interface ParsedResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Parses a byte stream of HTTP/1 responses (content-length, chunked or until close). */
export function parseResponses(data: Buffer): ParsedResponse[] {
  const out: ParsedResponse[] = [];
  let p = 0;
  while (p < data.length) {
    const he = data.indexOf('\r\n\r\n', p);
    if (he === -1) throw new Error(`incomplete head at ${p}: ${JSON.stringify(data.subarray(p).toString('latin1'))}`);
    const lines = data.toString('latin1', p, he).split('\r\n');
    const status = Number(lines[0].split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const c = l.indexOf(':');
      headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
    }
    p = he + 4;
    let body: Buffer;
    if (status < 200 || status === 204 || status === 304) body = Buffer.alloc(0);
    else if (headers['transfer-encoding']?.toLowerCase().endsWith('chunked')) {
      const parts: Buffer[] = [];
      for (;;) {
        const le = data.indexOf('\r\n', p);
        const size = parseInt(data.toString('latin1', p, le).split(';')[0], 16);
        p = le + 2;
        if (size === 0) {
          p = data.indexOf('\r\n\r\n', p - 2) + 4;
          break;
        }
        parts.push(data.subarray(p, p + size));
        p += size + 2;
      }
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      body = data.subarray(p, p + n);
      p += n;
    } else {
      body = data.subarray(p);
      p = data.length;
    }
    out.push({ status, headers, body });
  }
  return out;
}
