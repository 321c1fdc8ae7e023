// What MCP inspection needs of an HTTP/2 stream: the MCP fields of its headers, and its body held
// (up to the inspection limit) until it is whole. The inspection itself is engine/mcp.

import type { McpInspector, McpOrigin, McpRequestHead, McpVerdict } from '../mcp/inspector';
import type { HeaderBlock } from './upstream-call';

/** The MCP fields of a request's headers (HTTP/2 field names are lower-case). */
export function h2McpHead(h: HeaderBlock, method: string, rawPath: string): McpRequestHead {
  const one = (k: string): string | null => {
    const v = h[k];
    return typeof v === 'string' ? v.trim() : Array.isArray(v) ? (v[0] ?? null) : null;
  };
  const q = rawPath.indexOf('?');
  return {
    httpMethod: method,
    contentType: (one('content-type') ?? '').toLowerCase(),
    accept: (one('accept') ?? '').toLowerCase(),
    protocolVersion: one('mcp-protocol-version') ?? '',
    mcpMethod: one('mcp-method'),
    mcpName: one('mcp-name'),
    sessionId: one('mcp-session-id'),
    legacyQuery: q !== -1 && /[?&]sessionId=/.test(rawPath.slice(q)),
  };
}

/** A POST's body held for inspection, with what the inspection needs to know of its request. */
export class McpBodyHold {
  private readonly parts: Buffer[] = [];
  private bytes = 0;

  constructor(
    readonly head: McpRequestHead,
    readonly origin: McpOrigin,
    readonly routeMarked: boolean,
    private readonly limit: number,
  ) {}

  /** Holds a DATA frame's bytes (the stream's own copy); false: past the limit. */
  add(chunk: Buffer): boolean {
    this.parts.push(chunk);
    this.bytes += chunk.length;
    return this.bytes <= this.limit;
  }

  /** The inspection's verdict on what was held (too large: the settings' answer for that), and the body. */
  judge(mcp: McpInspector, oversized: boolean): { verdict: McpVerdict; body: Buffer } {
    const body = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
    return { verdict: oversized ? mcp.oversized(this.origin, this.routeMarked) : mcp.inspect(this.head, body, this.origin, this.routeMarked), body };
  }
}
