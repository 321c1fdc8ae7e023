// HPACK (RFC 7541) for the proxy's own HTTP/2 codec: a decoder with the dynamic table and Huffman
// decoding (a nibble-at-a-time state machine built once from the code lengths), and an encoder that
// writes literals without indexing and without Huffman coding (cheapest to produce; what it saves on
// a loopback hop is not worth the CPU), using the static table's names and the few full entries a
// response commonly matches (:status 200, 204, 304, 400, 404, 500).

/** RFC 7541 Appendix A. */
export const STATIC_TABLE: readonly (readonly [string, string])[] = [
  ['', ''],
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];
const STATIC_COUNT = 61;

/**
 * Code lengths of the 257 symbols (bytes and EOS) of RFC 7541 Appendix B. The code is canonical:
 * codes follow from the lengths alone (ordered by length, then symbol), which is how they are built.
 */
const HUFFMAN_LENGTHS =
  '13,23,28,28,28,28,28,28,28,24,30,28,28,30,28,28,28,28,28,28,28,28,30,28,28,28,28,28,28,28,28,28,6,10,10,12,13,6,8,11,10,10,8,11,8,6,6,6,5,5,5,6,6,6,6,6,6,6,7,8,15,6,12,10,13,6,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,8,7,8,13,19,13,14,6,15,5,6,5,6,5,6,6,6,5,7,7,6,6,6,5,6,7,6,5,5,6,7,7,7,7,7,15,11,14,13,28,20,22,20,20,22,22,22,23,22,23,23,23,23,23,24,23,24,24,22,23,24,23,23,23,23,21,22,23,22,23,23,24,22,21,20,22,22,23,23,21,23,22,22,24,21,22,23,23,21,21,22,21,23,22,23,23,20,22,22,22,23,22,22,23,26,26,20,19,22,23,22,25,26,26,26,27,27,26,24,25,19,21,26,27,27,26,27,24,21,21,26,26,28,27,27,27,20,24,20,21,22,21,21,23,22,22,25,25,24,24,26,23,26,27,26,26,27,27,27,27,27,28,27,27,27,27,27,26,30';

/** Canonical codes of the 257 symbols, as [code, length]. */
export function huffmanCodes(): [number, number][] {
  const lengths = HUFFMAN_LENGTHS.split(',').map(Number);
  const order = lengths.map((_, s) => s).sort((a, b) => lengths[a]! - lengths[b]! || a - b);
  const out: [number, number][] = new Array(257);
  let code = 0;
  let prev = lengths[order[0]!]!;
  order.forEach((s, i) => {
    const len = lengths[s]!;
    if (i > 0) code = (code + 1) * 2 ** (len - prev);
    prev = len;
    out[s] = [code, len];
  });
  return out;
}

// The decoding machine: states are the internal nodes of the code tree (root = 0). For each state and
// nibble, DECODE_NEXT holds the state after those 4 bits and DECODE_SYM the byte completed on the way
// (-1 none, -2 the EOS symbol or a path off the tree: an error). Every code is at least 5 bits long,
// so a nibble completes at most one symbol. ACCEPTS[state]: the state may end a string (it is the
// root, or reached from the root by fewer than 8 one-bits: the EOS padding).
const DECODE_NEXT = new Uint8Array(256 * 16);
const DECODE_SYM = new Int16Array(256 * 16);
const ACCEPTS = new Uint8Array(256);

(function buildDecoder(): void {
  // Tree: children[node*2 + bit]: >= 0 internal node id, < 0 leaf (-(sym + 1)).
  const children: number[] = [0, 0];
  let nodes = 1;
  const codes = huffmanCodes();
  for (let sym = 0; sym < 257; sym++) {
    const [code, len] = codes[sym]!;
    let node = 0;
    for (let i = len - 1; i >= 0; i--) {
      const bit = Math.floor(code / 2 ** i) % 2;
      const slot = node * 2 + bit;
      if (i === 0) {
        children[slot] = -(sym + 1);
      } else {
        if (children[slot] === 0 || children[slot] === undefined) {
          children[slot] = nodes;
          children[nodes * 2] = 0;
          children[nodes * 2 + 1] = 0;
          nodes++;
        }
        node = children[slot]!;
      }
    }
  }
  // Accepting states: the all-ones path from the root, fewer than 8 bits deep.
  let n = 0;
  ACCEPTS[0] = 1;
  for (let depth = 1; depth < 8; depth++) {
    const c = children[n * 2 + 1]!;
    if (c <= 0) break;
    n = c;
    ACCEPTS[n] = 1;
  }
  for (let s = 0; s < nodes; s++) {
    for (let nib = 0; nib < 16; nib++) {
      let node = s;
      let sym = -1;
      for (let b = 3; b >= 0; b--) {
        const c = children[node * 2 + ((nib >> b) & 1)]!;
        if (c < 0) {
          const leaf = -c - 1;
          if (leaf === 256 || sym !== -1) {
            sym = -2;
            break;
          }
          sym = leaf;
          node = 0;
        } else node = c;
      }
      DECODE_NEXT[s * 16 + nib] = sym === -2 ? 0 : node;
      DECODE_SYM[s * 16 + nib] = sym;
    }
  }
})();

/** Buffer's latin1 fast paths (present at run time, missing from @types/node). */
type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string; latin1Write(s: string, offset: number): number };

const huffScratch = Buffer.allocUnsafe(64 * 1024);

/** Decodes a Huffman-coded string; null when it is malformed (EOS, bad padding). */
export function huffmanDecode(buf: Buffer, start: number, end: number): string | null {
  let out = huffScratch;
  let w = 0;
  let state = 0;
  for (let i = start; i < end; i++) {
    const byte = buf[i]!;
    for (let k = 0; k < 2; k++) {
      const idx = state * 16 + (k === 0 ? byte >> 4 : byte & 15);
      const sym = DECODE_SYM[idx]!;
      if (sym === -2) return null;
      if (sym >= 0) {
        if (w === out.length) {
          const bigger = Buffer.allocUnsafe(out.length * 2);
          out.copy(bigger);
          out = bigger;
        }
        out[w++] = sym;
      }
      state = DECODE_NEXT[idx]!;
    }
  }
  if (ACCEPTS[state] !== 1) return null;
  return (out as Latin1Buffer).latin1Slice(0, w);
}

export const enum HpackError {
  None = 0,
  /** Malformed: a bad index, integer, string or table size update (COMPRESSION_ERROR). */
  Compression,
  /** The decoded list is larger than allowed (answered like an oversized head). */
  TooLarge,
}

/** Receives each decoded field in order. */
export type FieldSink = (name: string, value: string) => void;

export class HpackDecoder {
  /** Dynamic table, newest last; entries [start, names.length) are live. */
  private names: string[] = [];
  private values: string[] = [];
  private start = 0;
  private size = 0;
  /** The table size the encoder may use (our SETTINGS_HEADER_TABLE_SIZE). */
  private maxSize: number;
  private capacity: number;
  private pos = 0;

  constructor(settingsTableSize = 4096) {
    this.maxSize = settingsTableSize;
    this.capacity = settingsTableSize;
  }

  /**
   * Decodes one header block, giving each field to `sink`. Stops with TooLarge once the decoded
   * list passes `maxListBytes` (names + values + 32 per field, RFC 9113's measure).
   */
  decode(buf: Buffer, start: number, end: number, maxListBytes: number, sink: FieldSink): HpackError {
    this.pos = start;
    let listBytes = 0;
    let sawField = false;
    while (this.pos < end) {
      const b = buf[this.pos]!;
      let name: string;
      let value: string;
      if (b & 0x80) {
        // Indexed field.
        const idx = this.integer(buf, end, 7);
        if (idx <= 0) return HpackError.Compression;
        if (idx <= STATIC_COUNT) {
          const e = STATIC_TABLE[idx]!;
          name = e[0];
          value = e[1];
        } else {
          const d = this.names.length - (idx - STATIC_COUNT);
          if (d < this.start) return HpackError.Compression;
          name = this.names[d]!;
          value = this.values[d]!;
        }
      } else if ((b & 0xe0) === 0x20) {
        // Dynamic table size update: only before the first field.
        if (sawField) return HpackError.Compression;
        const n = this.integer(buf, end, 5);
        if (n < 0 || n > this.maxSize) return HpackError.Compression;
        this.capacity = n;
        this.evict(0);
        continue;
      } else {
        const incremental = (b & 0xc0) === 0x40;
        const idx = this.integer(buf, end, incremental ? 6 : 4);
        if (idx < 0) return HpackError.Compression;
        if (idx === 0) {
          const n = this.string(buf, end);
          if (n === null) return HpackError.Compression;
          name = n;
        } else if (idx <= STATIC_COUNT) name = STATIC_TABLE[idx]![0];
        else {
          const d = this.names.length - (idx - STATIC_COUNT);
          if (d < this.start) return HpackError.Compression;
          name = this.names[d]!;
        }
        const v = this.string(buf, end);
        if (v === null) return HpackError.Compression;
        value = v;
        if (incremental) this.insert(name, value);
      }
      sawField = true;
      listBytes += name.length + value.length + 32;
      if (listBytes > maxListBytes) return HpackError.TooLarge;
      sink(name, value);
    }
    return HpackError.None;
  }

  /** An HPACK integer with an N-bit prefix at this.pos; -1 when malformed or past 2^31. */
  private integer(buf: Buffer, end: number, prefixBits: number): number {
    const mask = (1 << prefixBits) - 1;
    let v = buf[this.pos++]! & mask;
    if (v < mask) return v;
    let shift = 0;
    for (;;) {
      if (this.pos >= end || shift > 28) return -1;
      const b = buf[this.pos++]!;
      v += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if ((b & 0x80) === 0) break;
    }
    return v > 0x7fffffff ? -1 : v;
  }

  private string(buf: Buffer, end: number): string | null {
    if (this.pos >= end) return null;
    const huff = (buf[this.pos]! & 0x80) !== 0;
    const len = this.integer(buf, end, 7);
    if (len < 0 || this.pos + len > end) return null;
    const s = this.pos;
    this.pos += len;
    return huff ? huffmanDecode(buf, s, s + len) : (buf as Latin1Buffer).latin1Slice(s, s + len);
  }

  private insert(name: string, value: string): void {
    const entry = name.length + value.length + 32;
    if (entry > this.capacity) {
      // Larger than the table: the table empties (RFC 7541 4.4).
      this.names.length = this.values.length = 0;
      this.start = 0;
      this.size = 0;
      return;
    }
    this.evict(entry);
    this.names.push(name);
    this.values.push(value);
    this.size += entry;
  }

  /** Evicts oldest entries until `room` more bytes fit. */
  private evict(room: number): void {
    while (this.size + room > this.capacity && this.start < this.names.length) {
      this.size -= this.names[this.start]!.length + this.values[this.start]!.length + 32;
      this.start++;
    }
    if (this.start > 64 && this.start * 2 > this.names.length) {
      this.names = this.names.slice(this.start);
      this.values = this.values.slice(this.start);
      this.start = 0;
    }
  }
}

const STATUS_INDEX: Record<number, number> = { 200: 8, 204: 9, 206: 10, 304: 11, 400: 12, 404: 13, 500: 14 };
const NAME_INDEX = new Map<string, number>();
for (let i = STATIC_COUNT; i >= 1; i--) NAME_INDEX.set(STATIC_TABLE[i]![0], i);

/**
 * Writes header blocks: the status as an indexed field when the static table has it, every other
 * field as a literal without indexing (with the static name index when there is one), no Huffman.
 * Nothing enters the peer's dynamic table, so the encoder keeps no state.
 */
export class HpackEncoder {
  private buf = Buffer.allocUnsafe(4096);
  private w = 0;

  begin(): void {
    this.w = 0;
  }

  status(code: number): void {
    const idx = STATUS_INDEX[code];
    if (idx !== undefined) {
      this.room(1);
      this.buf[this.w++] = 0x80 | idx;
      return;
    }
    this.field(':status', String(code));
  }

  field(name: string, value: string): void {
    const idx = NAME_INDEX.get(name);
    this.room(name.length + value.length + 12);
    if (idx !== undefined) this.integer(idx, 4, 0x00);
    else {
      this.buf[this.w++] = 0x00;
      this.integer(name.length, 7, 0x00);
      this.w += (this.buf as Latin1Buffer).latin1Write(name, this.w);
    }
    this.integer(value.length, 7, 0x00);
    this.w += (this.buf as Latin1Buffer).latin1Write(value, this.w);
  }

  /** Every field of `headers` but pseudo-headers and names in `skip` (names lower-cased; arrays as repeated fields). */
  fields(headers: Record<string, string | string[] | number | undefined>, skip: ReadonlySet<string>): void {
    for (const name of Object.keys(headers)) {
      if (name.charCodeAt(0) === 58) continue;
      const v = headers[name];
      if (v === undefined) continue;
      const lower = name.toLowerCase();
      if (skip.has(lower)) continue;
      if (Array.isArray(v)) for (const x of v) this.field(lower, x);
      else this.field(lower, String(v));
    }
  }

  /** The block written since begin() (valid until the next begin()). */
  end(): Buffer {
    return this.buf.subarray(0, this.w);
  }

  private integer(v: number, prefixBits: number, flags: number): void {
    const max = (1 << prefixBits) - 1;
    if (v < max) {
      this.buf[this.w++] = flags | v;
      return;
    }
    this.buf[this.w++] = flags | max;
    v -= max;
    while (v >= 128) {
      this.buf[this.w++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.w++] = v;
  }

  private room(n: number): void {
    if (this.w + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.w + n));
    this.buf.copy(bigger, 0, 0, this.w);
    this.buf = bigger;
  }
}
