// Micro benchmark of the SSE parser (engine/mcp/sse-parser.ts) against eventsource-parser's createParser,
// fed the same chunks: as Buffers to ours, as strings from a streaming TextDecoder to the library (what a
// user of it must do with body bytes). Streams: many small MCP progress events, few 64 KiB events, and
// small events split across chunk boundaries.

import { createParser, type EventSourceParser } from 'eventsource-parser';
import { SseParser } from '../../engine/mcp/sse-parser';
import { compare, type Contender, fmt, fmtNs, mbPerS, table } from './bench-util';

export interface SseInput {
  name: string;
  chunks: Buffer[];
  bytes: number;
  events: number;
}

/** An MCP progress notification as the TypeScript SDK's server writes it: ~150 bytes on the wire. */
function progressEvent(i: number): string {
  const data = JSON.stringify({
    jsonrpc: '2.0',
    method: 'notifications/progress',
    params: { progressToken: 'tok-7f3a', progress: i, total: 1000, message: 'indexing' },
  });
  return `event: message\nid: ${1000 + i}\ndata: ${data}\n\n`;
}

/** A 64 KiB JSON-ish data line (a large tool result). */
function largeEvent(i: number): string {
  const filler = 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(2000).slice(0, 64 * 1024 - 64);
  return `event: message\nid: big-${i}\ndata: {"jsonrpc":"2.0","id":${i},"result":{"text":"${filler}"}}\n\n`;
}

/** Cuts the stream into chunks of `size` bytes (copied, as separate socket reads would be). */
function chunked(stream: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let p = 0; p < stream.length; p += size) out.push(Buffer.from(stream.subarray(p, Math.min(p + size, stream.length))));
  return out;
}

function input(name: string, events: string[], chunkBytes: number | 'event'): SseInput {
  const chunks = chunkBytes === 'event' ? events.map((e) => Buffer.from(e, 'utf8')) : chunked(Buffer.from(events.join(''), 'utf8'), chunkBytes);
  return { name, chunks, bytes: chunks.reduce((n, c) => n + c.length, 0), events: events.length };
}

const progress = (n: number): string[] => Array.from({ length: n }, (_, i) => progressEvent(i));

export const SSE_INPUTS: SseInput[] = [
  input('200 progress events (~150 B), one per chunk', progress(200), 'event'),
  input('200 progress events, 16 KiB chunks', progress(200), 16 * 1024),
  input('8 events × 64 KiB data, 16 KiB chunks', Array.from({ length: 8 }, (_, i) => largeEvent(i)), 16 * 1024),
  input('200 progress events, 61 B chunks (split)', progress(200), 61),
];

function ourContender(inp: SseInput): Contender {
  let sum = 0;
  const parser = new SseParser((ev) => {
    sum += ev.data.length + 1;
  });
  const chunks = inp.chunks;
  return {
    name: 'bowline SseParser (Buffers)',
    run(n: number): number {
      sum = 0;
      for (let i = 0; i < n; i++) {
        parser.reset();
        for (let k = 0; k < chunks.length; k++) parser.push(chunks[k]);
        parser.end();
      }
      return sum;
    },
  };
}

function libContender(inp: SseInput, predecoded: boolean): Contender {
  let sum = 0;
  const parser: EventSourceParser = createParser({
    onEvent: (m) => {
      sum += m.data.length + 1;
    },
  });
  const chunks = inp.chunks;
  const dec = new TextDecoder();
  const strings = chunks.map((c) => c.toString('utf8'));
  return predecoded
    ? {
        name: 'eventsource-parser, strings given (no decoding)',
        run(n: number): number {
          sum = 0;
          for (let i = 0; i < n; i++) {
            parser.reset();
            for (let k = 0; k < strings.length; k++) parser.feed(strings[k]);
          }
          return sum;
        },
      }
    : {
        name: 'eventsource-parser + TextDecoder',
        run(n: number): number {
          sum = 0;
          for (let i = 0; i < n; i++) {
            parser.reset();
            for (let k = 0; k < chunks.length; k++) parser.feed(dec.decode(chunks[k], { stream: true }));
            parser.feed(dec.decode());
          }
          return sum;
        },
      };
}

/** Runs a contender once and checks that it saw every event's data. */
function check(c: Contender, inp: SseInput, want: number): void {
  const got = c.run(1);
  if (got !== want) throw new Error(`${c.name} on '${inp.name}': ${got} data characters, expected ${want}`);
}

export function runSseBench(): string {
  const rows: string[][] = [];
  for (const inp of SSE_INPUTS) {
    const contenders = [ourContender(inp), libContender(inp, false), libContender(inp, true)];
    const want = contenders[1].run(1);
    if (want <= inp.events) throw new Error(`eventsource-parser saw no data on '${inp.name}'`);
    for (const c of contenders) check(c, inp, want);
    const results = compare(contenders);
    const ref = results[1].nsPerOp;
    for (const r of results) {
      rows.push([
        inp.name,
        fmt(inp.bytes),
        fmt(inp.chunks.length),
        r.name,
        fmtNs(r.nsPerOp),
        `${fmtNs(r.minNs)}–${fmtNs(r.maxNs)}`,
        fmtNs(r.nsPerOp / inp.events),
        fmt(mbPerS(inp.bytes, r.nsPerOp)),
        `${fmt(ref / r.nsPerOp, 2)}×`,
      ]);
    }
  }
  return [
    '**SSE parser** — one whole stream per op, fed chunk by chunk (the same chunks to every contender)',
    '',
    table(
      ['stream', 'bytes', 'chunks', 'parser', 'ns/op (median)', 'min–max', 'ns/event', 'MB/s', 'speed vs eventsource-parser + TextDecoder'],
      ['l', 'r', 'r', 'l', 'r', 'r', 'r', 'r', 'r'],
      rows,
    ),
    '',
    'speed = (eventsource-parser + TextDecoder) ns/op ÷ this ns/op (higher is faster). The library takes strings, so ' +
      'a proxy holding body Buffers must decode them first; the "strings given" row leaves that cost out, for reference.',
  ].join('\n');
}
