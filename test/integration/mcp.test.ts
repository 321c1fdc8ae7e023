// MCP through the proxy with the official SDK client and server (Streamable HTTP): per-tool metrics,
// deny-by-default MCP policy (denied calls answered as JSON-RPC errors that never reach the server,
// list results filtered), SSE progress passing through, resumption with Last-Event-ID, raw JSON-RPC
// edge cases (batches mixing allowed and denied calls, invalid JSON, header/body mismatch, oversized
// bodies, wrong content types), audit mode, and the one-line --mcp.

import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { z } from 'zod';
import { scrape } from '../helpers/admin-probe';
import { TempConfig } from '../helpers/config-file';
import { connectClient, initializeRaw, type McpTestServer, postRpc, README_URI, resultText, SECRET_URI, startMcpServer } from '../helpers/mcp-server';
import { metricSum, type ProxyProcess, startProxy } from '../helpers/proxy-process';

const CALL_MS = 10_000;

function meshYaml(port: number, mcp: string): string {
  return `
listeners:
  - { name: out, address: 127.0.0.1:0, routes: [tools, plain] }
services:
  - name: mcp-server
    protocol: http1
    endpoints: [{ address: 127.0.0.1:${port} }]
routes:
  - name: tools
    mcp: true
    matches: [{ path: { type: PathPrefix, value: /mcp } }]
    backendRefs: [{ name: mcp-server }]
  - name: plain
    backendRefs: [{ name: mcp-server }]
mcp:
  maxBodyBytes: 65536
${mcp}
`;
}

const POLICY = `
  policies:
    - name: agents
      targetRef: { kind: HTTPRoute, name: tools }
      rules:
        - name: local-agents
          network: { networks: [{ cidr: 127.0.0.0/8 }] }
          tools: [echo, add, fail, boom, slow, "first_*"]
          resources: ["file:///docs/*"]
          prompts: [greet]
`;

const call = (id: unknown, name: string): Record<string, unknown> => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } });

/** The JSON-RPC messages in an SSE body's data lines. */
function parseSseMessages(text: string): unknown[] {
  return text
    .split(/\r?\n\r?\n/)
    .map((ev) => ev.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n'))
    .filter((d) => d !== '')
    .map((d) => JSON.parse(d) as unknown);
}

async function metrics(p: ProxyProcess): Promise<string> {
  return scrape(p);
}

function mcpCount(text: string, name: string, labels: Record<string, string>): number {
  return metricSum(text, name, labels);
}

describe('MCP with a deny-by-default policy (SDK client and server through the proxy)', { timeout: 120_000 }, () => {
  let server: McpTestServer;
  let cfg: TempConfig;
  let proxy: ProxyProcess;
  let url: string;

  before(async () => {
    server = await startMcpServer({ retryIntervalMs: 50 });
    cfg = new TempConfig(meshYaml(server.port, POLICY));
    proxy = await startProxy(['--config', cfg.file, '--workers', '1', '--drain-grace-ms', '500']);
    url = `http://127.0.0.1:${proxy.ports['out']}/mcp`;
  });
  after(async () => {
    await proxy?.stop();
    await server?.close();
    cfg?.remove();
  });

  test('tools/list is filtered; allowed calls work; denied ones get -32003 and never reach the server', async () => {
    const c = await connectClient(url);
    try {
      const tools = (await c.listTools(undefined, { timeout: CALL_MS })).tools.map((t) => t.name).sort();
      assert.deepEqual(tools, ['add', 'boom', 'echo', 'fail', 'first_event', 'slow']);
      assert.equal(resultText(await c.callTool({ name: 'echo', arguments: { text: 'hi' } }, undefined, { timeout: CALL_MS })), 'hi');
      const fail = await c.callTool({ name: 'fail', arguments: {} }, undefined, { timeout: CALL_MS });
      assert.equal(fail.isError, true);
      const denied = await c.callTool({ name: 'delete_everything', arguments: {} }, undefined, { timeout: CALL_MS }).then(
        () => assert.fail('the denied call resolved'),
        (e: unknown) => e as { code?: number; message?: string },
      );
      assert.equal(denied.code, -32003);
      assert.match(String(denied.message), /delete_everything/);
      assert.ok(!server.calls.includes('tool:delete_everything'), server.calls.join(','));
      // The session lives on after a denial.
      assert.equal(resultText(await c.callTool({ name: 'add', arguments: { a: 2, b: 3 } }, undefined, { timeout: CALL_MS })), '5');

      const resources = (await c.listResources(undefined, { timeout: CALL_MS })).resources.map((r) => r.uri);
      assert.deepEqual(resources, [README_URI]);
      const doc = await c.readResource({ uri: README_URI }, { timeout: CALL_MS });
      assert.ok(doc.contents.length > 0);
      await assert.rejects(c.readResource({ uri: SECRET_URI }, { timeout: CALL_MS }), (e: { code?: number }) => e.code === -32003);
      // A dot segment does not lead out of the granted directory.
      await assert.rejects(c.readResource({ uri: 'file:///docs/../secret/keys.txt' }, { timeout: CALL_MS }), (e: { code?: number }) => e.code === -32003);
      assert.ok(!server.calls.includes(`resource:${SECRET_URI}`));

      const prompts = (await c.listPrompts(undefined, { timeout: CALL_MS })).prompts.map((p) => p.name);
      assert.deepEqual(prompts, ['greet']);
      const greet = await c.getPrompt({ name: 'greet', arguments: { name: 'Ada' } }, { timeout: CALL_MS });
      assert.ok(JSON.stringify(greet.messages).includes('Ada'));
      await assert.rejects(c.getPrompt({ name: 'admin_override' }, { timeout: CALL_MS }), (e: { code?: number }) => e.code === -32003);
      assert.ok(!server.calls.includes('prompt:admin_override'));
      // The client may take gzip; the server is asked for identity, so that answers can be read.
      const posts = server.requests.filter((r) => r.method === 'POST');
      assert.ok(posts.length > 0 && posts.every((r) => r.headers['accept-encoding'] === 'identity'), JSON.stringify(posts.map((r) => r.headers['accept-encoding'])));
    } finally {
      await c.close();
    }

    const m = await metrics(proxy);
    const at = { route: 'tools', method: 'tools/call' };
    assert.equal(mcpCount(m, 'mcp_request_total', { ...at, name: 'echo' }), 1);
    assert.equal(mcpCount(m, 'mcp_response_total', { ...at, name: 'echo', classification: 'success' }), 1);
    assert.equal(mcpCount(m, 'mcp_response_total', { ...at, name: 'fail', classification: 'failure' }), 1);
    assert.equal(mcpCount(m, 'mcp_response_errors_total', { ...at, name: 'fail', error: 'is-error' }), 1);
    assert.equal(mcpCount(m, 'mcp_response_errors_total', { ...at, name: 'delete_everything', error: 'denied' }), 1);
    assert.equal(mcpCount(m, 'mcp_response_latency_ms_count', { ...at, name: 'echo' }), 1);
    assert.equal(mcpCount(m, 'mcp_authz_deny_total', { route: 'tools', mode: 'enforce' }), 4);
    assert.ok(mcpCount(m, 'mcp_authz_allow_total', { route: 'tools', policy: 'agents', rule: 'local-agents' }) >= 5);
    // One tool, one resource and one prompt were filtered out of the lists.
    assert.equal(mcpCount(m, 'mcp_list_filtered_total', { route: 'tools' }), 3);
    assert.equal(mcpCount(m, 'mcp_response_total', { route: 'tools', method: 'resources/read', name: README_URI, classification: 'success' }), 1);
    assert.equal(mcpCount(m, 'mcp_response_total', { route: 'tools', method: 'prompts/get', name: 'greet', classification: 'success' }), 1);
    assert.ok(mcpCount(m, 'mcp_sessions_opened_total', {}) >= 1);
  });

  test('progress notifications stream through as they are sent', async () => {
    const c = await connectClient(url);
    try {
      const arrivals: number[] = [];
      const t0 = Date.now();
      const r = await c.callTool({ name: 'slow', arguments: { steps: 4, delayMs: 150 } }, undefined, { timeout: CALL_MS, onprogress: () => arrivals.push(Date.now() - t0) });
      assert.equal(resultText(r), 'done');
      assert.equal(arrivals.length, 4);
      // Spread over the call, not delivered in one lump at the end.
      assert.ok(arrivals[3]! - arrivals[0]! >= 300, arrivals.join(','));
    } finally {
      await c.close();
    }
  });

  test('a stream cut mid-call resumes through the proxy with Last-Event-ID', async () => {
    const errors: string[] = [];
    const c = await connectClient(url, {
      reconnectionOptions: { initialReconnectionDelay: 50, maxReconnectionDelay: 200, reconnectionDelayGrowFactor: 1.5, maxRetries: 3 },
      onerror: (e) => errors.push(e.message),
    });
    try {
      server.cutStreamAfterProgress('slow', 1);
      const progress: number[] = [];
      const before = server.calls.filter((x) => x === 'tool:slow').length;
      const r = await c.callTool({ name: 'slow', arguments: { steps: 3, delayMs: 100 } }, undefined, { timeout: CALL_MS, onprogress: (p) => progress.push(p.progress) });
      assert.equal(resultText(r), 'done');
      assert.deepEqual(progress, [1, 2, 3]);
      assert.ok(server.requests.some((q) => q.method === 'GET' && q.headers['last-event-id'] !== undefined), 'no resumption GET reached the server');
      assert.equal(server.calls.filter((x) => x === 'tool:slow').length, before + 1, 'the call ran once');
    } finally {
      await c.close();
    }
  });

  test('a DELETE ends the session in the gauge', async () => {
    const c = await connectClient(url);
    const before = mcpCount(await metrics(proxy), 'mcp_sessions_active', {});
    await (c.transport as StreamableHTTPClientTransport).terminateSession();
    await c.close();
    const after = mcpCount(await metrics(proxy), 'mcp_sessions_active', {});
    assert.equal(after, before - 1);
  });

  test('a batch mixing allowed and denied calls: only the denied entries are refused', async () => {
    const h = await initializeRaw(url, '2025-03-26');
    const before = server.calls.length;
    const a = await postRpc(
      url,
      [
        { jsonrpc: '2.0', id: 'a', method: 'tools/call', params: { name: 'echo', arguments: { text: 'one' } } },
        { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'delete_everything', arguments: {} } },
        { jsonrpc: '2.0', id: 'c', method: 'tools/call', params: { name: 'add', arguments: { a: 1, b: 1 } } },
      ],
      h,
    );
    assert.equal(a.status, 200, a.body);
    const byId = new Map((a.messages as { id: unknown }[]).map((m) => [m.id, m as Record<string, unknown>]));
    assert.equal(byId.size, 3, a.body);
    assert.equal(resultText(byId.get('a')!['result']), 'one');
    assert.equal(resultText(byId.get('c')!['result']), '2');
    assert.equal((byId.get(7)!['error'] as { code: number }).code, -32003);
    assert.deepEqual(server.calls.slice(before), ['tool:echo', 'tool:add']);

    // All denied: answered by the proxy alone, as a batch.
    const b = await postRpc(url, [{ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'delete_everything' } }, { jsonrpc: '2.0', id: 2, method: 'prompts/get', params: { name: 'admin_override' } }], h);
    assert.equal(b.status, 200);
    assert.deepEqual((b.messages as { id: number; error: { code: number } }[]).map((m) => [m.id, m.error.code]), [[1, -32003], [2, -32003]]);
    assert.equal(server.calls.length, before + 2);
  });

  test('malformed JSON-RPC, wrong content types, header/body mismatch and oversized bodies get clear errors', async () => {
    const h = await initializeRaw(url, '2025-11-25');
    const raw = (body: string, headers: Record<string, string>): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const req = http.request(url, { method: 'POST', headers: { accept: 'application/json, text/event-stream', 'content-length': Buffer.byteLength(body), ...headers }, timeout: CALL_MS }, (res) => {
          let b = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (b += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
        });
        req.on('error', reject);
        req.end(body);
      });
    const bad = await raw('{"jsonrpc":"2.0","id":1,"method":', { 'content-type': 'application/json', ...h });
    assert.equal(bad.status, 400);
    assert.equal((JSON.parse(bad.body) as { error: { code: number } }).error.code, -32700);
    const invalid = await raw('{"jsonrpc":"1.0","id":1}', { 'content-type': 'application/json', ...h });
    assert.equal(invalid.status, 400);
    assert.equal((JSON.parse(invalid.body) as { error: { code: number } }).error.code, -32600);
    const ct = await raw('{"jsonrpc":"2.0","id":1,"method":"ping"}', { 'content-type': 'text/plain', ...h });
    assert.equal(ct.status, 415);

    // 2026-07-28: Mcp-Method / Mcp-Name mirror the body and must agree with it.
    const stateless = { 'content-type': 'application/json', 'mcp-protocol-version': '2026-07-28' };
    const call = (name: string): string => JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name, arguments: { text: 'x' } } });
    const before = server.calls.length;
    const mismatch = await raw(call('delete_everything'), { ...stateless, 'mcp-method': 'tools/call', 'mcp-name': 'echo' });
    assert.equal(mismatch.status, 400);
    const e = JSON.parse(mismatch.body) as { id: number; error: { code: number; message: string } };
    assert.equal(e.error.code, -32020);
    assert.equal(e.id, 9);
    const missing = await raw(call('echo'), { ...stateless, 'mcp-method': 'tools/call' });
    assert.equal(missing.status, 400);
    assert.match(missing.body, /Mcp-Name header is required/);
    const wrongMethod = await raw(call('echo'), { ...stateless, 'mcp-method': 'tools/list', 'mcp-name': 'echo' });
    assert.equal(wrongMethod.status, 400);
    assert.equal(server.calls.length, before, 'nothing reached the server');

    // Past maxBodyBytes (64 KiB here): 413, whether framed by length or chunked; the proxy keeps serving.
    const big = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'x'.repeat(100_000) } } });
    const over = await raw(big, { 'content-type': 'application/json', ...h });
    assert.equal(over.status, 413);
    assert.equal((JSON.parse(over.body) as { error: { code: number } }).error.code, -32004);
    // Far larger: refused before its end, and that connection closes (the rest is never read).
    const huge = await raw(big.replace('x'.repeat(100_000), 'x'.repeat(400_000)), { 'content-type': 'application/json', ...h }).catch((e: Error) => ({ status: -1, body: e.message }));
    assert.ok(huge.status === 413 || huge.status === -1, `${huge.status} ${huge.body}`);
    const ok = await postRpc(url, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'after' } } }, h);
    assert.equal(ok.status, 200);
    assert.equal(resultText((ok.messages[0] as { result: unknown }).result), 'after');

    const m = await metrics(proxy);
    for (const reason of ['parse-error', 'invalid-request', 'content-type', 'header-mismatch', 'body-too-large']) {
      assert.ok(mcpCount(m, 'mcp_rejected_total', { reason }) >= 1, reason);
    }
  });

  test('Expect: 100-continue is answered by the proxy, which needs the body first', async () => {
    const h = await initializeRaw(url, '2025-11-25');
    const payload = JSON.stringify(call(11, 'echo')).replace('"arguments":{}', `"arguments":{"text":"${'c'.repeat(2000)}"}`);
    const t0 = Date.now();
    const answer = await new Promise<{ status: number; body: string; continued: boolean }>((resolve, reject) => {
      let continued = false;
      const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', expect: '100-continue', 'content-length': Buffer.byteLength(payload), ...h }, timeout: 5000 }, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => (b += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b, continued }));
      });
      // The client sends the body only once told to continue.
      req.on('continue', () => {
        continued = true;
        req.end(payload);
      });
      req.on('timeout', () => req.destroy(new Error('no 100 Continue and no answer')));
      req.on('error', reject);
      req.flushHeaders();
    });
    assert.equal(answer.continued, true);
    assert.equal(answer.status, 200);
    assert.match(answer.body, /"text":"c{2000}"/);
    assert.ok(Date.now() - t0 < 2000);
    assert.equal(server.requests.filter((r) => r.headers['expect'] !== undefined).length, 0, 'the server got no Expect');
  });

  test('a chunked request body is inspected and sent on framed by length', async () => {
    const h = await initializeRaw(url, '2025-11-25');
    const body = JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'delete_everything', arguments: {} } });
    const status = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...h } }, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => (b += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
      });
      req.on('error', reject);
      req.write(body.slice(0, 20));
      setTimeout(() => req.end(body.slice(20)), 30);
    });
    assert.equal(status.status, 200);
    assert.equal((JSON.parse(status.body) as { error: { code: number } }).error.code, -32003);
  });

  test('over HTTP/2 (h2c): denials, batches, parse errors and oversized bodies get the same answers', async () => {
    const h = await initializeRaw(url, '2025-03-26');
    const session = http2.connect(`http://127.0.0.1:${proxy.ports['out']}`);
    const post = (body: string, extra: Record<string, string> = {}): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const req = session.request({ ':method': 'POST', ':path': '/mcp', 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...h, ...extra });
        let status = 0;
        let b = '';
        req.on('response', (hd) => (status = Number(hd[':status'])));
        req.setEncoding('utf8');
        req.on('data', (d: string) => (b += d));
        req.on('end', () => resolve({ status, body: b }));
        req.on('error', reject);
        // In two DATA frames: the proxy holds the body until it is whole.
        req.write(body.slice(0, 10));
        setTimeout(() => req.end(body.slice(10)), 20);
      });
    try {
      const before = server.calls.length;
      const denied = await post(JSON.stringify(call(7, 'delete_everything')));
      assert.equal(denied.status, 200);
      assert.deepEqual(JSON.parse(denied.body), { jsonrpc: '2.0', id: 7, error: { code: -32003, message: 'Forbidden: tool "delete_everything" is not allowed for this client by the proxy\'s MCP policy' } });
      const batch = await post(JSON.stringify([call('x', 'echo'), call('y', 'delete_everything')]));
      assert.equal(batch.status, 200);
      const msgs = batch.body.startsWith('[') ? (JSON.parse(batch.body) as { id: string }[]) : (parseSseMessages(batch.body) as { id: string }[]);
      assert.deepEqual(msgs.map((m) => m.id).sort(), ['x', 'y']);
      assert.deepEqual(server.calls.slice(before), ['tool:echo']);
      const bad = await post('{"jsonrpc": "2.0", "id": 1, "method":');
      assert.equal(bad.status, 400);
      assert.equal((JSON.parse(bad.body) as { error: { code: number } }).error.code, -32700);
      const big = await post(JSON.stringify(call(2, 'echo')).replace('"arguments":{}', `"arguments":{"text":"${'y'.repeat(70_000)}"}`));
      assert.equal(big.status, 413);
      const ok = await post(JSON.stringify(call(3, 'echo')).replace('"arguments":{}', '"arguments":{"text":"h2"}'));
      assert.equal(ok.status, 200);
      assert.match(ok.body, /"text":"h2"/);
    } finally {
      session.close();
    }
  });

  test('under a policy, looking like the legacy transport is no way around it', async () => {
    const before = server.calls.length;
    const legacy = await postRpc(`${url}?sessionId=abc`, call(21, 'delete_everything'), { 'content-type': 'application/json' });
    assert.equal(legacy.status, 200);
    assert.equal((legacy.messages[0] as { error: { code: number } }).error.code, -32003);
    const put = await new Promise<number>((resolve, reject) => {
      const req = http.request(url, { method: 'PUT', headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(JSON.stringify(call(22, 'delete_everything')));
    });
    assert.equal(put, 200);
    assert.equal(server.calls.length, before);
  });

  test('requests on other routes are not inspected', async () => {
    const before = mcpCount(await metrics(proxy), 'mcp_request_total', {});
    // A POST that is not on the MCP route is not inspected, even when it is JSON-RPC.
    const plain = await postRpc(`http://127.0.0.1:${proxy.ports['out']}/other`, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'delete_everything' } });
    assert.equal(plain.status, 404);
    assert.equal(mcpCount(await metrics(proxy), 'mcp_request_total', {}), before);
  });
});

describe('MCP audit mode, and the one-line --mcp', { timeout: 60_000 }, () => {
  test('audit mode lets a denied call through, counted and logged', async () => {
    const server = await startMcpServer({});
    const cfg = new TempConfig(meshYaml(server.port, `  audit: true\n${POLICY}`));
    const proxy = await startProxy(['--config', cfg.file, '--workers', '1', '--drain-grace-ms', '500']);
    try {
      const c = await connectClient(`http://127.0.0.1:${proxy.ports['out']}/mcp`);
      const tools = (await c.listTools(undefined, { timeout: CALL_MS })).tools.map((t) => t.name);
      assert.ok(tools.includes('delete_everything'), 'audit mode filters nothing');
      await c.callTool({ name: 'delete_everything', arguments: {} }, undefined, { timeout: CALL_MS });
      await c.close();
      assert.ok(server.calls.includes('tool:delete_everything'));
      const m = await scrape(proxy);
      assert.equal(metricSum(m, 'mcp_authz_deny_total', { mode: 'audit' }), 1);
      assert.match(proxy.stderr() + proxy.stdout(), /MCP authorization audit: would deny, allowed/);
    } finally {
      await proxy.stop();
      await server.close();
      cfg.remove();
    }
  });

  test('a policy is enforced on a route nobody marked as MCP; a listener or a Server marked mcp inspects all its requests', async () => {
    const server = await startMcpServer({});
    const cfg = new TempConfig(`
policy:
  servers: [{ name: tools-srv, listener: by-server, mcp: true }]
  authorizationPolicies:
    - { name: local, targetRef: { kind: Server, name: tools-srv }, network: { networks: [{ cidr: 127.0.0.0/8 }] } }
listeners:
  - { name: guarded, address: 127.0.0.1:0, routes: [unmarked] }
  - { name: counted, address: 127.0.0.1:0, mcp: true, defaultService: mcp-server }
  - { name: by-server, address: 127.0.0.1:0, direction: inbound, defaultService: mcp-server }
services:
  - { name: mcp-server, endpoints: [{ address: 127.0.0.1:${server.port} }] }
routes:
  - { name: unmarked, backendRefs: [{ name: mcp-server }] }
mcp:
  policies:
    - name: only-echo
      targetRef: { kind: HTTPRoute, name: unmarked }
      rules: [{ network: { networks: [{ cidr: 127.0.0.0/8 }] }, tools: [echo] }]
`);
    const proxy = await startProxy(['--config', cfg.file, '--workers', '1', '--drain-grace-ms', '500']);
    try {
      const c = await connectClient(`http://127.0.0.1:${proxy.ports['guarded']}/mcp`);
      assert.deepEqual((await c.listTools(undefined, { timeout: CALL_MS })).tools.map((t) => t.name), ['echo']);
      await assert.rejects(c.callTool({ name: 'add', arguments: { a: 1, b: 1 } }, undefined, { timeout: CALL_MS }), (e: { code?: number }) => e.code === -32003);
      await c.close();
      const d = await connectClient(`http://127.0.0.1:${proxy.ports['counted']}/mcp`);
      await d.callTool({ name: 'add', arguments: { a: 1, b: 1 } }, undefined, { timeout: CALL_MS });
      await d.close();
      const e = await connectClient(`http://127.0.0.1:${proxy.ports['by-server']}/mcp`);
      await e.callTool({ name: 'echo', arguments: { text: 'srv' } }, undefined, { timeout: CALL_MS });
      await e.close();
      assert.ok(!server.calls.includes('tool:add') || server.calls.filter((x) => x === 'tool:add').length === 1);
      const m = await scrape(proxy);
      assert.equal(metricSum(m, 'mcp_response_total', { route: '', method: 'tools/call', name: 'add', classification: 'success' }), 1);
      assert.equal(metricSum(m, 'mcp_response_total', { direction: 'inbound', method: 'tools/call', name: 'echo', classification: 'success' }), 1);
    } finally {
      await proxy.stop();
      await server.close();
      cfg.remove();
    }
  });

  test('oversizedBody: pass sends a body too large to inspect on, whole and uninspected, and counts it', async () => {
    const server = await startMcpServer({ json: true });
    const cfg = new TempConfig(meshYaml(server.port, '  oversizedBody: pass\n'));
    const proxy = await startProxy(['--config', cfg.file, '--workers', '1', '--drain-grace-ms', '500']);
    try {
      const url = `http://127.0.0.1:${proxy.ports['out']}/mcp`;
      const h = await initializeRaw(url, '2025-11-25');
      const text = 'p'.repeat(300_000); // past maxBodyBytes (64 KiB here) and its slack
      for (const chunked of [false, true]) {
        const payload = JSON.stringify(call(31, 'echo')).replace('"arguments":{}', `"arguments":{"text":"${text}"}`);
        const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...(chunked ? {} : { 'content-length': Buffer.byteLength(payload) }), ...h } }, (res) => {
            let b = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (b += d));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
          });
          req.on('error', reject);
          // In pieces: the proxy holds the first part, then streams the rest after it.
          for (let i = 0; i < payload.length; i += 50_000) req.write(payload.slice(i, i + 50_000));
          req.end();
        });
        assert.equal(answer.status, 200, answer.body.slice(0, 200));
        assert.equal(resultText((JSON.parse(answer.body) as { result: unknown }).result), text, chunked ? 'chunked' : 'length');
      }
      const m = await scrape(proxy);
      assert.equal(metricSum(m, 'mcp_uninspected_total', { reason: 'oversized-body' }), 2);
    } finally {
      await proxy.stop();
      await server.close();
      cfg.remove();
    }
  });

  test('--mcp counts every tool without a config file (JSON responses too)', async () => {
    const server = await startMcpServer({ json: true });
    const proxy = await startProxy(['--listen', '127.0.0.1:0', '--to', `127.0.0.1:${server.port}`, '--mcp', '--workers', '1', '--drain-grace-ms', '500']);
    try {
      const port = proxy.ports['proxy'];
      const c = await connectClient(`http://127.0.0.1:${port}/mcp`);
      await c.callTool({ name: 'echo', arguments: { text: 'a' } }, undefined, { timeout: CALL_MS });
      await c.callTool({ name: 'echo', arguments: { text: 'b' } }, undefined, { timeout: CALL_MS });
      await c.callTool({ name: 'boom', arguments: {} }, undefined, { timeout: CALL_MS });
      await assert.rejects(c.getPrompt({ name: 'nope' }, { timeout: CALL_MS }));
      await c.close();
      // A large JSON POST that is not MCP (any API behind --mcp) is not refused for its size.
      const big = JSON.stringify({ upload: 'u'.repeat(1_200_000) });
      const up = await new Promise<number>((resolve, reject) => {
        const req = http.request(`http://127.0.0.1:${port}/api/upload`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(big) } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end(big);
      });
      assert.notEqual(up, 413);
      const m = await scrape(proxy);
      assert.ok(metricSum(m, 'mcp_uninspected_total', { reason: 'oversized-body' }) >= 1);
      assert.equal(metricSum(m, 'mcp_response_total', { method: 'tools/call', name: 'echo', classification: 'success' }), 2);
      assert.equal(metricSum(m, 'mcp_response_total', { method: 'tools/call', name: 'boom', classification: 'failure' }), 1);
      // An unknown prompt is a JSON-RPC error (-32602) from the server: a failure by its code.
      assert.equal(metricSum(m, 'mcp_response_errors_total', { method: 'prompts/get', name: 'nope', error: '-32602' }), 1);
      assert.equal(metricSum(m, 'mcp_authz_deny_total', {}), 0);
    } finally {
      await proxy.stop();
      await server.close();
    }
  });
});

/** A server on the legacy HTTP+SSE transport (2024-11-05): GET /sse for the stream, POST /messages?sessionId=. */
async function legacyServer(): Promise<{ port: number; posts: number; close(): Promise<void> }> {
  const transports = new Map<string, SSEServerTransport>();
  const state = { port: 0, posts: 0 };
  const server = http.createServer((req, res) => {
    void (async (): Promise<void> => {
      if (req.method === 'GET' && req.url === '/sse') {
        const t = new SSEServerTransport('/messages', res);
        transports.set(t.sessionId, t);
        const mcp = new McpServer({ name: 'legacy', version: '1.0.0' });
        mcp.registerTool('echo', { inputSchema: { text: z.string() } }, ({ text }) => ({ content: [{ type: 'text', text }] }));
        res.on('close', () => transports.delete(t.sessionId));
        await mcp.connect(t);
        return;
      }
      if (req.method === 'POST' && req.url?.startsWith('/messages')) {
        state.posts++;
        const id = new URL(req.url, 'http://x').searchParams.get('sessionId') ?? '';
        const t = transports.get(id);
        if (t === undefined) {
          res.writeHead(404).end();
          return;
        }
        await t.handlePostMessage(req, res);
        return;
      }
      res.writeHead(404).end();
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.port = (server.address() as { port: number }).port;
  return {
    get port() {
      return state.port;
    },
    get posts() {
      return state.posts;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

test('the legacy HTTP+SSE transport passes through --mcp untouched', { timeout: 30_000 }, async () => {
  const legacy = await legacyServer();
  const proxy = await startProxy(['--listen', '127.0.0.1:0', '--to', `127.0.0.1:${legacy.port}`, '--mcp', '--workers', '1', '--drain-grace-ms', '500']);
  try {
    const c = new Client({ name: 'legacy-client', version: '1.0.0' });
    await c.connect(new SSEClientTransport(new URL(`http://127.0.0.1:${proxy.ports['proxy']}/sse`)), { timeout: CALL_MS });
    const r = await c.callTool({ name: 'echo', arguments: { text: 'old' } }, undefined, { timeout: CALL_MS });
    assert.equal(resultText(r), 'old');
    await c.close();
    assert.ok(legacy.posts >= 2, 'the messages went through the proxy');
    const m = await scrape(proxy);
    assert.equal(metricSum(m, 'mcp_request_total', {}), 0, 'nothing of the legacy transport was inspected');
  } finally {
    await proxy.stop();
    await legacy.close();
  }
});
