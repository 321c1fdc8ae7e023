// Unit tests of inbound authorization decisions: Servers deny unless a policy authorizes, identity
// patterns, networks with exceptions, route-targeted policies on normalised paths, default policies,
// and audit mode.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PolicySnapshot, RouteSnapshot } from '../../../engine/config/snapshot';
import { Authorizer, normalizePath } from '../../../engine/policy/authorizer';

const WEB = 'spiffe://mesh.test/ns/shop/sa/web';
const API = 'spiffe://mesh.test/ns/shop/sa/api';
const OPS = 'spiffe://mesh.test/ns/ops/sa/admin';

function policy(p: Partial<PolicySnapshot>): PolicySnapshot {
  return { defaultPolicy: 'all-unauthenticated', clusterNetworks: ['10.0.0.0/8'], audit: false, servers: [], authorizations: [], ...p };
}

function route(name: string, path: RouteSnapshot['matches'][number]['path']): RouteSnapshot {
  return { name, hostnames: [], matches: [{ path, headers: [] }], backends: [{ service: 'app', weight: 1 }], requestTimeoutMs: 0 };
}

test('normalizePath resolves the spellings an app may decode to the same path', () => {
  const same = ['/admin', '/%61dmin', '/%61%64%6D%69%6E', '//admin', '/./admin', '/x/../admin', '/admin;jsessionid=1', '/%2Fadmin', '/\\admin', '/public/%2e%2e/admin', 'http://host:80/admin', '/admin?x=/y', '/admin#frag'];
  for (const p of same) assert.equal(normalizePath(p), '/admin', p);
  assert.equal(normalizePath('/a/b/'), '/a/b/');
  assert.equal(normalizePath('/'), '/');
  assert.equal(normalizePath('/../../etc'), '/etc');
  // Reserved characters other than slashes stay encoded (upper-cased), so that they cannot fake a match.
  assert.equal(normalizePath('/a%3fb'), '/a%3Fb');
});

test('a Server denies unless a policy authorizes; identities match exactly or by "*" segments', () => {
  const a = new Authorizer(
    policy({
      servers: [{ name: 'api-http', port: 8080 }],
      authorizations: [
        { name: 'web-only', target: { kind: 'server', name: 'api-http' }, identities: [WEB] },
        { name: 'ops-any', target: { kind: 'server', name: 'api-http' }, identities: ['spiffe://mesh.test/ns/ops/sa/*'] },
      ],
    }),
    [],
  );
  assert.deepEqual(a.decide('in', 8080, WEB, '127.0.0.1', '/'), { allowed: true, server: 'api-http', policy: 'web-only', audited: false });
  assert.equal(a.decide('in', 8080, OPS, '127.0.0.1', '/').policy, 'ops-any');
  assert.equal(a.decide('in', 8080, API, '127.0.0.1', '/').allowed, false);
  assert.equal(a.decide('in', 8080, null, '127.0.0.1', '/').allowed, false);
  // "*" matches one segment only: no climbing into a longer path.
  assert.equal(a.decide('in', 8080, 'spiffe://mesh.test/ns/ops/sa/admin/extra', '127.0.0.1', '/').allowed, false);
  // Another port is not this Server: the default policy (all-unauthenticated) applies.
  assert.deepEqual(a.decide('in', 9090, null, '127.0.0.1', '/'), { allowed: true, server: '', policy: 'all-unauthenticated', audited: false });
});

test('a "*" identity is any mesh identity, not the absence of one', () => {
  const a = new Authorizer(policy({ servers: [{ name: 's', listener: 'in' }], authorizations: [{ name: 'meshed', target: { kind: 'server', name: 's' }, identities: ['*'] }] }), []);
  assert.equal(a.decide('in', 1, API, '127.0.0.1', null).allowed, true);
  assert.equal(a.decide('in', 1, null, '127.0.0.1', null).allowed, false);
});

test('network authentication: CIDRs with exceptions, IPv4-mapped addresses, and both kinds together', () => {
  const a = new Authorizer(
    policy({
      servers: [{ name: 's', port: 80 }],
      authorizations: [
        { name: 'lan', target: { kind: 'server', name: 's' }, networks: [{ cidr: '10.0.0.0/8', except: ['10.9.0.0/16'] }] },
        { name: 'web-from-v6', target: { kind: 'server', name: 's' }, identities: [WEB], networks: [{ cidr: 'fd00::/8', except: [] }] },
      ],
    }),
    [],
  );
  assert.equal(a.decide('x', 80, null, '10.1.2.3', null).policy, 'lan');
  assert.equal(a.decide('x', 80, null, '::ffff:10.1.2.3', null).policy, 'lan');
  assert.equal(a.decide('x', 80, null, '10.9.1.1', null).allowed, false);
  assert.equal(a.decide('x', 80, null, '192.168.1.1', null).allowed, false);
  assert.equal(a.decide('x', 80, WEB, 'fd00::1', null).policy, 'web-from-v6');
  assert.equal(a.decide('x', 80, API, 'fd00::1', null).allowed, false);
});

test('route-targeted policies decide the paths of their route, normalised; other paths fall to the Server', () => {
  const routes = [route('admin', { kind: 'prefix', value: '/admin' }), route('health', { kind: 'exact', value: '/healthz' }), route('re', { kind: 'regex', value: '/v[0-9]+/secret' })];
  const a = new Authorizer(
    policy({
      servers: [{ name: 's', port: 80 }],
      authorizations: [
        { name: 'any-meshed', target: { kind: 'server', name: 's' }, identities: ['*'] },
        { name: 'admin-ops', target: { kind: 'route', name: 'admin' }, identities: [OPS] },
        { name: 'health-anyone', target: { kind: 'route', name: 'health' }, networks: [{ cidr: '0.0.0.0/0', except: [] }] },
        { name: 're-ops', target: { kind: 'route', name: 're' }, identities: [OPS] },
      ],
    }),
    routes,
  );
  assert.equal(a.decide('in', 80, WEB, '127.0.0.1', '/orders').policy, 'any-meshed');
  assert.equal(a.decide('in', 80, OPS, '127.0.0.1', '/admin/users').policy, 'admin-ops');
  for (const p of ['/admin', '/admin/', '/%61dmin', '//admin', '/./admin/x', '/ADMIN', '/x/../admin', '/Admin;a=b', 'http://h/admin', '/V1/Secret']) {
    assert.equal(a.decide('in', 80, WEB, '127.0.0.1', p).allowed, false, p);
  }
  assert.equal(a.decide('in', 80, WEB, '127.0.0.1', '/administrator').policy, 'any-meshed', 'a prefix ends at a segment');
  assert.equal(a.decide('in', 80, null, '127.0.0.1', '/healthz').policy, 'health-anyone');
  assert.equal(a.decide('in', 80, null, '127.0.0.1', '/orders').allowed, false);
});

test('default policies for ports without a Server', () => {
  const d = (defaultPolicy: PolicySnapshot['defaultPolicy'], identity: string | null, address: string): boolean => new Authorizer(policy({ defaultPolicy }), []).decide('in', 80, identity, address, null).allowed;
  assert.equal(d('all-unauthenticated', null, '203.0.113.1'), true);
  assert.equal(d('all-authenticated', null, '10.0.0.1'), false);
  assert.equal(d('all-authenticated', WEB, '203.0.113.1'), true);
  assert.equal(d('cluster-authenticated', null, '10.0.0.1'), true);
  assert.equal(d('cluster-authenticated', null, '203.0.113.1'), false);
  assert.equal(d('cluster-authenticated', WEB, '203.0.113.1'), true);
  assert.equal(d('deny', WEB, '10.0.0.1'), false);
});

test('audit mode lets denied traffic through, marked as audited', () => {
  const a = new Authorizer(policy({ audit: true, servers: [{ name: 's', port: 80 }], authorizations: [{ name: 'web', target: { kind: 'server', name: 's' }, identities: [WEB] }] }), []);
  assert.deepEqual(a.decide('in', 80, API, '127.0.0.1', '/'), { allowed: true, server: 's', policy: '', audited: true });
  assert.deepEqual(a.decide('in', 80, WEB, '127.0.0.1', '/'), { allowed: true, server: 's', policy: 'web', audited: false });
});

test('a policy on a route covers all its rules, and a catch-all route cannot open a narrower route', () => {
  const routes = [route('ops/0', { kind: 'prefix', value: '/admin' }), route('ops/1', { kind: 'prefix', value: '/debug' }), route('all', undefined)];
  const a = new Authorizer(
    policy({
      servers: [{ name: 's', port: 80 }],
      authorizations: [
        { name: 'ops-only', target: { kind: 'route', name: 'ops' }, identities: [OPS] },
        { name: 'anyone', target: { kind: 'route', name: 'all' }, networks: [{ cidr: '0.0.0.0/0', except: [] }] },
      ],
    }),
    routes,
  );
  assert.equal(a.decide('in', 80, null, '127.0.0.1', '/shop').policy, 'anyone');
  assert.equal(a.decide('in', 80, WEB, '127.0.0.1', '/admin').allowed, false);
  assert.equal(a.decide('in', 80, WEB, '127.0.0.1', '/debug/pprof').allowed, false);
  assert.equal(a.decide('in', 80, OPS, '127.0.0.1', '/debug/pprof').policy, 'ops-only');
});

test("a Server's port may be the workload's (as in Linkerd), not only the proxy listener's", () => {
  const a = new Authorizer(policy({ defaultPolicy: 'all-unauthenticated', servers: [{ name: 'app-http', port: 8080 }], authorizations: [{ name: 'meshed', target: { kind: 'server', name: 'app-http' }, identities: ['*'] }] }), [], new Map([['in', [8080]]]));
  // The inbound listener on 4143 forwards to the app on 8080: the Server applies.
  assert.deepEqual(a.decide('in', 4143, null, '127.0.0.1', '/'), { allowed: false, server: 'app-http', policy: '', audited: false });
  assert.equal(a.decide('in', 4143, WEB, '127.0.0.1', '/').policy, 'meshed');
  // Another listener whose app is elsewhere follows the default.
  assert.equal(a.decide('other', 4144, null, '127.0.0.1', '/').policy, 'all-unauthenticated');
});
