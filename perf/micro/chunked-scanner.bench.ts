// Micro benchmark of the chunked-body scanner (engine/http1/chunked-scanner.ts) against a naive scan
// built on Buffer.indexOf and parseInt, on bodies of many small chunks and of few large chunks.

import { ChunkedScanner } from '../../engine/http1/chunked-scanner';
import { compare, type Contender, fmt, fmtNs, mbPerS, table } from './bench-util';

export interface ChunkedInput {
  name: string;
  buf: Buffer;
  payloadBytes: number;
}

/** A chunked body of `count` chunks of `size` bytes each, then the last chunk and an empty trailer. */
export function chunkedBody(count: number, size: number): Buffer {
  const data = Buffer.alloc(size, 0x61);
  const line = Buffer.from(size.toString(16) + '\r\n', 'latin1');
  const parts: Buffer[] = [];
  const CRLF = Buffer.from('\r\n', 'latin1');
  for (let i = 0; i < count; i++) parts.push(line, data, CRLF);
  parts.push(Buffer.from('0\r\n\r\n', 'latin1'));
  return Buffer.concat(parts);
}

export const CHUNKED_INPUTS: ChunkedInput[] = [
  { name: '1024 chunks × 16 B', buf: chunkedBody(1024, 16), payloadBytes: 1024 * 16 },
  { name: '64 chunks × 256 B', buf: chunkedBody(64, 256), payloadBytes: 64 * 256 },
  { name: '4 chunks × 16 KiB', buf: chunkedBody(4, 16 * 1024), payloadBytes: 4 * 16 * 1024 },
];

const CRLF = Buffer.from('\r\n', 'latin1');
const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');

/**
 * The straightforward way: find each size line's CRLF with indexOf, parseInt the hex, jump over the data.
 * It checks nothing beyond that (no strict size grammar, extensions or trailer limits), which is why it
 * is a lower bound on the work, not an alternative. Returns the end offset, -1 need more, -2 bad size.
 */
export function naiveChunkedEnd(buf: Buffer, start: number, end: number): number {
  let p = start;
  for (;;) {
    const lineEnd = buf.indexOf(CRLF, p);
    if (lineEnd === -1 || lineEnd + 2 > end) return -1;
    const size = parseInt(buf.toString('latin1', p, lineEnd), 16);
    if (Number.isNaN(size)) return -2;
    p = lineEnd + 2;
    if (size === 0) {
      if (p + 2 <= end && buf[p] === 0x0d && buf[p + 1] === 0x0a) return p + 2;
      const t = buf.indexOf(CRLFCRLF, p);
      return t === -1 || t + 4 > end ? -1 : t + 4;
    }
    p += size + 2;
    if (p > end) return -1;
  }
}

function scannerContender(input: ChunkedInput): Contender {
  const sc = new ChunkedScanner();
  const buf = input.buf;
  const len = buf.length;
  sc.reset();
  if (sc.scan(buf, 0, len) !== len) throw new Error(`ChunkedScanner failed on '${input.name}': error ${sc.error}`);
  return {
    name: 'bowline ChunkedScanner',
    run(n: number): number {
      let s = 0;
      for (let i = 0; i < n; i++) {
        sc.reset();
        s += sc.scan(buf, 0, len);
      }
      return s;
    },
  };
}

function naiveContender(input: ChunkedInput): Contender {
  const buf = input.buf;
  const len = buf.length;
  if (naiveChunkedEnd(buf, 0, len) !== len) throw new Error(`naive scan failed on '${input.name}'`);
  return {
    name: 'naive indexOf + parseInt',
    run(n: number): number {
      let s = 0;
      for (let i = 0; i < n; i++) s += naiveChunkedEnd(buf, 0, len);
      return s;
    },
  };
}

export function runChunkedBench(): string {
  const rows: string[][] = [];
  for (const input of CHUNKED_INPUTS) {
    const results = compare([scannerContender(input), naiveContender(input)]);
    const ref = results[1].nsPerOp;
    for (const r of results) {
      rows.push([
        input.name,
        fmt(input.buf.length),
        r.name,
        fmtNs(r.nsPerOp),
        `${fmtNs(r.minNs)}–${fmtNs(r.maxNs)}`,
        fmt(mbPerS(input.buf.length, r.nsPerOp)),
        `${fmt(ref / r.nsPerOp, 2)}×`,
      ]);
    }
  }
  return [
    '**Chunked body scanner** — one whole body per op, in one buffer (framing only: data bytes are skipped, not copied)',
    '',
    table(
      ['body', 'bytes on the wire', 'scanner', 'ns/op (median)', 'min–max', 'MB/s (wire bytes)', 'speed vs naive'],
      ['l', 'r', 'l', 'r', 'r', 'r', 'r'],
      rows,
    ),
    '',
    'speed vs naive = naive ns/op ÷ this ns/op (higher is faster). The naive scan validates almost nothing; ' +
      'ChunkedScanner checks the strict grammar (size digits, extensions, CRLFs, trailers) and is incremental across reads.',
  ].join('\n');
}
