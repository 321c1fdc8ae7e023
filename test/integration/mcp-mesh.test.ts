// MCP authorization by mesh identity: an agent's proxy reaches the MCP server's proxy over mutual TLS
// (HTTP/2 multiplexed by default, HTTP/1.1 when the service says so); the server's inbound proxy
// grants tools to identities through a policy on its Server. The SDK client and server are real.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Identity } from '../../xds/client/identity-client';
import { scrape } from '../helpers/admin-probe';
import { TempConfig } from '../helpers/config-file';
import { connectClient, type McpTestServer, resultText, startMcpServer } from '../helpers/mcp-server';
import { identityYaml, issueIdentities } from '../helpers/mesh-identity';
import { metricSum, type ProxyProcess, startProxy } from '../helpers/proxy-process';

const CALL_MS = 10_000;
const READER = 'spiffe://mesh.test/ns/agents/sa/reader';
let dir: string;
let ids: Record<string, Identity>;
let server: McpTestServer;
let inbound: ProxyProcess;
const agents: Record<string, ProxyProcess> = {};
const cleanup: (() => Promise<void> | void)[] = [];

async function proxy(yaml: string): Promise<ProxyProcess> {
  const cfg = new TempConfig(yaml);
  const p = await startProxy(['--config', cfg.file, '--workers', '1', '--drain-grace-ms', '500']);
  cleanup.push(async () => {
    await p.stop();
    cfg.remove();
  });
  return p;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bowline-mcp-mesh-'));
  ids = await issueIdentities(dir, join(dir, 'ca'), ['tools', 'agents/reader', 'agents/intruder']);
  server = await startMcpServer({});
  inbound = await proxy(`
proxy:
${identityYaml(dir, 'tools', ids['tools']!)}
policy:
  defaultPolicy: all-authenticated
  servers:
    - { name: mcp, listener: in }
  authorizationPolicies:
    - name: any-agent
      targetRef: { kind: Server, name: mcp }
      meshTLS: { identities: ["spiffe://mesh.test/ns/agents/sa/*"] }
mcp:
  policies:
    - name: tool-grants
      targetRef: { kind: Server, name: mcp }
      rules:
        - name: readers
          meshTLS: { identities: ["${READER}"] }
          tools: [echo, slow]
        - name: everyone
          meshTLS: { identities: ["*"] }
          tools: [add]
listeners:
  - { name: in, address: 127.0.0.1:0, direction: inbound, routes: [mcp] }
services:
  - { name: app, endpoints: [{ address: 127.0.0.1:${server.port} }] }
routes:
  - { name: mcp, mcp: true, backendRefs: [{ name: app }] }
`);
  const tools = 'spiffe://mesh.test/ns/shop/sa/tools';
  for (const sa of ['agents/reader', 'agents/intruder']) {
    agents[sa] = await proxy(`
proxy:
${identityYaml(dir, sa.replace('/', '-'), ids[sa]!)}
listeners:
  - { name: h2, address: 127.0.0.1:0, defaultService: tools }
  - { name: h1, address: 127.0.0.1:0, defaultService: tools-h1 }
services:
  - { name: tools, identity: "${tools}", endpoints: [{ address: 127.0.0.1:${inbound.ports['in']} }] }
  - { name: tools-h1, identity: "${tools}", protocol: http1, endpoints: [{ address: 127.0.0.1:${inbound.ports['in']} }] }
`);
  }
});

after(async () => {
  for (const c of cleanup.reverse()) await c();
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

for (const hop of ['h2', 'h1'] as const) {
  test(`tools are granted by the caller's mesh identity (${hop === 'h2' ? 'HTTP/2' : 'HTTP/1.1'} on the mesh hop)`, { timeout: 60_000 }, async () => {
    const reader = await connectClient(`http://127.0.0.1:${agents['agents/reader']!.ports[hop]}/mcp`);
    const intruder = await connectClient(`http://127.0.0.1:${agents['agents/intruder']!.ports[hop]}/mcp`);
    try {
      assert.deepEqual((await reader.listTools(undefined, { timeout: CALL_MS })).tools.map((t) => t.name).sort(), ['add', 'echo', 'slow']);
      assert.deepEqual((await intruder.listTools(undefined, { timeout: CALL_MS })).tools.map((t) => t.name), ['add']);
      assert.equal(resultText(await reader.callTool({ name: 'echo', arguments: { text: hop } }, undefined, { timeout: CALL_MS })), hop);
      const before = server.calls.length;
      await assert.rejects(intruder.callTool({ name: 'echo', arguments: { text: 'no' } }, undefined, { timeout: CALL_MS }), (e: { code?: number }) => e.code === -32003);
      assert.equal(server.calls.length, before);
      assert.equal(resultText(await intruder.callTool({ name: 'add', arguments: { a: 1, b: 2 } }, undefined, { timeout: CALL_MS })), '3');
      // Progress flows back through both proxies.
      let n = 0;
      const r = await reader.callTool({ name: 'slow', arguments: { steps: 3, delayMs: 30 } }, undefined, { timeout: CALL_MS, onprogress: () => n++ });
      assert.equal(resultText(r), 'done');
      assert.equal(n, 3);
    } finally {
      await reader.close();
      await intruder.close();
    }
    const m = await scrape(inbound);
    assert.ok(metricSum(m, 'mcp_authz_allow_total', { direction: 'inbound', policy: 'tool-grants', rule: 'readers' }) >= 2, m);
    assert.ok(metricSum(m, 'mcp_authz_deny_total', { direction: 'inbound', mode: 'enforce' }) >= 1);
    assert.ok(metricSum(m, 'mcp_response_total', { direction: 'inbound', method: 'tools/call', name: 'echo', classification: 'success' }) >= 1);
    // Which agent called which tool: the caller's identity labels inbound MCP signals.
    assert.ok(metricSum(m, 'mcp_response_total', { direction: 'inbound', method: 'tools/call', name: 'echo', client_id: READER, classification: 'success' }) >= 1);
    assert.ok(metricSum(m, 'mcp_response_errors_total', { direction: 'inbound', method: 'tools/call', name: 'echo', client_id: 'spiffe://mesh.test/ns/agents/sa/intruder', error: 'denied' }) >= 1);
  });
}
