// Byte-class tables for HTTP/1 parsing (RFC 9110 section 5.6.2 tokens, 5.5 field values).

/** 1 where the byte is a tchar (token character). */
export const TCHAR = new Uint8Array(256);
/** 1 where the byte may appear in a field value: HTAB, SP, VCHAR, obs-text (never CR, LF, NUL or other CTLs). */
export const FIELD_VCHAR = new Uint8Array(256);
/** 1 where the byte may appear in a request-target (VCHAR and obs-text; never SP or CTLs). */
export const TARGET_CHAR = new Uint8Array(256);
/** Value of a hex digit, or 255. */
export const HEX_VALUE = new Uint8Array(256).fill(255);

for (let c = 0; c < 256; c++) {
  const alnum = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
  if (alnum || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c))) TCHAR[c] = 1;
  if (c === 0x09 || c === 0x20 || (c >= 0x21 && c <= 0x7e) || c >= 0x80) FIELD_VCHAR[c] = 1;
  if ((c >= 0x21 && c <= 0x7e) || c >= 0x80) TARGET_CHAR[c] = 1;
}
for (let i = 0; i < 10; i++) HEX_VALUE[0x30 + i] = i;
for (let i = 0; i < 6; i++) { HEX_VALUE[0x41 + i] = 10 + i; HEX_VALUE[0x61 + i] = 10 + i; }

export const CR = 13;
export const LF = 10;
export const SP = 32;
export const HTAB = 9;
export const COLON = 58;

/** Case-insensitive comparison of buf[start, start+lower.length) with an already lower-case ASCII string. */
export function equalsLower(buf: Buffer, start: number, end: number, lower: string): boolean {
  const n = lower.length;
  if (end - start !== n) return false;
  for (let i = 0; i < n; i++) {
    const c = buf[start + i];
    const l = lower.charCodeAt(i);
    // Only letters fold: `| 0x20` alone would turn '_' into DEL and '^' into '~'.
    if (c !== l && ((c | 0x20) !== l || l < 0x61 || l > 0x7a)) return false;
  }
  return true;
}

/** Exact comparison of buf[start, end) with an ASCII string. */
export function equalsExact(buf: Buffer, start: number, end: number, s: string): boolean {
  const n = s.length;
  if (end - start !== n) return false;
  for (let i = 0; i < n; i++) {
    if (buf[start + i] !== s.charCodeAt(i)) return false;
  }
  return true;
}
