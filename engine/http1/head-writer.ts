// Writes a parsed head onward without re-serialising it: an unchanged head goes out as a slice of the
// buffer it arrived in; a head that loses hop-by-hop fields or gains the proxy's is assembled from
// the kept byte ranges in one small buffer (measured cheaper than a corked writev of several slices,
// which costs a syscall-free but allocation-heavy path per message). Bodies are never copied here.

import type { HeadInfo } from './head-parser';

/**
 * The head as it goes onward: a slice of `buf` when unchanged, else the kept ranges (without dropped
 * fields, except keepField) plus `extra` before the blank line, assembled into one buffer.
 */
export function composeHead(buf: Buffer, h: HeadInfo, extra: Buffer | null, keepField = -1): Buffer {
  const base = h.base;
  const end = base + h.headLen;
  if (extra === null && (h.dropCount === 0 || (h.dropCount === 1 && keepField !== -1 && h.drop[keepField] === 1))) {
    return buf.subarray(base, end);
  }
  let size = h.headLen + (extra === null ? 0 : extra.length);
  for (let i = 0; i < h.count; i++) {
    if (h.drop[i] !== 0 && i !== keepField) size -= h.lineEnd(i) - h.lineStart(i);
  }
  const out = Buffer.allocUnsafe(size);
  let w = 0;
  let from = base;
  for (let i = 0; i < h.count; i++) {
    if (h.drop[i] === 0 || i === keepField) continue;
    const ls = base + h.lineStart(i);
    if (ls > from) w += buf.copy(out, w, from, ls);
    from = base + h.lineEnd(i);
  }
  w += buf.copy(out, w, from, end - 2);
  if (extra !== null) w += extra.copy(out, w);
  out[w] = 13;
  out[w + 1] = 10;
  return out;
}

/**
 * `head` followed by `body` as one buffer for one write: zero-copy when they are adjacent in the
 * same memory (an unchanged head and the body bytes that arrived with it), else a copy when the body
 * is small; null when they should be written separately.
 */
export function joinHeadAndBody(head: Buffer, body: Buffer): Buffer | null {
  if (head.buffer === body.buffer && head.byteOffset + head.length === body.byteOffset) {
    return Buffer.from(head.buffer, head.byteOffset, head.length + body.length);
  }
  if (body.length > 16 * 1024) return null;
  const out = Buffer.allocUnsafe(head.length + body.length);
  head.copy(out, 0);
  body.copy(out, head.length);
  return out;
}

export const CONNECTION_CLOSE = Buffer.from('connection: close\r\n', 'latin1');
export const CONNECTION_KEEP_ALIVE = Buffer.from('connection: keep-alive\r\n', 'latin1');
export const CONNECTION_UPGRADE = Buffer.from('connection: upgrade\r\n', 'latin1');
