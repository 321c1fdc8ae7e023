// JSON-RPC 2.0 envelopes of MCP messages: what a request body holds (one message or a batch), each
// message classified by what policy and metrics care about (the method, and the tool, resource or
// prompt it names), and the error objects the proxy answers with.

export const enum Target {
  None = 0,
  Tool,
  Resource,
  Prompt,
}

export const enum Kind {
  Request = 0,
  Notification,
  /** The client's answer to a request of the server (sampling, elicitation, roots). */
  Response,
}

export interface McpMessage {
  kind: Kind;
  /** The JSON-RPC id as sent (requests and responses). */
  id: string | number | undefined;
  /** '' for a response. */
  method: string;
  target: Target;
  /** The tool or prompt name, or the resource URI; '' when none. */
  name: string;
  /** The parsed message, kept to rebuild a batch without the entries the proxy answers itself. */
  raw: Record<string, unknown>;
}

export interface ParsedBody {
  batch: boolean;
  messages: McpMessage[];
}

export interface ParseFailure {
  /** PARSE_ERROR or INVALID_REQUEST. */
  code: number;
  message: string;
}

// JSON-RPC 2.0 and MCP error codes.
export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;
/** MCP 2026-07-28: Mcp-Method / Mcp-Name missing or not matching the body. */
export const HEADER_MISMATCH = -32020;
/**
 * A call the proxy's MCP policy refuses. A server-defined code (JSON-RPC reserves -32000..-32099
 * for them); the SDK uses -32000 (connection closed), -32001 (request timeout) and -32002 (resource
 * not found), so Bowline takes -32003, "forbidden".
 */
export const FORBIDDEN = -32003;
/** The request body was larger than the proxy inspects (HTTP 413). */
export const BODY_TOO_LARGE = -32004;

/** Methods whose params name a tool, a resource or a prompt, and where. */
const TARGETS: Record<string, [Target, 'name' | 'uri']> = {
  'tools/call': [Target.Tool, 'name'],
  'prompts/get': [Target.Prompt, 'name'],
  'resources/read': [Target.Resource, 'uri'],
  'resources/subscribe': [Target.Resource, 'uri'],
  'resources/unsubscribe': [Target.Resource, 'uri'],
};

/** Methods whose results list tools, resources or prompts (filtered by policy). */
export const LIST_METHODS: ReadonlySet<string> = new Set(['tools/list', 'resources/list', 'resources/templates/list', 'prompts/list']);

/** The MCP methods that become metric labels as they are; any other is counted as "_other". */
export const KNOWN_METHODS: ReadonlySet<string> = new Set([
  'initialize',
  'ping',
  'tools/list',
  'tools/call',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'resources/subscribe',
  'resources/unsubscribe',
  'prompts/list',
  'prompts/get',
  'completion/complete',
  'logging/setLevel',
  'tasks/get',
  'tasks/list',
  'tasks/result',
  'tasks/cancel',
  'notifications/initialized',
  'notifications/cancelled',
  'notifications/progress',
  'notifications/roots/list_changed',
]);

/**
 * Parses a request body (UTF-8 JSON text). Anything that is not JSON is a parse error; JSON that is
 * not a JSON-RPC 2.0 message (or a non-empty array of them) is an invalid request.
 */
export function parseMcpBody(text: string): ParsedBody | ParseFailure {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { code: PARSE_ERROR, message: 'Parse error: the body is not JSON' };
  }
  if (Array.isArray(v)) {
    if (v.length === 0) return { code: INVALID_REQUEST, message: 'Invalid Request: empty batch' };
    const messages: McpMessage[] = [];
    for (const e of v) {
      const m = classify(e);
      if (m === null) return { code: INVALID_REQUEST, message: 'Invalid Request: a batch entry is not a JSON-RPC 2.0 message' };
      messages.push(m);
    }
    return { batch: true, messages };
  }
  const m = classify(v);
  if (m === null) return { code: INVALID_REQUEST, message: 'Invalid Request: not a JSON-RPC 2.0 message' };
  return { batch: false, messages: [m] };
}

function classify(v: unknown): McpMessage | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  if (o['jsonrpc'] !== '2.0') return null;
  const id = o['id'];
  const hasId = id !== undefined;
  if (hasId && typeof id !== 'string' && (typeof id !== 'number' || !Number.isFinite(id))) return null;
  const method = o['method'];
  if (typeof method === 'string') {
    const [target, name] = targetOf(method, o['params']);
    return { kind: hasId ? Kind.Request : Kind.Notification, id: id as string | number | undefined, method, target, name, raw: o };
  }
  if (method !== undefined || !hasId || (o['result'] === undefined && o['error'] === undefined)) return null;
  return { kind: Kind.Response, id: id as string | number, method: '', target: Target.None, name: '', raw: o };
}

function targetOf(method: string, params: unknown): [Target, string] {
  const p = typeof params === 'object' && params !== null ? (params as Record<string, unknown>) : null;
  const t = TARGETS[method];
  if (t !== undefined) {
    const n = p === null ? undefined : p[t[1]];
    return [t[0], typeof n === 'string' ? n : ''];
  }
  if (method === 'completion/complete' && p !== null && typeof p['ref'] === 'object' && p['ref'] !== null) {
    // Completing a prompt's or a resource template's arguments reveals them: the same grant applies.
    const ref = p['ref'] as Record<string, unknown>;
    if (ref['type'] === 'ref/prompt' && typeof ref['name'] === 'string') return [Target.Prompt, ref['name']];
    if (ref['type'] === 'ref/resource' && typeof ref['uri'] === 'string') return [Target.Resource, ref['uri']];
  }
  return [Target.None, ''];
}

/** A key that tells ids 1 and "1" apart, for matching responses to requests. */
export function idKey(id: unknown): string {
  return typeof id === 'number' ? `n${id}` : typeof id === 'string' ? `s${id}` : '';
}

export function errorResponse(id: string | number | null | undefined, code: number, message: string, data?: unknown): Record<string, unknown> {
  const error: Record<string, unknown> = { code, message };
  if (data !== undefined) error['data'] = data;
  return { jsonrpc: '2.0', id: id ?? null, error };
}

/** The value of the MCP-Protocol-Version header's revision as a comparable string ('' when absent). */
export function isStatelessRevision(version: string): boolean {
  // Revisions are dates; 2026-07-28 made the transport stateless with Mcp-Method / Mcp-Name headers.
  return version >= '2026-07-28';
}
