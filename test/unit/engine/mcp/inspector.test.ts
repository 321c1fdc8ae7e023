// MCP inspection without sockets: JSON-RPC classification, policy grants and URI normalisation,
// request verdicts (denials, batches, header checks), responses followed as JSON or SSE in any split
// (matching by id, failures, list filtering, refused entries added), and bounded metric labels.

import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { DEFAULT_MCP_SETTINGS, type McpSettings } from '../../../../engine/config/snapshot';
import { idKey, Kind, parseMcpBody, Target } from '../../../../engine/mcp/jsonrpc';
import { type McpOrigin, type McpRequestHead, McpInspector, McpScope, ResponseMode, Wants } from '../../../../engine/mcp/inspector';
import { McpPolicy, normalizeResourceUri } from '../../../../engine/mcp/policy';
import { MetricsRegistry } from '../../../../engine/metrics/registry';
import { Prng } from '../../../helpers/prng';

const ORIGIN: McpOrigin = { direction: 'inbound', route: 'mcp', server: '', identity: 'spiffe://t/ns/a/sa/reader', address: '10.0.0.5' };

function head(over: Partial<McpRequestHead> = {}): McpRequestHead {
  return { httpMethod: 'POST', contentType: 'application/json', accept: 'application/json, text/event-stream', protocolVersion: '2025-11-25', mcpMethod: null, mcpName: null, sessionId: 's1', legacyQuery: false, ...over };
}

function settings(over: Partial<McpSettings> = {}): McpSettings {
  return {
    ...DEFAULT_MCP_SETTINGS,
    policies: [
      {
        name: 'p',
        target: { kind: 'route', name: 'mcp' },
        rules: [
          { name: 'readers', identities: ['spiffe://t/ns/a/sa/reader'], tools: ['echo', 'read_*'], resources: ['file:///docs/*'], prompts: ['greet'] },
          { name: 'net', networks: [{ cidr: '192.168.0.0/16', except: [] }], tools: ['*'], resources: [], prompts: [] },
        ],
      },
    ],
    ...over,
  };
}

function inspector(s: McpSettings = settings()): { ins: McpInspector; metrics: MetricsRegistry; clock: { t: number } } {
  const metrics = new MetricsRegistry();
  const clock = { t: 1000 };
  return { ins: new McpInspector(s, ['mcp', 'other'], metrics, () => {}, () => clock.t), metrics, clock };
}

const body = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const call = (id: unknown, name: string): unknown => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } });

function statsOf(metrics: MetricsRegistry): Map<string, { requests: number; success: number; failure: number; errors: Record<string, number>; count: number }> {
  const snap = metrics.snapshot(0, 0, 0, 'v');
  return new Map((snap.mcp ?? []).map((s) => [`${s.labels.method}|${s.labels.name}`, s]));
}

describe('JSON-RPC classification', () => {
  test('requests, notifications, responses and what they name', () => {
    const p = parseMcpBody(JSON.stringify([call(1, 'echo'), { jsonrpc: '2.0', method: 'notifications/initialized' }, { jsonrpc: '2.0', id: 'x', result: {} }, { jsonrpc: '2.0', id: 2, method: 'resources/read', params: { uri: 'file:///a' } }, { jsonrpc: '2.0', id: 3, method: 'completion/complete', params: { ref: { type: 'ref/prompt', name: 'greet' } } }]));
    assert.ok('messages' in p);
    assert.deepEqual(
      p.messages.map((m) => [m.kind, m.method, m.target, m.name]),
      [
        [Kind.Request, 'tools/call', Target.Tool, 'echo'],
        [Kind.Notification, 'notifications/initialized', Target.None, ''],
        [Kind.Response, '', Target.None, ''],
        [Kind.Request, 'resources/read', Target.Resource, 'file:///a'],
        [Kind.Request, 'completion/complete', Target.Prompt, 'greet'],
      ],
    );
    assert.equal(p.batch, true);
  });

  test('parse errors and invalid requests', () => {
    assert.deepEqual(parseMcpBody('{"jsonrpc":'), { code: -32700, message: 'Parse error: the body is not JSON' });
    for (const bad of ['[]', '1', '"x"', 'null', '{"jsonrpc":"1.0","method":"x"}', '{"jsonrpc":"2.0"}', '{"jsonrpc":"2.0","id":{},"method":"x"}', '[{"jsonrpc":"2.0","method":"ping","id":1}, 5]']) {
      const r = parseMcpBody(bad);
      assert.ok(!('messages' in r) && r.code === -32600, bad);
    }
  });

  test('ids 1 and "1" are different keys', () => {
    assert.notEqual(idKey(1), idKey('1'));
  });
});

describe('policy', () => {
  test('resource URIs are matched with dot segments resolved and unreserved escapes decoded', () => {
    assert.equal(normalizeResourceUri('file:///docs/../secret/keys.txt'), 'file:///secret/keys.txt');
    assert.equal(normalizeResourceUri('file:///docs/./a/%2e%2e/b'), 'file:///docs/a/../b'.replace('a/../', ''));
    assert.equal(normalizeResourceUri('file:///docs/%61.md'), 'file:///docs/a.md');
    assert.equal(normalizeResourceUri('urn:x:y'), 'urn:x:y');
    const p = new McpPolicy(settings(), ['mcp']);
    const g = p.grantsFor('mcp', '')!;
    assert.ok(g.grant(Target.Resource, 'file:///docs/a/b.md', ORIGIN.identity, ORIGIN.address));
    assert.equal(g.grant(Target.Resource, 'file:///docs/../secret', ORIGIN.identity, ORIGIN.address), null);
    assert.equal(g.grant(Target.Resource, 'file:///docs/%2e%2e/secret', ORIGIN.identity, ORIGIN.address), null);
  });

  test('globs, identities and networks', () => {
    const g = new McpPolicy(settings(), ['mcp']).grantsFor('mcp', '')!;
    assert.ok(g.grant(Target.Tool, 'read_file', ORIGIN.identity, '10.0.0.1'));
    assert.equal(g.grant(Target.Tool, 'write_file', ORIGIN.identity, '10.0.0.1'), null);
    assert.equal(g.grant(Target.Tool, 'echo', 'spiffe://t/ns/a/sa/other', '10.0.0.1'), null);
    assert.equal(g.grant(Target.Tool, 'echo', null, '10.0.0.1'), null);
    assert.equal(g.grant(Target.Tool, 'anything', null, '192.168.1.1')!.rule, 'net');
    // Regex characters in names are literal.
    // Only "*" is special: "_" and "." are literal.
    assert.equal(g.grant(Target.Tool, 'readXfile', ORIGIN.identity, '10.0.0.1'), null);
    assert.equal(g.grant(Target.Prompt, 'greet', ORIGIN.identity, '10.0.0.1')?.rule, 'readers');
  });

  test('no policy for a route: nothing is denied', () => {
    assert.equal(new McpPolicy(settings(), ['mcp', 'other']).grantsFor('other', ''), null);
    assert.equal(new McpPolicy({ ...DEFAULT_MCP_SETTINGS }, ['mcp']).grantsFor('mcp', ''), null);
  });
});

describe('requests', () => {
  test('which requests are inspected', () => {
    const { ins } = inspector(settings({ inspectAll: false }));
    assert.equal(ins.scope('mcp', false, false, ''), McpScope.Governed, 'a policy makes a route MCP');
    assert.equal(ins.scope('other', true, false, ''), McpScope.Marked);
    assert.equal(ins.scope('other', false, true, ''), McpScope.Marked);
    assert.equal(ins.scope('other', false, false, ''), McpScope.None);
    const bySrv = new McpInspector(settings(), ['mcp', 'other'], new MetricsRegistry(), () => {}, () => 0, new Set(['tools-srv']));
    assert.equal(bySrv.scope('other', false, false, 'tools-srv'), McpScope.Marked, 'a Server marked mcp');
    assert.equal(bySrv.scope('other', false, false, 'web-srv'), McpScope.None);
    assert.equal(ins.wants(McpScope.Marked, head()), Wants.Body);
    assert.equal(ins.wants(McpScope.None, head()), Wants.No);
    const all = inspector(settings({ inspectAll: true })).ins;
    assert.equal(all.wants(McpScope.None, head()), Wants.Body);
    assert.equal(all.wants(McpScope.None, head({ contentType: 'text/plain' })), Wants.No);
    // The legacy HTTP+SSE transport: its message endpoint and its SSE endpoint pass untouched...
    const legacyPost = head({ legacyQuery: true, sessionId: null, protocolVersion: '' });
    const legacyGet = head({ httpMethod: 'GET', accept: 'text/event-stream', sessionId: null, protocolVersion: '' });
    assert.equal(all.wants(McpScope.None, legacyPost), Wants.No);
    assert.equal(all.wants(McpScope.Marked, legacyPost), Wants.No);
    assert.equal(all.wants(McpScope.None, legacyGet), Wants.No);
    // ... except under a policy: a query parameter must not be a way around it.
    assert.equal(all.wants(McpScope.Governed, legacyPost), Wants.Body);
    assert.equal(all.wants(McpScope.Governed, { ...legacyPost, contentType: 'text/plain' }), Wants.Body);
    assert.equal(all.wants(McpScope.Governed, legacyGet), Wants.Stream);
    assert.equal(all.wants(McpScope.None, head({ httpMethod: 'GET', accept: 'text/event-stream' })), Wants.Stream);
    assert.equal(all.wants(McpScope.None, head({ httpMethod: 'DELETE' })), Wants.Stream);
  });

  test('a denied call is answered with its id; an allowed one goes on untouched', () => {
    const { ins, metrics } = inspector();
    const denied = ins.inspect(head(), body(call(42, 'rm')), ORIGIN, true);
    assert.equal(denied.replyStatus, 200);
    const e = JSON.parse(denied.replyBody!.toString()) as { id: number; error: { code: number } };
    assert.equal(e.id, 42);
    assert.equal(e.error.code, -32003);
    const ok = ins.inspect(head(), body(call(43, 'echo')), ORIGIN, true);
    assert.equal(ok.replyStatus, 0);
    assert.equal(ok.body, null);
    assert.ok(ok.call !== null);
    const s = statsOf(metrics);
    assert.equal(s.get('tools/call|rm')!.errors['denied'], 1);
    assert.equal(s.get('tools/call|echo')!.requests, 1);
  });

  test('a denied notification is dropped: 202 with no body', () => {
    const { ins } = inspector();
    const v = ins.inspect(head(), body({ jsonrpc: '2.0', method: 'tools/call', params: { name: 'rm' } }), ORIGIN, true);
    assert.equal(v.replyStatus, 202);
    assert.equal(v.replyBody, null);
  });

  test('a batch keeps its allowed entries, in order, and holds the refused ones\' answers', () => {
    const { ins } = inspector();
    const v = ins.inspect(head({ protocolVersion: '2025-03-26' }), body([call(1, 'echo'), call(2, 'rm'), { jsonrpc: '2.0', method: 'notifications/progress', params: {} }, call(3, 'read_x')]), ORIGIN, true);
    assert.equal(v.replyStatus, 0);
    assert.deepEqual((JSON.parse(v.body!.toString()) as { id?: number }[]).map((m) => m.id), [1, undefined, 3]);
    assert.deepEqual(v.call!.denied.map((d) => d['id']), [2]);
  });

  test('header checks (2026-07-28)', () => {
    const { ins } = inspector();
    const h = head({ protocolVersion: '2026-07-28', sessionId: null });
    assert.equal(ins.inspect({ ...h, mcpMethod: 'tools/call', mcpName: 'echo' }, body(call(1, 'echo')), ORIGIN, true).replyStatus, 0);
    for (const [m, n] of [['tools/call', 'rm'], ['tools/list', 'echo'], [null, null], ['tools/call', null]] as const) {
      const v = ins.inspect({ ...h, mcpMethod: m, mcpName: n }, body(call(1, 'echo')), ORIGIN, true);
      assert.equal(v.replyStatus, 400, `${m} ${n}`);
      assert.equal((JSON.parse(v.replyBody!.toString()) as { error: { code: number } }).error.code, -32020);
    }
    // Older revisions: checked only when present.
    assert.equal(ins.inspect(head(), body(call(1, 'echo')), ORIGIN, true).replyStatus, 0);
    assert.equal(ins.inspect(head({ mcpMethod: 'ping' }), body(call(1, 'echo')), ORIGIN, true).replyStatus, 400);
  });

  test('random bodies never throw, and MCP routes always get an answer or a verdict', () => {
    const { ins } = inspector();
    const rng = new Prng(7);
    const pieces = ['{', '}', '[', ']', '"jsonrpc"', ':', '"2.0"', ',', '"id"', '1', '"method"', '"tools/call"', '"params"', '{"name":"echo"}', 'null', '"\\u0000"', '-1e999', ' '];
    for (let i = 0; i < 3000; i++) {
      let s = '';
      const n = rng.int(30);
      for (let k = 0; k < n; k++) s += pieces[rng.int(pieces.length)];
      const v = ins.inspect(head(), Buffer.from(s), ORIGIN, true);
      assert.ok(v.replyStatus !== 0 || v.call !== null, s);
    }
  });
});

describe('responses', () => {
  const SPLITS = [1, 2, 3, 7, 64, 100_000];

  function feed(sse: string, split: number, mode: ResponseMode, c: NonNullable<ReturnType<McpInspector['inspect']>['call']>): string {
    const b = Buffer.from(sse);
    let out = c.takeOut()?.toString() ?? '';
    for (let i = 0; i < b.length; i += split) {
      const part = b.subarray(i, i + split);
      if (mode === ResponseMode.Transform) out += c.transform(part)?.toString() ?? '';
      else c.observe(part);
    }
    out += c.finish()?.toString() ?? '';
    return out;
  }

  test('SSE: responses matched by id in any split; errors and isError are failures; unanswered fail', () => {
    for (const split of SPLITS) {
      const { ins, metrics, clock } = inspector(settings({ policies: [] }));
      const v = ins.inspect(head({ protocolVersion: '2025-03-26' }), body([call(1, 'echo'), call(2, 'fail'), call('3', 'err'), call(4, 'lost')]), ORIGIN, true);
      const c = v.call!;
      assert.equal(c.onResponseHead(200, 'text/event-stream', null), ResponseMode.Observe);
      clock.t += 5;
      const sse =
        ': comment\n\n' +
        'id: e1\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}\n\n' +
        'data: {"jsonrpc":"2.0","id":1,"result":{"content":[]}}\r\n\r\n' +
        'data: {"jsonrpc":"2.0","id":2,\ndata: "result":{"isError":true}}\n\n' +
        'data: [{"jsonrpc":"2.0","id":"3","error":{"code":-32602,"message":"x"}}]\n\n';
      feed(sse, split, ResponseMode.Observe, c);
      const s = statsOf(metrics);
      assert.equal(s.get('tools/call|echo')!.success, 1, `split ${split}`);
      assert.equal(s.get('tools/call|fail')!.errors['is-error'], 1);
      assert.equal(s.get('tools/call|err')!.errors['-32602'], 1);
      assert.equal(s.get('tools/call|lost')!.errors['no-response'], 1);
      assert.equal(s.get('tools/call|echo')!.count, 1);
    }
  });

  test('SSE transform: list results filtered and refused entries\' answers lead the stream, in any split', () => {
    for (const split of SPLITS) {
      const { ins, metrics } = inspector();
      const v = ins.inspect(head({ protocolVersion: '2025-03-26' }), body([{ jsonrpc: '2.0', id: 1, method: 'tools/list' }, call(2, 'rm')]), ORIGIN, true);
      const c = v.call!;
      assert.equal(c.onResponseHead(200, 'text/event-stream', null), ResponseMode.Transform);
      const out = feed('id: 9\ndata: {"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"},{"name":"rm"},{"name":"read_me"}]}}\n\n', split, ResponseMode.Transform, c);
      const events = out.split('\n\n').filter((e) => e !== '');
      assert.equal(events.length, 2, out);
      assert.equal((JSON.parse(events[0]!.replace(/^data: /, '')) as { id: number }).id, 2);
      assert.match(events[1]!, /^id: 9\n/);
      const list = JSON.parse(events[1]!.split('\n').find((l) => l.startsWith('data: '))!.slice(6)) as { result: { tools: { name: string }[] } };
      assert.deepEqual(list.result.tools.map((t) => t.name), ['echo', 'read_me']);
      assert.equal(metrics.snapshot(0, 0, 0, 'v').counters.find((x) => x.name === 'mcp_list_filtered_total')!.value, 1);
    }
  });

  test('a resumed GET stream under a policy: list answers replayed in it are filtered by their shape', () => {
    const { ins } = inspector();
    const c = ins.follow(head({ httpMethod: 'GET', accept: 'text/event-stream' }), ORIGIN);
    assert.equal(c.onResponseHead(200, 'text/event-stream', null), ResponseMode.Transform);
    const out = feed(
      'id: s1:4\ndata: {"jsonrpc":"2.0","id":3,"result":{"prompts":[{"name":"greet"},{"name":"admin"}]}}\n\n' + 'id: s1:5\ndata: {"jsonrpc":"2.0","id":4,"result":{"content":[{"type":"text","text":"x"}]}}\n\n',
      5,
      ResponseMode.Transform,
      c,
    );
    const events = out.split('\n\n').filter((e) => e !== '');
    assert.equal(events.length, 2);
    assert.match(events[0]!, /^id: s1:4\n/);
    assert.deepEqual((JSON.parse(events[0]!.split('data: ')[1]!) as { result: { prompts: { name: string }[] } }).result.prompts.map((p) => p.name), ['greet']);
    assert.deepEqual(JSON.parse(events[1]!.split('data: ')[1]!), { jsonrpc: '2.0', id: 4, result: { content: [{ type: 'text', text: 'x' }] } });
    // Without a policy, a GET stream is only observed.
    const open = inspector(settings({ policies: [] })).ins.follow(head({ httpMethod: 'GET', accept: 'text/event-stream' }), ORIGIN);
    assert.equal(open.onResponseHead(200, 'text/event-stream', null), ResponseMode.Observe);
  });

  test('JSON transform: a batch answer gets the refused entries\' answers; a 202 becomes 200 with them', () => {
    const { ins } = inspector();
    const v = ins.inspect(head({ protocolVersion: '2025-03-26' }), body([call(1, 'echo'), call(2, 'rm')]), ORIGIN, true);
    const c = v.call!;
    assert.equal(c.onResponseHead(200, 'application/json', null), ResponseMode.Transform);
    const out = feed('[{"jsonrpc":"2.0","id":1,"result":{}}]', 3, ResponseMode.Transform, c);
    assert.deepEqual((JSON.parse(out) as { id: number }[]).map((m) => m.id), [1, 2]);

    const v2 = ins.inspect(head({ protocolVersion: '2025-03-26' }), body([{ jsonrpc: '2.0', method: 'notifications/cancelled', params: {} }, call(5, 'rm')]), ORIGIN, true);
    const c2 = v2.call!;
    assert.equal(c2.onResponseHead(202, '', null), ResponseMode.Transform);
    assert.equal(c2.statusOverride, 200);
    assert.deepEqual((JSON.parse(c2.finish()!.toString()) as { id: number }[]).map((m) => m.id), [5]);
  });

  test('an SSE event too large to inspect is not passed unfiltered: an error event ends the stream for the client', () => {
    const { ins } = inspector();
    const c = ins.inspect(head(), body({ jsonrpc: '2.0', id: 1, method: 'tools/list' }), ORIGIN, true).call!;
    assert.equal(c.onResponseHead(200, 'text/event-stream', null), ResponseMode.Transform);
    let out = '';
    const piece = Buffer.alloc(512 * 1024, 0x61);
    out += c.transform(Buffer.from('data: {"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"'))?.toString() ?? '';
    for (let i = 0; i < 10; i++) out += c.transform(piece)?.toString() ?? '';
    out += c.transform(Buffer.from('"}]}}\n\n'))?.toString() ?? '';
    out += c.finish()?.toString() ?? '';
    assert.ok(!out.includes('aaaa'), 'nothing of the event went out');
    const events = out.split('\n\n').filter((e) => e !== '');
    assert.equal(events.length, 1);
    assert.equal((JSON.parse(events[0]!.slice('data: '.length)) as { error: { code: number } }).error.code, -32603);
  });

  test('a compressed answer is not read: passed on and counted, or replaced where it had to be filtered', () => {
    const { ins, metrics } = inspector();
    const c = ins.inspect(head(), body(call(1, 'echo')), ORIGIN, true).call!;
    assert.equal(c.onResponseHead(200, 'application/json', null, 'gzip'), ResponseMode.Pass);
    c.finish();
    assert.equal(statsOf(metrics).get('tools/call|echo')!.errors['content-encoding'], 1);
    const list = ins.inspect(head(), body({ jsonrpc: '2.0', id: 2, method: 'tools/list' }), ORIGIN, true).call!;
    assert.equal(list.onResponseHead(200, 'text/event-stream', null, 'br'), ResponseMode.Transform);
    assert.equal(list.statusOverride, 502);
    let out = list.takeOut()?.toString() ?? '';
    assert.equal(list.transform(Buffer.from('compressed bytes')), null);
    out += list.finish()?.toString() ?? '';
    assert.equal((JSON.parse(out) as { error: { code: number } }).error.code, -32603);
  });

  test('an HTTP error fails what was sent; an aborted stream fails and closes its gauge', () => {
    const { ins, metrics } = inspector(settings({ policies: [] }));
    const c = ins.inspect(head(), body(call(1, 'echo')), ORIGIN, true).call!;
    assert.equal(c.onResponseHead(503, 'text/plain', null), ResponseMode.Pass);
    c.finish();
    assert.equal(statsOf(metrics).get('tools/call|echo')!.errors['http-503'], 1);
    const c2 = ins.inspect(head(), body(call(2, 'slow')), ORIGIN, true).call!;
    c2.onResponseHead(200, 'text/event-stream', null);
    const gauge = (): number => metrics.snapshot(0, 0, 0, 'v').counters.find((x) => x.name === 'mcp_streams_active')!.value;
    assert.equal(gauge(), 1);
    c2.abort();
    assert.equal(gauge(), 0);
    assert.equal(statsOf(metrics).get('tools/call|slow')!.errors['aborted'], 1);
  });

  test('sessions: opened by an initialize answered with a session id, ended once by DELETE or 404', () => {
    const { ins, metrics } = inspector(settings({ policies: [] }));
    const init = ins.inspect(head({ sessionId: null }), body({ jsonrpc: '2.0', id: 0, method: 'initialize', params: {} }), ORIGIN, true).call!;
    init.onResponseHead(200, 'application/json', 'sess-1');
    init.finish();
    const active = (): number => metrics.snapshot(0, 0, 0, 'v').counters.find((x) => x.name === 'mcp_sessions_active')!.value;
    assert.equal(active(), 1);
    const del = ins.follow(head({ httpMethod: 'DELETE', sessionId: 'sess-1' }), ORIGIN);
    del.onResponseHead(200, '', null);
    del.finish();
    const late = ins.follow(head({ httpMethod: 'GET', sessionId: 'sess-1' }), ORIGIN);
    late.onResponseHead(404, '', null);
    assert.equal(active(), 0);
  });

  test('names are bounded per method: past maxNames they share "_overflow"; unknown methods are "_other"', () => {
    const { ins, metrics } = inspector(settings({ policies: [], maxNames: 3 }));
    for (let i = 0; i < 10; i++) ins.inspect(head(), body(call(i, `tool${i}`)), ORIGIN, true);
    ins.inspect(head(), body({ jsonrpc: '2.0', id: 1, method: 'x/evil-method-name' }), ORIGIN, true);
    const s = statsOf(metrics);
    assert.equal([...s.keys()].filter((k) => k.startsWith('tools/call|')).length, 4);
    assert.equal(s.get('tools/call|_overflow')!.requests, 7);
    assert.equal(s.get('_other|')!.requests, 1);
  });
});
