// Protocol detection from the first bytes of a connection (one read, bounded by a deadline in the
// caller): the HTTP/2 preface, an HTTP/1 request line, a TLS ClientHello, or else opaque TCP.

import { TCHAR } from './http1/chars';

export const enum Detected {
  NeedMore = 0,
  Http1,
  Http2,
  Tls,
  Opaque,
}

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** Longest method token we wait for before calling the stream opaque. */
const MAX_METHOD = 24;
/** Bytes after which detection gives up waiting for more. */
export const DETECT_MAX_BYTES = 64;

export function detectProtocol(buf: Buffer): Detected {
  const n = buf.length;
  if (n === 0) return Detected.NeedMore;
  // HTTP/2 prior knowledge.
  if (buf[0] === 0x50) {
    const m = Math.min(n, H2_PREFACE.length);
    if (buf.compare(H2_PREFACE, 0, m, 0, m) === 0) return m === H2_PREFACE.length ? Detected.Http2 : Detected.NeedMore;
  }
  // TLS record: handshake (22), version 3.x.
  if (buf[0] === 0x16) {
    if (n < 3) return Detected.NeedMore;
    return buf[1] === 0x03 && buf[2] <= 0x04 ? Detected.Tls : Detected.Opaque;
  }
  // HTTP/1: an upper-case method token, then SP.
  let i = 0;
  while (i < n && i < MAX_METHOD && TCHAR[buf[i]] === 1 && buf[i] >= 0x41 && buf[i] <= 0x5a) i++;
  if (i === n && i < MAX_METHOD) return Detected.NeedMore;
  if (i > 0 && i < n && buf[i] === 0x20) return Detected.Http1;
  return Detected.Opaque;
}
