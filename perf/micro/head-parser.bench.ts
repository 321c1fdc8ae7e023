// Micro benchmark of the HTTP/1 head parser (engine/http1/head-parser.ts) against Node's own llhttp,
// driven the way node:http drives it (HTTPParser from _http_common, kOnHeadersComplete callback).

import { HeadInfo, parseHead } from '../../engine/http1/head-parser';
import { compare, type Contender, fmt, fmtNs, mbPerS, table } from './bench-util';

const crlf = (lines: string[]): Buffer => Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');

export interface HeadInput {
  name: string;
  isRequest: boolean;
  buf: Buffer;
}

export const HEAD_INPUTS: HeadInput[] = [
  {
    // Exactly what wrk sends.
    name: 'wrk GET (1 header)',
    isRequest: true,
    buf: crlf(['GET / HTTP/1.1', 'Host: 127.0.0.1:18200']),
  },
  {
    name: 'browser GET (15 headers)',
    isRequest: true,
    buf: crlf([
      'GET /api/v1/catalog/items?page=2 HTTP/1.1',
      'Host: shop.example.com',
      'Connection: keep-alive',
      'sec-ch-ua: "Chromium";v="124", "Not-A.Brand";v="99"',
      'sec-ch-ua-mobile: ?0',
      'sec-ch-ua-platform: "Linux"',
      'Upgrade-Insecure-Requests: 1',
      'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
      'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
      'Sec-Fetch-Site: same-origin',
      'Sec-Fetch-Mode: navigate',
      'DNT: 1',
      'Sec-Fetch-Dest: document',
      'Referer: https://shop.example.com/',
      'Accept-Encoding: gzip, deflate, br',
      'Accept-Language: en-US,en;q=0.9',
    ]),
  },
  {
    name: 'response head (7 headers)',
    isRequest: false,
    buf: crlf([
      'HTTP/1.1 200 OK',
      'Server: nginx/1.22.1',
      'Date: Sun, 29 Nov 2026 23:53:14 GMT',
      'Content-Type: application/json; charset=utf-8',
      'Content-Length: 1234',
      'Connection: keep-alive',
      'Cache-Control: no-store',
      'Vary: Accept-Encoding',
    ]),
  },
];

// ---- llhttp through Node's binding -------------------------------------------------------------

interface LlhttpParser {
  initialize(type: number, resource: object, maxHeaderSize?: number, lenient?: number): void;
  execute(buf: Buffer): number | Error;
  [k: number]: unknown;
}
interface LlhttpCtor {
  new (): LlhttpParser;
  REQUEST: number;
  RESPONSE: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kOnExecute: number;
  kLenientNone?: number;
}

/** Node 20's llhttp binding: the public-ish internal module first, the deprecated binding second. */
export function loadLlhttp(): { HTTPParser: LlhttpCtor; via: string } {
  try {
    const m = require('_http_common') as { HTTPParser?: LlhttpCtor };
    if (typeof m.HTTPParser === 'function') return { HTTPParser: m.HTTPParser, via: "require('_http_common').HTTPParser" };
  } catch {
    // fall through
  }
  const b = (process as unknown as { binding(n: string): { HTTPParser: LlhttpCtor } }).binding('http_parser');
  return { HTTPParser: b.HTTPParser, via: "process.binding('http_parser').HTTPParser" };
}

/**
 * One llhttp parser per input, reused across messages like a keep-alive connection. The head callback
 * returns 1 for responses ("skip the body", as node:http does for HEAD), so that only the head is parsed.
 */
function llhttpContender(input: HeadInput): Contender {
  const { HTTPParser } = loadLlhttp();
  const p = new HTTPParser();
  let heads = 0;
  const skipBody = input.isRequest ? 0 : 1;
  p[HTTPParser.kOnHeadersComplete] = (_vMajor: number, _vMinor: number, headers: string[]): number => {
    heads += headers.length;
    return skipBody;
  };
  p[HTTPParser.kOnHeaders] = (): void => {};
  p[HTTPParser.kOnBody] = (): void => {};
  p[HTTPParser.kOnMessageComplete] = (): void => {};
  p.initialize(input.isRequest ? HTTPParser.REQUEST : HTTPParser.RESPONSE, {}, 0, HTTPParser.kLenientNone ?? 0);
  const buf = input.buf;
  const check = p.execute(buf);
  if (check !== buf.length || heads === 0) throw new Error(`llhttp did not parse '${input.name}': ${String(check)}`);
  return {
    name: 'llhttp (node:http)',
    run(n: number): number {
      let s = 0;
      for (let i = 0; i < n; i++) s += p.execute(buf) as number;
      return s + heads;
    },
  };
}

function bowlineContender(input: HeadInput): Contender {
  const h = new HeadInfo();
  const buf = input.buf;
  const isReq = input.isRequest;
  h.reset(0);
  if (parseHead(buf, h, isReq, 65536) !== buf.length) throw new Error(`parseHead failed on '${input.name}': error ${h.error}`);
  return {
    name: 'bowline parseHead',
    run(n: number): number {
      let s = 0;
      for (let i = 0; i < n; i++) {
        h.reset(0);
        s += parseHead(buf, h, isReq, 65536);
      }
      return s + h.count;
    },
  };
}

/** The parser plus a string of every header name and value, which is what llhttp hands to JS anyway. */
function bowlineStringsContender(input: HeadInput): Contender {
  const h = new HeadInfo();
  const buf = input.buf;
  const isReq = input.isRequest;
  return {
    name: 'bowline parseHead + all header strings',
    run(n: number): number {
      let s = 0;
      for (let i = 0; i < n; i++) {
        h.reset(0);
        s += parseHead(buf, h, isReq, 65536);
        for (let f = 0; f < h.count; f++) {
          s += buf.toString('latin1', h.nameStart(f), h.nameEnd(f)).length + h.value(buf, f).length;
        }
        if (isReq) s += buf.toString('latin1', h.targetStart, h.targetEnd).length;
      }
      return s;
    },
  };
}

export function runHeadParserBench(): string {
  const rows: string[][] = [];
  for (const input of HEAD_INPUTS) {
    const results = compare([bowlineContender(input), bowlineStringsContender(input), llhttpContender(input)]);
    const ref = results[results.length - 1].nsPerOp;
    for (const r of results) {
      rows.push([
        input.name,
        String(input.buf.length),
        r.name,
        fmtNs(r.nsPerOp),
        `${fmtNs(r.minNs)}–${fmtNs(r.maxNs)}`,
        fmt(1e9 / r.nsPerOp),
        fmt(mbPerS(input.buf.length, r.nsPerOp)),
        `${fmt(ref / r.nsPerOp, 2)}×`,
      ]);
    }
  }
  return [
    `**HTTP/1 head parser** — one head per op, parser state reused (keep-alive); llhttp via ${loadLlhttp().via}`,
    '',
    table(
      ['input', 'bytes', 'parser', 'ns/op (median)', 'min–max', 'ops/s', 'MB/s', 'speed vs llhttp'],
      ['l', 'r', 'l', 'r', 'r', 'r', 'r', 'r'],
      rows,
    ),
    '',
    'speed vs llhttp = llhttp ns/op ÷ this ns/op (higher is faster). llhttp is called the way node:http calls it: ' +
      'one execute() crossing into C++ and a kOnHeadersComplete callback that receives every header name and value ' +
      'as JS strings; parseHead records offsets only, so the "+ all header strings" row adds the cost of making those strings.',
  ].join('\n');
}
