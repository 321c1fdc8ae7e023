// Writes a parsed head onward without re-serialising it: the bytes between dropped (hop-by-hop) fields
// go out as slices of the buffer they arrived in, followed by any fields the proxy adds.

import type { Socket } from 'node:net';
import type { HeadInfo } from './head-parser';

/**
 * Writes h's head from buf to sock, leaving out dropped fields and inserting `extra` (complete
 * "name: value\r\n" lines, or '') before the blank line. Returns socket.write's back-pressure result.
 */
export function writeHead(sock: Socket, buf: Buffer, h: HeadInfo, extra: Buffer | null, keepField = -1): boolean {
  const base = h.base;
  const end = base + h.headLen;
  if (h.dropCount === 0 && extra === null) return sock.write(buf.subarray(base, end));
  // cork so that the slices leave in one writev.
  sock.cork();
  let from = base;
  for (let i = 0; i < h.count; i++) {
    if (h.drop[i] === 0 || i === keepField) continue;
    const ls = base + h.lineStart(i);
    if (ls > from) sock.write(buf.subarray(from, ls));
    from = base + h.lineEnd(i);
  }
  // Everything up to (not including) the final CRLF, then the extra fields, then the CRLF.
  if (end - 2 > from) sock.write(buf.subarray(from, end - 2));
  if (extra !== null) sock.write(extra);
  const ok = sock.write(CRLF);
  sock.uncork();
  return ok;
}

const CRLF = Buffer.from('\r\n', 'latin1');

export const CONNECTION_CLOSE = Buffer.from('connection: close\r\n', 'latin1');
export const CONNECTION_KEEP_ALIVE = Buffer.from('connection: keep-alive\r\n', 'latin1');
export const CONNECTION_UPGRADE = Buffer.from('connection: upgrade\r\n', 'latin1');
