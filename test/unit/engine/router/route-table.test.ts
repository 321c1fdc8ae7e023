// Unit tests of compiled routes: host (exact and wildcard), Gateway API path semantics, method and
// header matches, first-match order, the catch-all fast path and weighted backend picking.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { Cluster } from '../../../../engine/cluster';
import type { HeaderMatch, RouteMatchSnapshot, RouteSnapshot } from '../../../../engine/config/snapshot';
import { HeadInfo, parseHead } from '../../../../engine/http1/head-parser';
import { CompiledRoute, RouteTable } from '../../../../engine/router/route-table';

function fakeCluster(name: string): Cluster {
  return { name } as unknown as Cluster;
}

const CLUSTERS = new Map<string, Cluster>(['web', 'api', 'canary', 'zero'].map((n) => [n, fakeCluster(n)]));

function route(name: string, opts: Partial<RouteSnapshot> = {}): CompiledRoute {
  const r: RouteSnapshot = {
    name,
    hostnames: opts.hostnames ?? [],
    matches: opts.matches ?? [],
    backends: opts.backends ?? [{ service: 'web', weight: 1 }],
    requestTimeoutMs: opts.requestTimeoutMs ?? 0,
  };
  return new CompiledRoute(r, CLUSTERS);
}

function m(path?: RouteMatchSnapshot['path'], method?: string, headers: HeaderMatch[] = []): RouteMatchSnapshot {
  const out: RouteMatchSnapshot = { headers };
  if (path !== undefined) out.path = path;
  if (method !== undefined) out.method = method;
  return out;
}

interface Req {
  buf: Buffer;
  h: HeadInfo;
  pathStart: number;
  pathEnd: number;
  method: string;
}

/** Parses a request and finds its path the way the proxy does: from the target start to before '?'. */
function request(method: string, target: string, ...fields: string[]): Req {
  const buf = Buffer.from(`${method} ${target} HTTP/1.1\r\nHost: h\r\n${fields.map((f) => f + '\r\n').join('')}\r\n`, 'latin1');
  const h = new HeadInfo();
  h.reset(0);
  assert.equal(parseHead(buf, h, true, 65536), buf.length);
  const pathStart = h.base + h.targetStart;
  const targetEnd = h.base + h.targetEnd;
  const q = buf.indexOf(0x3f, pathStart);
  const pathEnd = q === -1 || q > targetEnd ? targetEnd : q;
  return { buf, h, pathStart, pathEnd, method };
}

function matches(r: CompiledRoute, q: Req): boolean {
  return r.matchesRequest(q.buf, q.h, q.pathStart, q.pathEnd, q.method);
}

describe('hosts', () => {
  test('exact host names', () => {
    const r = route('r', { hostnames: ['example.com', 'api.example.com'] });
    assert.equal(r.matchesHost('example.com'), true);
    assert.equal(r.matchesHost('api.example.com'), true);
    assert.equal(r.matchesHost('www.example.com'), false);
    assert.equal(r.matchesHost('example.co'), false);
    assert.equal(r.matchesHost(''), false);
  });

  test('wildcards match one or more labels in front of the suffix, never the bare suffix', () => {
    const r = route('r', { hostnames: ['*.example.com'] });
    assert.equal(r.matchesHost('a.example.com'), true);
    assert.equal(r.matchesHost('a.b.example.com'), true);
    assert.equal(r.matchesHost('example.com'), false);
    assert.equal(r.matchesHost('.example.com'), false);
    assert.equal(r.matchesHost('aexample.com'), false);
    assert.equal(r.matchesHost('a.example.com.evil'), false);
  });

  test('no host names match any host', () => {
    const r = route('r');
    assert.equal(r.matchesHost('anything'), true);
    assert.equal(r.matchesHost(''), true);
  });
});

describe('paths', () => {
  test('PathPrefix matches whole segments', () => {
    const r = route('r', { matches: [m({ kind: 'prefix', value: '/api' })] });
    assert.equal(matches(r, request('GET', '/api')), true);
    assert.equal(matches(r, request('GET', '/api/')), true);
    assert.equal(matches(r, request('GET', '/api/x/y')), true);
    assert.equal(matches(r, request('GET', '/api?q=1')), true);
    assert.equal(matches(r, request('GET', '/api/x?q=/apix')), true);
    assert.equal(matches(r, request('GET', '/apix')), false);
    assert.equal(matches(r, request('GET', '/ap')), false);
    assert.equal(matches(r, request('GET', '/API')), false);
    assert.equal(matches(r, request('GET', '/x/api')), false);
    assert.equal(matches(r, request('GET', '/?/api')), false);
  });

  test('a prefix ending in "/" matches everything below it', () => {
    const r = route('r', { matches: [m({ kind: 'prefix', value: '/api/' })] });
    assert.equal(matches(r, request('GET', '/api/')), true);
    assert.equal(matches(r, request('GET', '/api/x')), true);
    assert.equal(matches(r, request('GET', '/apix')), false);
    const root = route('root', { matches: [m({ kind: 'prefix', value: '/' })] });
    for (const t of ['/', '/a', '/a/b?c', '/?x']) assert.equal(matches(root, request('GET', t)), true, t);
  });

  test('Exact matches the path only, ignoring the query', () => {
    const r = route('r', { matches: [m({ kind: 'exact', value: '/health' })] });
    assert.equal(matches(r, request('GET', '/health')), true);
    assert.equal(matches(r, request('GET', '/health?verbose=1')), true);
    assert.equal(matches(r, request('GET', '/health/')), false);
    assert.equal(matches(r, request('GET', '/healthz')), false);
    assert.equal(matches(r, request('GET', '/Health')), false);
  });
});

describe('methods and headers', () => {
  test('method', () => {
    const r = route('r', { matches: [m(undefined, 'POST')] });
    assert.equal(matches(r, request('POST', '/')), true);
    assert.equal(matches(r, request('GET', '/')), false);
  });

  test('header exact, case-insensitive name and case-sensitive value', () => {
    const r = route('r', { matches: [m(undefined, undefined, [{ name: 'x-env', kind: 'exact', value: 'canary' }])] });
    assert.equal(matches(r, request('GET', '/', 'X-Env: canary')), true);
    assert.equal(matches(r, request('GET', '/', 'x-env:   canary  ')), true);
    assert.equal(matches(r, request('GET', '/', 'X-Env: Canary')), false);
    assert.equal(matches(r, request('GET', '/', 'X-Env: canary2')), false);
    assert.equal(matches(r, request('GET', '/', 'X-Envy: canary')), false);
    assert.equal(matches(r, request('GET', '/')), false);
  });

  test('header names with underscores match', () => {
    const r = route('r', { matches: [m(undefined, undefined, [{ name: 'x_tenant', kind: 'exact', value: 't1' }])] });
    assert.equal(matches(r, request('GET', '/', 'X_Tenant: t1')), true);
  });

  test('header regex is anchored to the whole value', () => {
    const r = route('r', { matches: [m(undefined, undefined, [{ name: 'x-version', kind: 'regex', value: 'v[0-9]+|beta' }])] });
    assert.equal(matches(r, request('GET', '/', 'X-Version: v12')), true);
    assert.equal(matches(r, request('GET', '/', 'X-Version: beta')), true);
    assert.equal(matches(r, request('GET', '/', 'X-Version: xv12')), false);
    assert.equal(matches(r, request('GET', '/', 'X-Version: v12x')), false);
    assert.equal(matches(r, request('GET', '/', 'X-Version: betamax')), false);
    assert.equal(matches(r, request('GET', '/')), false);
  });

  test('header present, even when empty', () => {
    const r = route('r', { matches: [m(undefined, undefined, [{ name: 'x-debug', kind: 'present', value: '' }])] });
    assert.equal(matches(r, request('GET', '/', 'X-Debug:')), true);
    assert.equal(matches(r, request('GET', '/', 'X-Debug: 1')), true);
    assert.equal(matches(r, request('GET', '/', 'X-Debugger: 1')), false);
  });

  test('conditions within a match all apply; matches of a route are alternatives', () => {
    const r = route('r', {
      matches: [
        m({ kind: 'prefix', value: '/a' }, 'GET', [{ name: 'x-k', kind: 'exact', value: '1' }]),
        m({ kind: 'exact', value: '/b' }),
      ],
    });
    assert.equal(matches(r, request('GET', '/a/1', 'X-K: 1')), true);
    assert.equal(matches(r, request('POST', '/a/1', 'X-K: 1')), false);
    assert.equal(matches(r, request('GET', '/a/1', 'X-K: 2')), false);
    assert.equal(matches(r, request('GET', '/c', 'X-K: 1')), false);
    assert.equal(matches(r, request('DELETE', '/b')), true);
  });

  test('a header matches on its first occurrence', () => {
    const r = route('r', { matches: [m(undefined, undefined, [{ name: 'x-k', kind: 'exact', value: '2' }])] });
    assert.equal(matches(r, request('GET', '/', 'X-K: 1', 'X-K: 2')), false);
    assert.equal(matches(r, request('GET', '/', 'X-K: 2', 'X-K: 1')), true);
  });
});

describe('tables', () => {
  test('the first matching route wins', () => {
    const api = route('api', { hostnames: ['example.com'], matches: [m({ kind: 'prefix', value: '/api' })], backends: [{ service: 'api', weight: 1 }] });
    const any = route('any', { hostnames: ['example.com'] });
    const other = route('other', { hostnames: ['*.other.com'] });
    const t = new RouteTable([api, any, other]);
    const q = request('GET', '/api/v1');
    assert.equal(t.match(q.buf, q.h, 'example.com', q.pathStart, q.pathEnd, 'GET'), api);
    const q2 = request('GET', '/web');
    assert.equal(t.match(q2.buf, q2.h, 'example.com', q2.pathStart, q2.pathEnd, 'GET'), any);
    assert.equal(t.match(q2.buf, q2.h, 'x.other.com', q2.pathStart, q2.pathEnd, 'GET'), other);
    assert.equal(t.match(q2.buf, q2.h, 'nowhere.com', q2.pathStart, q2.pathEnd, 'GET'), null);
    const reversed = new RouteTable([any, api]);
    assert.equal(reversed.match(q.buf, q.h, 'example.com', q.pathStart, q.pathEnd, 'GET'), any);
    assert.equal(t.only, null);
    assert.equal(t.needsHost, true);
  });

  test('a single catch-all route is the fast path', () => {
    for (const r of [route('all'), route('all', { matches: [m()] }), route('all', { matches: [m(), m()] })]) {
      assert.equal(r.catchAll, true);
      const t = new RouteTable([r]);
      assert.equal(t.only, r);
      assert.equal(t.needsHost, false);
      const q = request('PATCH', '/whatever?x');
      assert.equal(t.match(q.buf, q.h, '', q.pathStart, q.pathEnd, 'PATCH'), r);
    }
  });

  test('routes with any condition are not catch-all', () => {
    assert.equal(route('r', { hostnames: ['a'] }).catchAll, false);
    assert.equal(route('r', { matches: [m({ kind: 'prefix', value: '/' })] }).catchAll, false);
    assert.equal(route('r', { matches: [m(undefined, 'GET')] }).catchAll, false);
    assert.equal(route('r', { matches: [m(), m(undefined, 'GET')] }).catchAll, false);
    assert.equal(new RouteTable([route('a'), route('b')]).only, null);
    assert.equal(new RouteTable([]).match(Buffer.alloc(0), new HeadInfo(), 'h', 0, 0, 'GET'), null);
  });
});

describe('backends', () => {
  test('weighted backends get exact shares over many picks', () => {
    const r = route('r', {
      backends: [
        { service: 'web', weight: 70 },
        { service: 'canary', weight: 20 },
        { service: 'zero', weight: 0 },
        { service: 'api', weight: 10 },
      ],
    });
    assert.deepEqual(
      r.backends.map((b) => b.cluster.name),
      ['web', 'canary', 'api'],
    );
    const counts = new Map<string, number>();
    const picks = 10_000;
    for (let i = 0; i < picks; i++) {
      const b = r.pickBackend()!;
      counts.set(b.cluster.name, (counts.get(b.cluster.name) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries(counts), { web: 7000, canary: 2000, api: 1000 });
  });

  test('every window of total-weight consecutive picks holds each backend its weight times', () => {
    const r = route('r', { backends: [{ service: 'web', weight: 3 }, { service: 'api', weight: 2 }] });
    const seq = Array.from({ length: 50 }, () => r.pickBackend()!.cluster.name);
    for (let i = 0; i + 5 <= seq.length; i += 5) {
      const w = seq.slice(i, i + 5);
      assert.equal(w.filter((n) => n === 'web').length, 3);
      assert.equal(w.filter((n) => n === 'api').length, 2);
    }
  });

  test('one backend, or none', () => {
    const one = route('r', { backends: [{ service: 'api', weight: 5 }] });
    for (let i = 0; i < 3; i++) assert.equal(one.pickBackend()!.cluster.name, 'api');
    assert.equal(route('r', { backends: [] }).pickBackend(), null);
    assert.equal(route('r', { backends: [{ service: 'zero', weight: 0 }] }).pickBackend(), null);
  });

  test('the route keeps its name and timeout', () => {
    const r = route('named', { requestTimeoutMs: 1500 });
    assert.equal(r.name, 'named');
    assert.equal(r.requestTimeoutMs, 1500);
  });
});

test('a trailing slash of a PathPrefix is not significant (Gateway API)', () => {
  const r = route('slash', { matches: [m({ kind: 'prefix', value: '/api/' })] });
  assert.equal(matches(r, request('GET', '/api')), true);
  assert.equal(matches(r, request('GET', '/api/')), true);
  assert.equal(matches(r, request('GET', '/api/v1')), true);
  assert.equal(matches(r, request('GET', '/apix')), false);
  const root = route('root', { matches: [m({ kind: 'prefix', value: '/' })] });
  assert.equal(matches(root, request('GET', '/anything')), true);
});
