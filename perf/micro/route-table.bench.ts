// Micro benchmark of route matching (engine/router/route-table.ts): the one-line catch-all, and a
// 20-route table hit at its first route, its last route and on a header match, as the downstream
// connection calls it (head already parsed, host already resolved, path as offsets into the buffer).

import type { Cluster } from '../../engine/cluster';
import type { RouteSnapshot } from '../../engine/config/snapshot';
import { HeadInfo, parseHead } from '../../engine/http1/head-parser';
import { CompiledRoute, RouteTable } from '../../engine/router/route-table';
import { compare, type Contender, fmt, fmtNs, table } from './bench-util';

function route(name: string, hostnames: string[], prefix: string | undefined, header?: { name: string; value: string }): RouteSnapshot {
  return {
    name,
    hostnames,
    matches: [
      {
        ...(prefix === undefined ? {} : { path: { kind: 'prefix' as const, value: prefix } }),
        headers: header === undefined ? [] : [{ name: header.name, kind: 'regex' as const, value: header.value }],
      },
    ],
    backends: [{ service: 'svc', weight: 1 }],
    requestTimeoutMs: 0,
  };
}

function compile(routes: RouteSnapshot[]): RouteTable {
  // Matching never touches the cluster; a stand-in keeps the bench free of pools and pickers.
  const clusters = new Map<string, Cluster>([['svc', { name: 'svc' } as unknown as Cluster]]);
  return new RouteTable(routes.map((r) => new CompiledRoute(r, clusters)));
}

interface Case {
  name: string;
  table: RouteTable;
  request: string;
  host: string;
  expect: string;
}

function manyRoutes(): RouteSnapshot[] {
  const rs: RouteSnapshot[] = [];
  rs.push(route('r0-api', ['api.example.com'], '/v1'));
  for (let i = 1; i < 18; i++) rs.push(route(`r${i}`, [`svc${i}.example.com`, `*.svc${i}.internal`], `/p${i}`));
  rs.push(route('r18-canary', ['shop.example.com'], '/cart', { name: 'x-canary', value: 'true|yes' }));
  rs.push(route('r19-shop', ['shop.example.com'], '/cart'));
  return rs;
}

function cases(): Case[] {
  const many = compile(manyRoutes());
  const catchAll = compile([{ name: 'default', hostnames: [], matches: [], backends: [{ service: 'svc', weight: 1 }], requestTimeoutMs: 0 }]);
  return [
    { name: 'one-line catch-all (1 route)', table: catchAll, request: 'GET / HTTP/1.1\r\nHost: 127.0.0.1:18200\r\n\r\n', host: '127.0.0.1', expect: 'default' },
    {
      name: '20 routes, first matches',
      table: many,
      request: 'GET /v1/users/42 HTTP/1.1\r\nHost: api.example.com\r\nAccept: */*\r\n\r\n',
      host: 'api.example.com',
      expect: 'r0-api',
    },
    {
      name: '20 routes, last matches (header miss first)',
      table: many,
      request: 'GET /cart/items?x=1 HTTP/1.1\r\nHost: shop.example.com\r\nAccept: */*\r\nUser-Agent: bench\r\n\r\n',
      host: 'shop.example.com',
      expect: 'r19-shop',
    },
    {
      name: '20 routes, header regex matches',
      table: many,
      request: 'GET /cart HTTP/1.1\r\nHost: shop.example.com\r\nAccept: */*\r\nX-Canary: yes\r\n\r\n',
      host: 'shop.example.com',
      expect: 'r18-canary',
    },
    {
      name: '20 routes, wildcard host, no path match',
      table: many,
      request: 'GET /nothing HTTP/1.1\r\nHost: a.svc9.internal\r\n\r\n',
      host: 'a.svc9.internal',
      expect: '(none)',
    },
  ];
}

function contender(c: Case): Contender {
  const buf = Buffer.from(c.request, 'latin1');
  const h = new HeadInfo();
  h.reset(0);
  if (parseHead(buf, h, true, 65536) !== buf.length) throw new Error(`bad request in '${c.name}'`);
  const ps = h.targetStart;
  let pe = buf.indexOf(0x3f, ps);
  if (pe === -1 || pe > h.targetEnd) pe = h.targetEnd;
  const t = c.table;
  const host = c.host;
  const got = t.match(buf, h, host, ps, pe, 'GET');
  if ((got === null ? '(none)' : got.name) !== c.expect) throw new Error(`'${c.name}' matched ${got?.name ?? '(none)'}, expected ${c.expect}`);
  return {
    name: c.name,
    run(n: number): number {
      let s = 0;
      for (let i = 0; i < n; i++) s += t.match(buf, h, host, ps, pe, 'GET') === null ? 1 : 2;
      return s;
    },
  };
}

export function runRouteBench(): string {
  const cs = cases();
  const results = compare(cs.map(contender));
  const rows = results.map((r, i) => [r.name, cs[i].expect, fmtNs(r.nsPerOp), `${fmtNs(r.minNs)}–${fmtNs(r.maxNs)}`, fmt(1e9 / r.nsPerOp)]);
  return [
    '**Route matching** — RouteTable.match() with the head parsed and the host resolved beforehand',
    '',
    table(['case', 'route picked', 'ns/op (median)', 'min–max', 'matches/s'], ['l', 'l', 'r', 'r', 'r'], rows),
  ].join('\n');
}
