// What MCP inspection needs of the HTTP/1 codec: the MCP fields of a request head, a request rebuilt
// around an inspected body (framed by length), local JSON-RPC answers, and response heads for a
// rewritten body (chunked). The inspection itself is protocol-neutral (engine/mcp).

import type { McpRequestHead } from '../mcp/inspector';
import { composeHead } from './head-writer';
import { type HeadInfo, parseHead } from './head-parser';

const STATUS_TEXT: Record<number, string> = { 200: 'OK', 202: 'Accepted', 400: 'Bad Request', 413: 'Content Too Large', 415: 'Unsupported Media Type', 502: 'Bad Gateway' };

function field(buf: Buffer, h: HeadInfo, name: string): string | null {
  const i = h.find(buf, name);
  return i === -1 ? null : h.value(buf, i).trim();
}

/** The head fields MCP inspection reads (strings made only for requests of MCP routes). */
export function readMcpHead(buf: Buffer, h: HeadInfo, httpMethod: string, targetStart: number, targetEnd: number): McpRequestHead {
  const q = buf.indexOf(0x3f, targetStart);
  const query = q === -1 || q >= targetEnd ? '' : buf.toString('latin1', q, targetEnd);
  return {
    httpMethod,
    contentType: (field(buf, h, 'content-type') ?? '').toLowerCase(),
    accept: (field(buf, h, 'accept') ?? '').toLowerCase(),
    protocolVersion: field(buf, h, 'mcp-protocol-version') ?? '',
    mcpMethod: field(buf, h, 'mcp-method'),
    mcpName: field(buf, h, 'mcp-name'),
    sessionId: field(buf, h, 'mcp-session-id'),
    legacyQuery: /[?&]sessionId=/.test(query),
  };
}

/** A local answer with a JSON body (or none, for 202). */
export function jsonReply(status: number, body: Buffer | null, close: boolean): Buffer {
  const head =
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\n` +
    (body === null ? 'content-length: 0\r\n' : `content-type: application/json\r\ncontent-length: ${body.length}\r\n`) +
    'l5d-proxy-error: mcp\r\n' +
    (close ? 'connection: close\r\n' : '') +
    '\r\n';
  return body === null ? Buffer.from(head, 'latin1') : Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/**
 * The request again, with `body` framed by content-length (the inspected body, or a batch without
 * its refused entries) and `rest` (pipelined bytes) after it; `h` is re-parsed on the new buffer.
 * Returns the head's end, or -1 if the rebuilt head does not parse (it always should).
 */
export function rebuildRequest(buf: Buffer, h: HeadInfo, body: Buffer, rest: Buffer | null, maxHeadBytes: number): { buf: Buffer; end: number } {
  h.dropAll(buf, 'content-length');
  h.dropAll(buf, 'transfer-encoding');
  const head = composeHead(buf, h, Buffer.from(`content-length: ${body.length}\r\n`, 'latin1'));
  const out = Buffer.concat(rest === null ? [head, body] : [head, body, rest]);
  h.reset(0);
  const end = parseHead(out, h, true, maxHeadBytes + 64);
  return { buf: out, end: end < 0 ? -1 : end };
}

/** A response head whose body the proxy rewrites: chunked (HTTP/1.1 clients) or delimited by close. */
export function rewrittenResponseHead(buf: Buffer, h: HeadInfo, statusOverride: number, contentType: string, extra: Buffer | null, chunked: boolean): Buffer {
  const framing = chunked ? 'transfer-encoding: chunked\r\n' : '';
  if (statusOverride !== 0) {
    return Buffer.from(
      `HTTP/1.1 ${statusOverride} ${STATUS_TEXT[statusOverride] ?? 'OK'}\r\ncontent-type: ${contentType}\r\n${framing}${extra === null ? '' : extra.toString('latin1')}\r\n`,
      'latin1',
    );
  }
  h.dropAll(buf, 'content-length');
  h.dropAll(buf, 'transfer-encoding');
  const add = Buffer.from(framing + (extra === null ? '' : extra.toString('latin1')), 'latin1');
  return composeHead(buf, h, add.length === 0 ? null : add);
}

const CRLF = Buffer.from('\r\n', 'latin1');
export const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');

/** `data` as one chunk of the chunked coding. */
export function chunkOf(data: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`, 'latin1'), data, CRLF]);
}
