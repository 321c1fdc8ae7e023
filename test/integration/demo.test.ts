// The quick start's main job: `bowline demo` runs the upstreams, the control plane on the embedded
// mesh, and the proxy fed over xDS; requests go where the README says, and SIGTERM stops it cleanly.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { sleep } from '../helpers/admin-probe';
import { BOWLINE_BIN } from '../helpers/proxy-process';

async function get(url: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, text: await res.text() };
}

test('bowline demo serves the quick start over xDS and stops on SIGTERM', { timeout: 60_000 }, async () => {
  const child = spawn(process.execPath, [BOWLINE_BIN, 'demo'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  try {
    const deadline = Date.now() + 30_000;
    while (!out.includes('Bowline demo is running')) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`demo did not start:\n${out}`);
      await sleep(50);
    }
    for (let i = 0; i < 10; i++) {
      const web = JSON.parse((await get('http://127.0.0.1:4140/')).text) as { zone: string };
      assert.equal(web.zone, 'zone-a', 'web stays in the proxy zone');
    }
    // The api route is meshed: mutual TLS through the proxy's own inbound listener, with the
    // identity the control plane issued; straight to the inbound listener, the policy says no.
    const api = JSON.parse((await get('http://127.0.0.1:4140/api/users')).text) as { upstream: string; clientId?: string };
    assert.equal(api.upstream, 'api-1');
    assert.equal(api.clientId, 'spiffe://cluster.local/ns/demo/sa/demo');
    assert.equal((await get('http://127.0.0.1:4143/api/users')).status, 403);
    // The denial is logged with its fields, from a worker thread through the supervisor.
    await sleep(200);
    const denial = out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((e) => /^worker \d+: authorization denied$/.test(String(e['msg'])));
    assert.deepEqual(denial && { target: denial['target'], clientId: denial['clientId'], server: denial['server'] }, { target: '/api/users', clientId: null, server: 'api' }, out);
    assert.match((await get('http://127.0.0.1:4191/metrics')).text, /tls_handshakes_total\{direction="inbound",result="ok"\} [1-9]/);
    // The MCP route: the policy's tools only, a denied call answered by the proxy, metrics per tool.
    const rpc = async (body: unknown): Promise<Record<string, unknown>> => {
      const res = await fetch('http://127.0.0.1:4140/mcp', { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify(body), signal: AbortSignal.timeout(5000) });
      return (await res.json()) as Record<string, unknown>;
    };
    const list = (await rpc({ jsonrpc: '2.0', id: 1, method: 'tools/list' })) as { result: { tools: { name: string }[] } };
    assert.deepEqual(list.result.tools.map((t) => t.name).sort(), ['get_weather', 'search_docs']);
    const denied = (await rpc({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'delete_repo', arguments: { name: 'prod' } } })) as { error: { code: number } };
    assert.equal(denied.error.code, -32003);
    const found = (await rpc({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'search_docs', arguments: { query: 'mesh' } } })) as { result: { content: { text: string }[] } };
    assert.match(found.result.content[0]!.text, /mesh/);
    assert.match((await get('http://127.0.0.1:4191/metrics')).text, /mcp_response_total\{direction="outbound",route="tools",method="tools\/call",name="search_docs",classification="success"\} 1/);
    const dump = JSON.parse((await get('http://127.0.0.1:4191/config_dump')).text) as { version: string };
    assert.match(dump.version, /^xds-/);
    assert.match((await get('http://127.0.0.1:9901/metrics')).text, /xds_streams\{kind="delta",client="bowline"\} 1/);
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
