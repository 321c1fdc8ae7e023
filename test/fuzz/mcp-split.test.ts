// Property, through a real proxy: an MCP POST (framed by length or chunked, single or batch, allowed
// or denied entries) followed by a pipelined request gets the same answers however its bytes are split
// into reads, the server receives exactly the allowed part of the body framed by length, and the
// pipelined request is served after it. Deterministic seeds; set BOWLINE_FUZZ_SEED to add one.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import { TempConfig } from '../helpers/config-file';
import { fuzzSeeds, Prng, splitAt } from '../helpers/prng';
import { type ProxyProcess, startProxy } from '../helpers/proxy-process';
import { parseResponses, rawRequest } from '../helpers/raw-client';
import { close, listen } from '../helpers/upstream';

interface Seen {
  method: string;
  url: string;
  contentLength: string | undefined;
  transferEncoding: string | undefined;
  body: string;
}

let upstream: http.Server;
const seen: Seen[] = [];
let cfg: TempConfig;
let proxy: ProxyProcess;

before(async () => {
  // Answers each JSON-RPC request of a POST with a result naming the tool it called.
  upstream = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', contentLength: req.headers['content-length'], transferEncoding: req.headers['transfer-encoding'], body });
      if (req.method !== 'POST') {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5' }).end('plain');
        return;
      }
      const v = JSON.parse(body) as { id?: unknown; method?: string; params: { name: string } } | { id?: unknown; params: { name: string } }[];
      if (!Array.isArray(v) && v.method === 'tools/list') {
        // A large answer, written in pieces over time: it reaches the proxy in many reads.
        const tools = Array.from({ length: 3000 }, (_, i) => ({ name: i % 2 === 0 ? `ok_${i}` : `no_${i}`, description: `tool ${i} ${'d'.repeat(40)}`, inputSchema: { type: 'object' } }));
        const out = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: v.id, result: { tools } }));
        res.writeHead(200, { 'content-type': 'application/json' });
        let at = 0;
        const next = (): void => {
          if (at >= out.length) {
            res.end();
            return;
          }
          res.write(out.subarray(at, at + 16_384));
          at += 16_384;
          setTimeout(next, 2);
        };
        next();
        return;
      }
      const answer = (m: { id?: unknown; params: { name: string } }): unknown => ({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: m.params.name }] } });
      const out = JSON.stringify(Array.isArray(v) ? v.filter((m) => m.id !== undefined).map(answer) : answer(v));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) }).end(out);
    });
  });
  const port = await listen(upstream);
  cfg = new TempConfig(`
listeners:
  - { name: in, address: 127.0.0.1:0, routes: [tools] }
services:
  - { name: app, endpoints: [{ address: 127.0.0.1:${port} }] }
routes:
  - { name: tools, mcp: true, backendRefs: [{ name: app }] }
mcp:
  policies:
    - name: p
      targetRef: { kind: HTTPRoute, name: tools }
      rules: [{ network: { networks: [{ cidr: 127.0.0.0/8 }] }, tools: ["ok_*"] }]
`);
  proxy = await startProxy(['--config', cfg.file, '--workers', '1']);
});

after(async () => {
  await proxy?.stop();
  cfg?.remove();
  if (upstream) await close(upstream);
});

function chunked(body: Buffer, rng: Prng): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  while (at < body.length) {
    const n = Math.min(body.length - at, rng.range(1, 40));
    const ext = rng.chance(0.2) ? ';x=y' : '';
    parts.push(Buffer.from(`${n.toString(16)}${ext}\r\n`), body.subarray(at, at + n), Buffer.from('\r\n'));
    at += n;
  }
  parts.push(Buffer.from(rng.chance(0.3) ? '0\r\nx-trailer: 1\r\n\r\n' : '0\r\n\r\n'));
  return Buffer.concat(parts);
}

test('MCP POSTs through the proxy are split-invariant: same answers, same body upstream, pipelining kept', { timeout: 120_000 }, async () => {
  const port = proxy.ports['in']!;
  for (const seed of fuzzSeeds([1, 2, 3])) {
    const rng = new Prng(seed);
    for (let it = 0; it < 12; it++) {
      const n = rng.range(1, 4);
      const entries = Array.from({ length: n }, (_, i) => ({ jsonrpc: '2.0', id: i + 1, method: 'tools/call', params: { name: rng.chance(0.5) ? `ok_${i}` : `no_${i}`, arguments: { pad: 'é'.repeat(rng.range(0, 50)) } } }));
      const batch = n > 1 || rng.chance(0.3);
      const payload = Buffer.from(JSON.stringify(batch ? entries : entries[0]));
      const useChunked = rng.chance(0.5);
      const head = `POST /mcp HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\nmcp-protocol-version: 2025-03-26\r\n${useChunked ? 'transfer-encoding: chunked' : `content-length: ${payload.length}`}\r\n\r\n`;
      const bytes = Buffer.concat([Buffer.from(head), useChunked ? chunked(payload, rng) : payload, Buffer.from('GET /after HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n')]);
      const cuts = rng.cuts(bytes.length, rng.range(1, 12));
      const parts = splitAt(bytes, cuts);
      const before = seen.length;
      const ex = await rawRequest(port, parts, 5000, 2);
      const label = `seed ${seed} iteration ${it} (${useChunked ? 'chunked' : 'length'}, ${entries.map((e) => e.params.name).join(',')}, cuts ${cuts.join(',')})`;
      assert.ok(ex.closed, `${label}: the connection was not closed after the pipelined request`);
      const responses = parseResponses(ex.data);
      assert.equal(responses.length, 2, `${label}: ${ex.data.toString()}`);
      const [first, second] = responses as [(typeof responses)[0], (typeof responses)[0]];
      assert.equal(first.status, 200, label);
      assert.equal(second.status, 200, label);
      assert.equal(second.body.toString(), 'plain', label);
      // Every request is answered: allowed ones by the server (naming the tool), denied ones by the proxy.
      const got = [JSON.parse(first.body.toString()) as unknown].flat() as { id: number; result?: { content: { text: string }[] }; error?: { code: number } }[];
      const byId = new Map(got.map((m) => [m.id, m]));
      for (const e of entries) {
        const m = byId.get(e.id);
        assert.ok(m !== undefined, `${label}: no answer for id ${e.id}`);
        if (e.params.name.startsWith('ok_')) assert.equal(m.result?.content[0]!.text, e.params.name, label);
        else assert.equal(m.error?.code, -32003, label);
      }
      // Upstream: the allowed entries only, framed by length, then the pipelined GET.
      const allowed = entries.filter((e) => e.params.name.startsWith('ok_'));
      const ups = seen.slice(before);
      if (allowed.length === 0) {
        assert.deepEqual(ups.map((s) => s.method), ['GET'], label);
        continue;
      }
      assert.deepEqual(ups.map((s) => s.method), ['POST', 'GET'], label);
      const post = ups[0]!;
      assert.equal(post.transferEncoding, undefined, label);
      assert.equal(Number(post.contentLength), Buffer.byteLength(post.body), label);
      const sent = JSON.parse(post.body) as unknown;
      assert.deepEqual(sent, batch ? allowed : allowed[0], label);
    }
  }
});

test('a large JSON list answer arriving over many reads is filtered whole (its bytes are kept, not the read buffer)', { timeout: 30_000 }, async () => {
  const body = JSON.stringify({ jsonrpc: '2.0', id: 'l', method: 'tools/list' });
  const ex = await rawRequest(proxy.ports['in']!, `POST /mcp HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`, 10_000);
  const [r] = parseResponses(ex.data);
  assert.ok(r !== undefined, ex.data.toString().slice(0, 300));
  assert.equal(r.status, 200);
  const v = JSON.parse(r.body.toString()) as { id: string; result: { tools: { name: string; description: string }[] } };
  assert.equal(v.id, 'l');
  assert.equal(v.result.tools.length, 1500);
  assert.ok(v.result.tools.every((t, k) => t.name === `ok_${2 * k}` && t.description.startsWith(`tool ${2 * k} `)));
});
