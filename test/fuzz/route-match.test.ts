// Properties of route matching against definitions written independently here: PathPrefix compares
// whole '/'-separated segments, Exact the whole path, both before any query; weighted picking gives
// every backend exactly its share of each round.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Cluster } from '../../engine/cluster';
import { HeadInfo, parseHead } from '../../engine/http1/head-parser';
import { CompiledRoute } from '../../engine/router/route-table';
import { Prng, fuzzSeeds } from '../helpers/prng';

const CLUSTERS = new Map<string, Cluster>(['a', 'b', 'c', 'd'].map((n) => [n, { name: n } as unknown as Cluster]));

function randomPath(rng: Prng): string {
  let p = '';
  for (let n = rng.range(0, 4); n > 0; n--) p += '/' + rng.string('ab', rng.range(0, 2));
  return p === '' ? '/' : p;
}

/** Gateway API PathPrefix for a prefix without a trailing '/': its segments start the path's segments. */
function segmentPrefix(prefix: string, path: string): boolean {
  const ps = prefix.split('/');
  const qs = path.split('/');
  return ps.length <= qs.length && ps.every((s, i) => s === qs[i]);
}

for (const seed of fuzzSeeds([61, 62])) {
  test(`PathPrefix and Exact agree with segment definitions (seed ${seed})`, () => {
    const rng = new Prng(seed);
    let matched = 0;
    for (let it = 0; it < 1500; it++) {
      const prefix = randomPath(rng).replace(/\/+$/, '') || '/';
      const path = randomPath(rng);
      const query = rng.chance(0.3) ? `?${rng.string('ab/?', rng.range(0, 5))}` : '';
      const buf = Buffer.from(`GET ${path}${query} HTTP/1.1\r\nHost: h\r\n\r\n`, 'latin1');
      const h = new HeadInfo();
      h.reset(0);
      assert.equal(parseHead(buf, h, true, 4096), buf.length);
      const pathStart = h.targetStart;
      const pathEnd = pathStart + path.length;
      const kind = rng.chance(0.5) ? 'prefix' : 'exact';
      const r = new CompiledRoute(
        { name: 'r', hostnames: [], matches: [{ path: { kind, value: prefix }, headers: [] }], backends: [], requestTimeoutMs: 0 },
        CLUSTERS,
      );
      const want = kind === 'exact' ? path === prefix : prefix === '/' || segmentPrefix(prefix, path);
      const got = r.matchesRequest(buf, h, pathStart, pathEnd, 'GET');
      assert.equal(got, want, `${kind} ${prefix} vs ${path}${query}`);
      if (got) matched++;
    }
    assert.ok(matched > 100 && matched < 1400, String(matched));
  });
}

test('weighted picks give each backend exactly its weight in every round', () => {
  const rng = new Prng(63);
  for (let it = 0; it < 200; it++) {
    const names = ['a', 'b', 'c', 'd'].slice(0, rng.range(2, 4));
    const weights = names.map(() => rng.range(0, 20));
    if (!weights.some((w) => w > 0)) weights[0] = 1;
    const r = new CompiledRoute(
      { name: 'r', hostnames: [], matches: [], backends: names.map((service, i) => ({ service, weight: weights[i] })), requestTimeoutMs: 0 },
      CLUSTERS,
    );
    const total = weights.reduce((a, b) => a + b, 0);
    for (let round = 0; round < 3; round++) {
      const counts = new Map<string, number>();
      for (let i = 0; i < total; i++) {
        const b = r.pickBackend()!;
        counts.set(b.cluster.name, (counts.get(b.cluster.name) ?? 0) + 1);
      }
      names.forEach((n, i) => assert.equal(counts.get(n) ?? 0, weights[i], `weights ${weights} round ${round}`));
    }
  }
});
