// The MCP peers the proxy's MCP tests and benchmark use, checked on their own with no proxy: the SDK
// server in its stateful (SSE, resumable), stateless and JSON modes with the SDK client; progress;
// a stream cut mid-call and resumed with Last-Event-ID; and how the SDK client takes the answers a
// proxy could give a denied tools/call (200 with a JSON-RPC error, 403, 400).

import { after, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema, McpError } from '@modelcontextprotocol/sdk/types.js';
import {
  connectClient,
  initializeRaw,
  type McpServerOptions,
  type McpTestServer,
  postRpc,
  README_URI,
  resultText,
  SECRET_URI,
  startMcpServer,
  TOOL_NAMES,
} from '../helpers/mcp-server';

const CALL_MS = 5_000;
const cleanup: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

async function server(opts?: McpServerOptions): Promise<McpTestServer> {
  const s = await startMcpServer(opts);
  cleanup.push(() => s.close());
  return s;
}

async function client(url: string, opts?: Parameters<typeof connectClient>[1]): Promise<Client> {
  const c = await connectClient(url, opts);
  cleanup.push(() => c.close());
  return c;
}

/** Rejects after ms: bounds waits that have no timeout of their own. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no result in ${ms} ms`)), ms)));
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

describe('stateful server, SSE answers', { timeout: 30_000 }, () => {
  test('initialize, list, call tools, read a resource, get a prompt; calls and requests are recorded', async () => {
    const s = await server();
    const c = await client(s.url);
    assert.equal(c.getServerVersion()?.name, 'bowline-test-mcp');

    const tools = await c.listTools(undefined, { timeout: CALL_MS });
    assert.deepEqual(tools.tools.map((t) => t.name).sort(), [...TOOL_NAMES].sort());
    assert.equal(tools.tools.length, 7);

    assert.equal(resultText(await c.callTool({ name: 'echo', arguments: { text: 'hi' } }, undefined, { timeout: CALL_MS })), 'hi');
    assert.equal(resultText(await c.callTool({ name: 'add', arguments: { a: 2, b: 3 } }, undefined, { timeout: CALL_MS })), '5');
    const fail = await c.callTool({ name: 'fail', arguments: {} }, undefined, { timeout: CALL_MS });
    assert.equal(fail.isError, true);
    assert.equal(resultText(fail), 'failed on purpose');

    // A throwing handler, an unknown tool and bad arguments are all results with isError, not JSON-RPC errors.
    const boom = await c.callTool({ name: 'boom', arguments: {} }, undefined, { timeout: CALL_MS });
    assert.equal(boom.isError, true);
    assert.equal(resultText(boom), 'boom');
    const unknown = await c.callTool({ name: 'nope', arguments: {} }, undefined, { timeout: CALL_MS });
    assert.equal(unknown.isError, true);
    assert.match(resultText(unknown), /Tool nope not found/);
    const bad = await c.callTool({ name: 'add', arguments: { a: 'x' } }, undefined, { timeout: CALL_MS });
    assert.equal(bad.isError, true);
    assert.match(resultText(bad), /Input validation error/);

    const readme = await c.readResource({ uri: README_URI }, { timeout: CALL_MS });
    assert.match(JSON.stringify(readme.contents[0]), /Readme/);
    const secret = await c.readResource({ uri: SECRET_URI }, { timeout: CALL_MS });
    assert.match(JSON.stringify(secret.contents[0]), /api-key/);
    // An unknown resource, unlike an unknown tool, is a JSON-RPC error (-32602).
    await assert.rejects(c.readResource({ uri: 'file:///nope' }, { timeout: CALL_MS }), (e: unknown) => e instanceof McpError && e.code === -32602);

    const greet = await c.getPrompt({ name: 'greet', arguments: { name: 'Ada' } }, { timeout: CALL_MS });
    assert.deepEqual(greet.messages[0]?.content, { type: 'text', text: 'Hello, Ada!' });
    const prompts = await c.listPrompts(undefined, { timeout: CALL_MS });
    assert.deepEqual(prompts.prompts.map((p) => p.name).sort(), ['admin_override', 'greet']);

    assert.deepEqual(s.calls, [
      'tool:echo',
      'tool:add',
      'tool:fail',
      'tool:boom',
      'tool:nope',
      'tool:add',
      `resource:${README_URI}`,
      `resource:${SECRET_URI}`,
      'resource:file:///nope',
      'prompt:greet',
    ]);
    // After initialize every request carries the session and the negotiated protocol version; the
    // client also opened the standalone GET stream.
    const [init, ...rest] = s.requests;
    assert.equal(init?.method, 'POST');
    assert.equal(init?.headers['mcp-session-id'], undefined);
    const sid = rest[0]?.headers['mcp-session-id'];
    assert.ok(typeof sid === 'string' && sid.length > 0);
    for (const r of rest) {
      assert.equal(r.headers['mcp-session-id'], sid);
      assert.equal(r.headers['mcp-protocol-version'], '2025-11-25');
    }
    assert.ok(rest.some((r) => r.method === 'GET' && String(r.headers['accept']).includes('text/event-stream')));

    assert.equal(s.sessionCount(), 1);
    await (c.transport as StreamableHTTPClientTransport).terminateSession();
    assert.equal(s.requests.at(-1)?.method, 'DELETE');
    assert.equal(s.sessionCount(), 0);
  });

  test('slow: the client gets every progress notification before the result', async () => {
    const s = await server();
    const c = await client(s.url);
    const progress: number[] = [];
    let resolved = false;
    const r = await c.callTool({ name: 'slow', arguments: { steps: 4, delayMs: 20 } }, undefined, {
      timeout: CALL_MS,
      onprogress: (p) => {
        assert.equal(resolved, false);
        progress.push(p.progress);
      },
    });
    resolved = true;
    assert.equal(resultText(r), 'done');
    assert.deepEqual(progress, [1, 2, 3, 4]);
  });

  test('raw POST: the answer is an SSE stream with a priming event, then the result', async () => {
    const s = await server();
    const h = await initializeRaw(s.url);
    const a = await postRpc(s.url, { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'echo', arguments: { text: 'raw' } } }, h);
    assert.equal(a.status, 200);
    assert.match(String(a.headers['content-type']), /^text\/event-stream/);
    assert.match(a.body, /^id: [^\n]+\ndata: \n\n/);
    assert.deepEqual(a.messages, [{ jsonrpc: '2.0', id: 7, result: { content: [{ type: 'text', text: 'raw' }] } }]);
    // Without a session, and with an unknown one.
    const noSid = await postRpc(s.url, { jsonrpc: '2.0', id: 8, method: 'tools/list' }, { 'mcp-protocol-version': '2025-11-25' });
    assert.equal(noSid.status, 400);
    const badSid = await postRpc(s.url, { jsonrpc: '2.0', id: 9, method: 'tools/list' }, { ...h, 'mcp-session-id': 'nope' });
    assert.equal(badSid.status, 404);
  });
});

describe('stateless and JSON modes', { timeout: 30_000 }, () => {
  test('stateless: no session id, a server per request, GET is 405', async () => {
    const s = await server({ mode: 'stateless' });
    const c = await client(s.url);
    assert.equal((await c.listTools(undefined, { timeout: CALL_MS })).tools.length, 7);
    assert.equal(resultText(await c.callTool({ name: 'echo', arguments: { text: 'x' } }, undefined, { timeout: CALL_MS })), 'x');
    const progress: number[] = [];
    await c.callTool({ name: 'slow', arguments: { steps: 2, delayMs: 10 } }, undefined, { timeout: CALL_MS, onprogress: (p) => progress.push(p.progress) });
    assert.deepEqual(progress, [1, 2]);
    assert.ok(s.requests.every((r) => r.headers['mcp-session-id'] === undefined));
    assert.ok(s.requests.some((r) => r.method === 'GET'));
    const raw = await postRpc(s.url, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'add', arguments: { a: 1, b: 1 } } });
    assert.equal(raw.status, 200);
    assert.deepEqual(raw.messages, [{ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: '2' }] } }]);
    assert.deepEqual(s.calls, ['tool:echo', 'tool:slow', 'tool:add']);
  });

  test('json: answers are application/json; progress notifications are dropped', async () => {
    const s = await server({ json: true });
    const c = await client(s.url);
    assert.equal(resultText(await c.callTool({ name: 'echo', arguments: { text: 'j' } }, undefined, { timeout: CALL_MS })), 'j');
    const progress: number[] = [];
    const r = await c.callTool({ name: 'slow', arguments: { steps: 2, delayMs: 10 } }, undefined, { timeout: CALL_MS, onprogress: (p) => progress.push(p.progress) });
    assert.equal(resultText(r), 'done');
    // The SDK's JSON mode writes only responses: notifications tied to a request have nowhere to go.
    assert.deepEqual(progress, []);
    const h = await initializeRaw(s.url);
    const a = await postRpc(s.url, { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo', arguments: { text: 'k' } } }, h);
    assert.equal(a.status, 200);
    assert.match(String(a.headers['content-type']), /^application\/json/);
    assert.deepEqual(a.messages, [{ jsonrpc: '2.0', id: 3, result: { content: [{ type: 'text', text: 'k' }] } }]);
  });
});

describe('resumption with Last-Event-ID', { timeout: 30_000 }, () => {
  test('the transport resumes a POST stream cut after the first progress event, and the result arrives', async () => {
    const s = await server();
    const errors: string[] = [];
    const c = await client(s.url, {
      reconnectionOptions: { initialReconnectionDelay: 50, maxReconnectionDelay: 200, reconnectionDelayGrowFactor: 1.5, maxRetries: 3 },
      onerror: (e) => errors.push(e.message),
    });
    s.cutStreamAfterProgress('slow', 1);
    const progress: number[] = [];
    const tokens: string[] = [];
    const r = await c.callTool({ name: 'slow', arguments: { steps: 4, delayMs: 100 } }, undefined, {
      timeout: CALL_MS,
      onprogress: (p) => progress.push(p.progress),
      onresumptiontoken: (t) => tokens.push(t),
    });
    assert.equal(resultText(r), 'done');
    assert.deepEqual(progress, [1, 2, 3, 4]);
    assert.ok(errors.some((e) => /SSE stream disconnected/.test(e)), errors.join('; '));
    // The resume is a GET that names the last event the client saw: the first progress event.
    const resume = s.requests.find((q) => q.method === 'GET' && q.headers['last-event-id'] !== undefined);
    assert.ok(resume, 'no GET with Last-Event-ID');
    assert.equal(resume.headers['last-event-id'], tokens[1]); // tokens[0] is the priming event
    assert.equal(s.events.replays, 1);
    assert.deepEqual(s.calls, ['tool:slow']); // the call ran once; only its stream was resumed
  });

  test('another client resumes with a saved resumption token (request option resumptionToken)', async () => {
    const s = await server();
    // The first client does not reconnect by itself (maxRetries 0): its stream is cut and it is abandoned.
    const a = await client(s.url, { reconnectionOptions: { initialReconnectionDelay: 50, maxReconnectionDelay: 50, reconnectionDelayGrowFactor: 1, maxRetries: 0 } });
    s.cutStreamAfterProgress('slow', 1);
    let token: string | undefined;
    let sawProgress!: () => void;
    const firstProgress = new Promise<void>((r) => (sawProgress = r));
    const abandoned = a.callTool({ name: 'slow', arguments: { steps: 3, delayMs: 50 } }, undefined, {
      timeout: CALL_MS,
      onprogress: () => sawProgress(),
      onresumptiontoken: (t) => (token = t),
    });
    abandoned.catch(() => {}); // it fails when `a` closes below
    await within(firstProgress, CALL_MS, 'first progress');
    const sessionId = (a.transport as StreamableHTTPClientTransport).sessionId;
    assert.ok(token !== undefined && sessionId !== undefined);

    // A transport with the session id skips initialize; the request with resumptionToken is not
    // POSTed again but becomes GET + Last-Event-ID, and the replayed result takes the new request's id.
    const b = await client(s.url, { sessionId, onerror: () => {} });
    const r = await b.request({ method: 'tools/call', params: { name: 'slow', arguments: { steps: 3, delayMs: 50 } } }, CallToolResultSchema, {
      timeout: CALL_MS,
      resumptionToken: token,
    });
    assert.equal(resultText(r), 'done');
    assert.deepEqual(s.calls, ['tool:slow']);
    assert.equal(s.requests.filter((q) => q.headers['last-event-id'] === token).length, 1);
    await a.close();
    await assert.rejects(abandoned);
  });
});

describe('how the SDK client takes a denied tools/call', { timeout: 30_000 }, () => {
  const DENY = { code: -32003, message: 'tool delete_everything denied by policy' };
  const body = (id: unknown): unknown => ({ jsonrpc: '2.0', id, error: DENY });

  async function deniedBy(answer: McpServerOptions['answer']): Promise<{ error: unknown; after: string; s: McpTestServer }> {
    const s = await server({ answer });
    const c = await client(s.url);
    const error = await c.callTool({ name: 'delete_everything', arguments: {} }, undefined, { timeout: CALL_MS }).then(
      () => assert.fail('the denied call resolved'),
      (e: unknown) => e,
    );
    // The client stays usable after the denial.
    const after = resultText(await c.callTool({ name: 'echo', arguments: { text: 'still here' } }, undefined, { timeout: CALL_MS }));
    return { error, after, s };
  }
  const onDelete = (status: number, contentType?: string, sse = false) => (m: { id?: unknown; method?: string; params?: Record<string, unknown> }) =>
    m.method === 'tools/call' && m.params?.['name'] === 'delete_everything'
      ? { status, body: sse ? `event: message\ndata: ${JSON.stringify(body(m.id))}\n\n` : body(m.id), contentType }
      : undefined;

  test('(a) HTTP 200 application/json with a JSON-RPC error: callTool rejects with McpError(code, message)', async () => {
    const { error, after } = await deniedBy(onDelete(200));
    assert.ok(error instanceof McpError, String(error));
    assert.equal(error.code, DENY.code);
    assert.equal(error.message, `MCP error ${DENY.code}: ${DENY.message}`);
    assert.equal(after, 'still here');
  });

  test('(a2) HTTP 200 text/event-stream with the JSON-RPC error as one event: the same McpError', async () => {
    const { error } = await deniedBy(onDelete(200, 'text/event-stream', true));
    assert.ok(error instanceof McpError, String(error));
    assert.equal(error.code, DENY.code);
  });

  test('(b) HTTP 403 with the same body: callTool rejects with StreamableHTTPError(403), the body only as text', async () => {
    const { error, after } = await deniedBy(onDelete(403));
    assert.ok(error instanceof StreamableHTTPError, String(error));
    assert.ok(!(error instanceof McpError));
    assert.equal(error.code, 403);
    assert.match(error.message, /^Streamable HTTP error: Error POSTing to endpoint: \{"jsonrpc":"2.0","id":\d+,"error":\{"code":-32003,/);
    assert.equal(after, 'still here');
  });

  test('(c) HTTP 400 with the same body: StreamableHTTPError(400), likewise', async () => {
    const { error, after } = await deniedBy(onDelete(400));
    assert.ok(error instanceof StreamableHTTPError, String(error));
    assert.equal(error.code, 400);
    assert.equal(after, 'still here');
  });
});
