// Small helpers for the request authority: comparing host bytes without making strings, and the
// host part of an authority for route matching.

/** Byte equality of two short ranges (a JS loop beats a call into C++ for a host name). */
export function sameBytes(a: Buffer, as: number, b: Buffer, bs: number, n: number): boolean {
  if (n > 64) return a.compare(b, bs, bs + n, as, as + n) === 0;
  for (let i = 0; i < n; i++) if (a[as + i] !== b[bs + i]) return false;
  return true;
}

/** 'Example.com:8080' -> 'example.com'; '[::1]:80' -> '::1'. */
export function hostWithoutPort(authority: string): string {
  let host = authority;
  if (host.charCodeAt(0) === 0x5b) {
    const close = host.indexOf(']');
    host = close === -1 ? host : host.slice(1, close);
  } else {
    const colon = host.lastIndexOf(':');
    if (colon !== -1) host = host.slice(0, colon);
  }
  // Lower-case only when needed (most clients already send lower-case hosts).
  for (let i = 0; i < host.length; i++) {
    const c = host.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) return host.toLowerCase();
  }
  return host;
}
