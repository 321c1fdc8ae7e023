// Unit tests of the YAML config source: translation into an EngineSnapshot with defaults, and
// error reports that name the file and the file's own field path.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  DEFAULT_FAILURE_ACCRUAL,
  DEFAULT_FAILURE_PENALTY,
  DEFAULT_HTTP_SETTINGS,
  DEFAULT_POOL_SETTINGS,
  DEFAULT_QUEUE,
  DEFAULT_RETRY_POLICY,
  DEFAULT_TIMEOUTS,
  DEFAULT_ZONE_LOCALITY,
  type EngineSnapshot,
  type ServiceSnapshot,
} from '../../../engine/config/snapshot';
import { validateSnapshot } from '../../../engine/config/validate-snapshot';
import { ConfigError, loadConfigFile, parseConfigText, parseSocketAddress } from '../../../engine/config/file/yaml-config';

const FILE = 'mesh.yaml';

/** The policy fields of a service that sets none of them. */
function defaultPolicies(): Partial<ServiceSnapshot> {
  return {
    zoneLocality: { ...DEFAULT_ZONE_LOCALITY },
    failureAccrual: { ...DEFAULT_FAILURE_ACCRUAL },
    failurePenalty: { ...DEFAULT_FAILURE_PENALTY, statuses: [...DEFAULT_FAILURE_PENALTY.statuses] },
    queue: { ...DEFAULT_QUEUE },
    retry: { ...DEFAULT_RETRY_POLICY, on: [...DEFAULT_RETRY_POLICY.on], statusCodes: [], budget: { ...DEFAULT_RETRY_POLICY.budget } },
    timeouts: { ...DEFAULT_TIMEOUTS },
    protocol: 'auto',
  };
}

const FULL = `
proxy:
  zone: zone-a
  http:
    maxHeadBytes: 32768
    headTimeoutMs: 5000
    keepAliveTimeoutMs: 30000
    responseTimeoutMs: 2500
  opaquePorts: [3306, 5432]
listeners:
  - name: outbound
    address: 127.0.0.1:4140
    direction: outbound
    protocol: detect
    routes: [web-routes, api]
    defaultService: web
    detectTimeoutMs: 2000
  - name: inbound
    address: "[::1]:4143"
    direction: inbound
    protocol: http1
    routes: [web-routes/static]
  - name: mysql
    address: 0.0.0.0:3306
    protocol: opaque
    defaultService: db
services:
  - name: web
    endpoints:
      - address: 127.0.0.1:8081
        zone: zone-a
        weight: 3
      - address: web-b.internal:8081
    connectTimeoutMs: 250
    balancer: round-robin
    protocol: http1
    pool: { maxIdlePerEndpoint: 16, idleTimeoutMs: 5000 }
  - name: canary
    endpoints: []
  - name: api
    endpoints:
      - address: "[fd00::1]:9090"
    protocol: h2c
  - name: db
    endpoints:
      - address: 10.0.0.5:3306
routes:
  - name: web-routes
    hostnames: ["Web:8080", "*.web.local"]
    timeoutMs: 30000
    rules:
      - name: static
        matches:
          - path: { type: PathPrefix, value: /static }
            method: get
        backendRefs: [{ name: web }]
        timeoutMs: 1000
      - matches:
          - path: { type: Exact, value: /login }
            headers:
              - { name: X-Canary, value: "1" }
              - { name: Cookie, value: "canary=(1|yes)", type: RegularExpression }
              - { name: x-debug, type: Present }
        backendRefs:
          - { name: web, weight: 90 }
          - { name: canary, weight: 10 }
  - name: api
    matches:
      - path: { value: /api }
    backendRefs: [{ name: api }]
`;

const EXPECTED: EngineSnapshot = {
  version: 'v7',
  zone: 'zone-a',
  zoneTransferUsdPerGb: 0.01,
  listeners: [
    {
      name: 'outbound',
      address: { host: '127.0.0.1', port: 4140 },
      direction: 'outbound',
      protocol: 'detect',
      routes: ['web-routes/static', 'web-routes/1', 'api'],
      defaultService: 'web',
      detectTimeoutMs: 2000,
    },
    {
      name: 'inbound',
      address: { host: '::1', port: 4143 },
      direction: 'inbound',
      protocol: 'http1',
      routes: ['web-routes/static'],
      detectTimeoutMs: 10_000,
    },
    {
      name: 'mysql',
      address: { host: '0.0.0.0', port: 3306 },
      direction: 'outbound',
      protocol: 'opaque',
      routes: [],
      defaultService: 'db',
      detectTimeoutMs: 10_000,
    },
  ],
  services: [
    {
      name: 'web',
      endpoints: [
        { address: { host: '127.0.0.1', port: 8081 }, zone: 'zone-a', weight: 3 },
        { address: { host: 'web-b.internal', port: 8081 }, zone: '', weight: 1 },
      ],
      pool: { maxIdlePerEndpoint: 16, idleTimeoutMs: 5000 },
      connectTimeoutMs: 250,
      balancer: 'round-robin',
      ...defaultPolicies(),
      protocol: 'http1',
    },
    { name: 'canary', endpoints: [], pool: { ...DEFAULT_POOL_SETTINGS }, connectTimeoutMs: 1000, balancer: 'p2c-ewma', ...defaultPolicies() },
    {
      name: 'api',
      endpoints: [{ address: { host: 'fd00::1', port: 9090 }, zone: '', weight: 1 }],
      pool: { ...DEFAULT_POOL_SETTINGS },
      connectTimeoutMs: 1000,
      balancer: 'p2c-ewma',
      ...defaultPolicies(),
      protocol: 'h2c',
    },
    {
      name: 'db',
      endpoints: [{ address: { host: '10.0.0.5', port: 3306 }, zone: '', weight: 1 }],
      pool: { ...DEFAULT_POOL_SETTINGS },
      connectTimeoutMs: 1000,
      balancer: 'p2c-ewma',
      ...defaultPolicies(),
    },
  ],
  routes: [
    {
      name: 'web-routes/static',
      hostnames: ['web', '*.web.local'],
      matches: [{ path: { kind: 'prefix', value: '/static' }, headers: [], method: 'GET' }],
      backends: [{ service: 'web', weight: 1 }],
      requestTimeoutMs: 1000,
    },
    {
      name: 'web-routes/1',
      hostnames: ['web', '*.web.local'],
      matches: [
        {
          path: { kind: 'exact', value: '/login' },
          headers: [
            { name: 'x-canary', kind: 'exact', value: '1' },
            { name: 'cookie', kind: 'regex', value: 'canary=(1|yes)' },
            { name: 'x-debug', kind: 'present', value: '' },
          ],
        },
      ],
      backends: [
        { service: 'web', weight: 90 },
        { service: 'canary', weight: 10 },
      ],
      requestTimeoutMs: 30_000,
    },
    {
      name: 'api',
      hostnames: [],
      matches: [{ path: { kind: 'prefix', value: '/api' }, headers: [] }],
      backends: [{ service: 'api', weight: 1 }],
      requestTimeoutMs: 0,
    },
  ],
  http: { maxHeadBytes: 32768, headTimeoutMs: 5000, keepAliveTimeoutMs: 30_000, responseTimeoutMs: 2500 },
  opaquePorts: [3306, 5432],
};

const MINIMAL = `
listeners:
  - name: out
    address: 127.0.0.1:4140
    routes: [r]
services:
  - name: web
    endpoints: [{ address: 127.0.0.1:8081 }]
routes:
  - name: r
    backendRefs: [{ name: web }]
`;

/** Parses text that must fail and returns the ConfigError. */
function configError(text: string): ConfigError {
  try {
    parseConfigText(text, FILE, 'v1');
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the config to be rejected');
}

/** Asserts that some problem is `FILE: field: <reason matching>` and returns that message line. */
function assertProblem(err: ConfigError, field: string, reason: RegExp): string {
  const line = err.message.split('\n').find((l) => l.startsWith(`${FILE}: ${field}: `));
  assert.ok(line !== undefined, `no problem at ${field} in:\n${err.message}`);
  assert.match(line.slice(`${FILE}: ${field}: `.length), reason);
  assert.ok(err.problems.some((p) => p.field === field && reason.test(p.reason)));
  return line;
}

test('a full config translates into the expected snapshot', () => {
  const snapshot = parseConfigText(FULL, FILE, 'v7');
  assert.deepEqual(snapshot, EXPECTED);
  assert.deepEqual(validateSnapshot(snapshot), []);
});

test('a minimal config gets the defaults from snapshot.ts', () => {
  const s = parseConfigText(MINIMAL, FILE, 'v1');
  assert.equal(s.zone, '');
  assert.deepEqual(s.http, DEFAULT_HTTP_SETTINGS);
  assert.deepEqual(s.opaquePorts, []);
  assert.deepEqual(s.listeners[0], {
    name: 'out',
    address: { host: '127.0.0.1', port: 4140 },
    direction: 'outbound',
    protocol: 'detect',
    routes: ['r'],
    detectTimeoutMs: 10_000,
  });
  assert.equal('defaultService' in s.listeners[0]!, false);
  assert.deepEqual(s.services[0]!.pool, DEFAULT_POOL_SETTINGS);
  assert.equal(s.services[0]!.connectTimeoutMs, 1000);
  assert.deepEqual(s.routes[0], { name: 'r', hostnames: [], matches: [], backends: [{ service: 'web', weight: 1 }], requestTimeoutMs: 0 });
});

test('the example file is valid', () => {
  // Compiled to dist/test/unit/config; the example stays in the source tree.
  const example = resolve(__dirname, '../../../../workers/config/example.yaml');
  const s = loadConfigFile(example);
  assert.equal(s.version, 'file-1');
  assert.ok(s.listeners.length >= 2 && s.routes.length >= 2);
});

test('unknown fields are reported with the field path and a suggestion', () => {
  const err = configError(MINIMAL.replace('address: 127.0.0.1:8081', 'adress: 127.0.0.1:8081').replace('  - name: r\n', '  - name: r\n    timeout: 5\n'));
  assertProblem(err, 'services[0].endpoints[0].adress', /^unknown field "adress" \(did you mean "address"\?\)$/);
  assertProblem(err, 'routes[0].timeout', /^unknown field "timeout" \(did you mean "timeoutMs"\?\)$/);
  // The suggestion already explains the missing "address".
  assert.equal(err.problems.length, 2, err.message);
  assert.equal(err.file, FILE);
  assert.equal(err.field, 'services[0].endpoints[0].adress');
  assert.ok(err.message.startsWith(`${FILE}: services[0].endpoints[0].adress: unknown field "adress"`));
});

test('an unknown top-level field lists the known ones when nothing is close', () => {
  const err = configError(`${MINIMAL}\nextras: 1\n`);
  assertProblem(err, 'extras', /^unknown field "extras"; known fields: proxy, listeners, services, routes, policy, mcp$/);
});

test('wrong types and enum values say what is allowed and what was given', () => {
  const text = MINIMAL.replace('routes: [r]', 'routes: [r]\n    protocol: tcp\n    detectTimeoutMs: soon\n    direction: [inbound]').replace(
    '  - name: r\n',
    '  - name: r\n    hostnames: web\n',
  );
  const err = configError(text);
  assertProblem(err, 'listeners[0].protocol', /^must be one of "detect", "http1", "opaque"; got "tcp"$/);
  assertProblem(err, 'listeners[0].detectTimeoutMs', /^must be a whole number, got "soon"$/);
  assertProblem(err, 'listeners[0].direction', /^must be one of "inbound", "outbound"; got a list$/);
  assertProblem(err, 'routes[0].hostnames', /^must be a list, got "web"$/);
});

test('numbers out of range and empty values', () => {
  const err = configError(
    MINIMAL.replace('listeners:', 'proxy:\n  opaquePorts: [0]\n  http: { headTimeoutMs: -1 }\nlisteners:').replace('{ address: 127.0.0.1:8081 }', '{ address: 127.0.0.1:8081, weight: 1.5 }'),
  );
  assertProblem(err, 'proxy.opaquePorts[0]', /^must be >= 1, got 0$/);
  assertProblem(err, 'proxy.http.headTimeoutMs', /^must be >= 0, got -1$/);
  assertProblem(err, 'services[0].endpoints[0].weight', /^must be a whole number, got 1.5$/);

  const empty = configError(MINIMAL.replace('address: 127.0.0.1:4140', 'address:'));
  assertProblem(empty, 'listeners[0].address', /^must be a string, got an empty value$/);
});

test('missing required fields', () => {
  const err = configError(MINIMAL.replace('    address: 127.0.0.1:4140\n', '').replace("endpoints: [{ address: 127.0.0.1:8081 }]", 'endpoints: [{ zone: a }]'));
  assertProblem(err, 'listeners[0].address', /^required field is missing$/);
  assertProblem(err, 'services[0].endpoints[0].address', /^required field is missing$/);

  const noServices = configError('listeners:\n  - { name: a, address: 127.0.0.1:1 }\n');
  assertProblem(noServices, 'services', /^required field is missing$/);
  const noListeners = configError('listeners: []\nservices: []\n');
  assertProblem(noListeners, 'listeners', /^must have at least one entry$/);

  const header = configError(MINIMAL.replace('backendRefs:', 'matches: [{ headers: [{ name: x-a }] }]\n    backendRefs:'));
  assertProblem(header, 'routes[0].matches[0].headers[0].value', /^required field is missing \(needed unless type is "Present"\)$/);

  const noBackends = configError(MINIMAL.replace('    backendRefs: [{ name: web }]\n', ''));
  assertProblem(noBackends, 'routes[0].backendRefs', /^required field is missing \(or give "rules"\)$/);
});

test('bad addresses name the field and what is wrong', () => {
  const cases: [string, RegExp][] = [
    ['127.0.0.1', /has no port/],
    ['127.0.0.1:99999', /port 99999 is out of range 1-65535/],
    ['127.0.0.1:http', /has no valid port/],
    ['::1:80', /IPv6 address needs brackets/],
    ['[::1]80', /has no port/],
    ['[10.0.0.1]:80', /is not an IPv6 address/],
    ['300.1.2.3:80', /is not an IP address or host name/],
    ['bad host:80', /is not an IP address or host name/],
    [':80', /has no host/],
  ];
  for (const [address, reason] of cases) {
    const err = configError(MINIMAL.replace('address: 127.0.0.1:8081', `address: "${address}"`));
    assertProblem(err, 'services[0].endpoints[0].address', reason);
  }
  // Listeners may use port 0 (any free port); endpoints may not.
  assert.equal(parseConfigText(MINIMAL.replace('127.0.0.1:4140', '127.0.0.1:0'), FILE, 'v1').listeners[0]!.address.port, 0);
  assertProblem(configError(MINIMAL.replace('127.0.0.1:8081', '127.0.0.1:0')), 'services[0].endpoints[0].address', /out of range 1-65535/);
});

test('parseSocketAddress', () => {
  assert.deepEqual(parseSocketAddress('127.0.0.1:80'), { host: '127.0.0.1', port: 80 });
  assert.deepEqual(parseSocketAddress('[::1]:8080'), { host: '::1', port: 8080 });
  assert.deepEqual(parseSocketAddress('web.svc.cluster.local:65535'), { host: 'web.svc.cluster.local', port: 65535 });
  assert.deepEqual(parseSocketAddress('0.0.0.0:0', 0), { host: '0.0.0.0', port: 0 });
  assert.throws(() => parseSocketAddress('0.0.0.0:0'), /out of range 1-65535/);
  assert.throws(() => parseSocketAddress('host:65536'), /out of range/);
});

test('dangling references are reported at the file field they came from', () => {
  const text = FULL.replace('routes: [web-routes, api]', 'routes: [web-routes, nope]')
    .replace('defaultService: db', 'defaultService: database')
    .replace('- { name: canary, weight: 10 }', '- { name: canery, weight: 10 }')
    .replace("backendRefs: [{ name: api }]", 'backendRefs: [{ name: apis }]');
  const err = configError(text);
  assertProblem(err, 'listeners[0].routes[1]', /^no route named "nope"$/);
  assertProblem(err, 'listeners[2].defaultService', /^no service named "database"$/);
  assertProblem(err, 'routes[0].rules[1].backendRefs[1].name', /^no service named "canery"$/);
  assertProblem(err, 'routes[1].backendRefs[0].name', /^no service named "apis"$/);
  assert.equal(err.problems.length, 4, err.message);
});

test('duplicate names and clashing listeners', () => {
  const text = FULL.replace('  - name: canary\n', '  - name: web\n')
    .replace('  - name: api\n    matches:', '  - name: web-routes\n    matches:')
    .replace('name: inbound', 'name: outbound')
    .replace('0.0.0.0:3306', '127.0.0.1:4140');
  const err = configError(text);
  assertProblem(err, 'services[1].name', /^duplicate service name "web"$/);
  assertProblem(err, 'routes[1].name', /^duplicate route name "web-routes"$/);
  assertProblem(err, 'listeners[1].name', /^duplicate listener name "outbound"$/);
  assertProblem(err, 'listeners[2].address', /^127\.0\.0\.1:4140 overlaps listener "outbound"/);

  // Two rules that expand to the same name are caught on the snapshot and mapped back to the rule.
  const rules = configError(MINIMAL.replace('    backendRefs: [{ name: web }]\n', '    rules:\n      - { name: a, backendRefs: [{ name: web }] }\n      - { name: a, backendRefs: [{ name: web }] }\n'));
  assertProblem(rules, 'routes[0].rules[1].name', /^duplicate route name "r\/a"$/);
});

test('route shape problems: rules with direct matches, zero weights, bad regex, opaque without a service', () => {
  const both = configError(MINIMAL.replace('    backendRefs: [{ name: web }]\n', '    matches: [{ method: GET }]\n    rules: [{ backendRefs: [{ name: web }] }]\n'));
  assertProblem(both, 'routes[0].matches', /not both/);

  const zero = configError(MINIMAL.replace('{ name: web }', '{ name: web, weight: 0 }'));
  assertProblem(zero, 'routes[0].backendRefs', /every backend has weight 0/);

  const regex = configError(MINIMAL.replace('backendRefs:', 'matches: [{ headers: [{ name: x-a, type: RegularExpression, value: "a(b" }] }]\n    backendRefs:'));
  assertProblem(regex, 'routes[0].matches[0].headers[0].value', /^Invalid regular expression/);

  const opaque = configError(MINIMAL.replace('routes: [r]', 'routes: [r]\n    protocol: opaque'));
  assertProblem(opaque, 'listeners[0].defaultService', /opaque listener needs a defaultService/);

  const timeout = configError(MINIMAL.replace('  - name: r\n', '  - name: r\n    timeoutMs: -1\n'));
  assertProblem(timeout, 'routes[0].timeoutMs', /^must be >= 0, got -1$/);
});

test('YAML syntax errors report file:line:col', () => {
  const err = configError('listeners:\n  - name: a\n    address: [127.0.0.1\nservices: []\n');
  assert.equal(err.file, FILE);
  assert.equal(err.field, '');
  assert.ok(err.line !== undefined && err.line >= 3, `line ${String(err.line)}`);
  assert.match(err.message, new RegExp(`^${FILE}:${String(err.line)}:${String(err.col)}: `));

  const dup = configError('listeners: []\nservices: []\nlisteners: []\n');
  assert.equal(dup.line, 3);
  assert.equal(dup.col, 1);
  assert.match(dup.message, /^mesh\.yaml:3:1: .*unique/);

  const tab = configError('listeners:\n\t- name: a\n');
  assert.equal(tab.line, 2);
});

test('an empty file or a non-mapping document is rejected', () => {
  assert.match(configError('').message, /^mesh\.yaml: the file is empty/);
  assert.match(configError('# only a comment\n').message, /^mesh\.yaml: the file is empty/);
  assert.match(configError('- a\n- b\n').message, /^mesh\.yaml: must be a mapping \(key: value\), got a list$/);
});

test('loadConfigFile reads a file and names it in errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bowline-yaml-'));
  try {
    const good = join(dir, 'good.yaml');
    writeFileSync(good, MINIMAL);
    assert.equal(loadConfigFile(good, 'x-3').version, 'x-3');

    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, MINIMAL.replace('name: web', 'name: wbe'));
    assert.throws(
      () => loadConfigFile(bad),
      (err: unknown) => err instanceof ConfigError && err.file === bad && err.message === `${bad}: routes[0].backendRefs[0].name: no service named "web"`,
    );

    const missing = join(dir, 'missing.yaml');
    assert.throws(
      () => loadConfigFile(missing),
      (err: unknown) => err instanceof ConfigError && err.field === '' && /^.*missing\.yaml: cannot read the file: ENOENT/.test(err.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const POLICIES = `
listeners:
  - name: out
    address: 127.0.0.1:4140
    routes: [r]
services:
  - name: web
    endpoints: [{ address: 127.0.0.1:8081, zone: a }]
    balancer: least-request
    requestTimeoutMs: 9000
    idleTimeoutMs: 3000
    zoneLocality: { highLoad: 3, lowLoad: 1 }
    failureAccrual: { mode: success-rate, successRate: { threshold: 0.9, window: 50 } }
    failurePenalty: { statuses: [429] }
    queue: { maxInFlight: 8, capacity: 2 }
    retry: { on: [gateway-error], maxRetries: 1, backoff: { maxMs: 100 } }
routes:
  - name: r
    retry: { on: [5xx], budget: { ratio: 0.1 } }
    responseTimeoutMs: 700
    rules:
      - backendRefs: [{ name: web }]
      - backendRefs: [{ name: web }]
        idleTimeoutMs: 50
        retry: { on: [retriable-status-codes], statusCodes: [429] }
`;

test('service and route policies translate with defaults for what they leave out', () => {
  const s = parseConfigText(POLICIES, FILE, 'v1');
  const web = s.services[0]!;
  assert.equal(web.balancer, 'least-request');
  assert.deepEqual(web.timeouts, { requestMs: 9000, responseMs: 0, idleMs: 3000 });
  assert.deepEqual(web.zoneLocality, { ...DEFAULT_ZONE_LOCALITY, highLoad: 3, lowLoad: 1 });
  assert.equal(web.failureAccrual!.mode, 'success-rate');
  assert.equal(web.failureAccrual!.successRateThreshold, 0.9);
  assert.equal(web.failureAccrual!.successRateWindow, 50);
  assert.equal(web.failureAccrual!.successRateMinRequests, DEFAULT_FAILURE_ACCRUAL.successRateMinRequests);
  assert.deepEqual(web.failurePenalty!.statuses, [429]);
  assert.deepEqual(web.queue, { ...DEFAULT_QUEUE, maxInFlight: 8, capacity: 2 });
  assert.deepEqual(web.retry!.on, ['gateway-error']);
  assert.equal(web.retry!.maxRetries, 1);
  assert.equal(web.retry!.backoffBaseMs, DEFAULT_RETRY_POLICY.backoffBaseMs);
  assert.equal(web.retry!.backoffMaxMs, 100);
  // Rule 0 inherits the route's retry and response timeout; rule 1 overrides the retry and sets idle.
  const [r0, r1] = s.routes;
  assert.deepEqual(r0!.retry!.on, ['5xx']);
  assert.equal(r0!.retry!.budget.ratio, 0.1);
  assert.equal(r0!.retry!.budget.minPerSecond, DEFAULT_RETRY_POLICY.budget.minPerSecond);
  assert.equal(r0!.responseTimeoutMs, 700);
  assert.equal(r0!.idleTimeoutMs, undefined);
  assert.deepEqual(r1!.retry!.statusCodes, [429]);
  assert.equal(r1!.idleTimeoutMs, 50);
  assert.deepEqual(validateSnapshot(s), []);
});

test('policy problems name the field as written in the file', () => {
  const err = configError(
    POLICIES.replace('highLoad: 3, lowLoad: 1', 'highLoad: 1, lowLoad: 2')
      .replace('backoff: { maxMs: 100 }', 'backoff: { baseMs: 300, maxMs: 100 }')
      .replace('threshold: 0.9, window: 50', 'threshold: 0.9, window: 5')
      .replace('retry: { on: [5xx], budget', 'retry: { on: [5xx], statusCodes: [503], budget'),
  );
  assertProblem(err, 'services[0].zoneLocality.lowLoad', /below highLoad \(1\)/);
  assertProblem(err, 'services[0].retry.backoff.maxMs', /must be >= the base backoff \(300\)/);
  assertProblem(err, 'services[0].failureAccrual.successRate.window', /minimum requests \(20\)/);
  assertProblem(err, 'routes[0].retry.statusCodes', /retriable-status-codes/);
  assert.equal(err.problems.length, 4, err.message);
});

test("a service's upstream protocol: as written, else auto", () => {
  const s = parseConfigText(
    MINIMAL.replace('    endpoints: [{ address: 127.0.0.1:8081 }]\n', '    endpoints: [{ address: 127.0.0.1:8081 }]\n    protocol: h2c\n  - { name: b, endpoints: [], protocol: http1 }\n  - { name: c, endpoints: [], protocol: auto }\n  - { name: d, endpoints: [] }\n'),
    FILE,
    'v1',
  );
  assert.deepEqual(
    s.services.map((x) => [x.name, x.protocol]),
    [
      ['web', 'h2c'],
      ['b', 'http1'],
      ['c', 'auto'],
      ['d', 'auto'],
    ],
  );
  assert.deepEqual(validateSnapshot(s), []);
});

test('gRPC retry conditions translate beside the HTTP ones, on services, routes and rules', () => {
  const s = parseConfigText(
    POLICIES.replace('on: [gateway-error]', 'on: [unavailable, deadline-exceeded, 5xx]')
      .replace('retry: { on: [5xx], budget', 'retry: { on: [cancelled, internal], budget')
      .replace('on: [retriable-status-codes], statusCodes: [429]', 'on: [resource-exhausted, retriable-status-codes], statusCodes: [429]'),
    FILE,
    'v1',
  );
  assert.deepEqual(s.services[0]!.retry!.on, ['unavailable', 'deadline-exceeded', '5xx']);
  assert.deepEqual(s.routes[0]!.retry!.on, ['cancelled', 'internal']);
  assert.deepEqual(s.routes[1]!.retry!.on, ['resource-exhausted', 'retriable-status-codes']);
  assert.deepEqual(validateSnapshot(s), []);
});

test('a bad upstream protocol or retry condition names the file and the field', () => {
  const err = configError(
    POLICIES.replace('balancer: least-request', 'balancer: least-request\n    protocol: h2')
      .replace('on: [gateway-error]', 'on: [gateway-error, unavailble]')
      .replace('on: [retriable-status-codes]', 'on: [grpc-unavailable, retriable-status-codes]'),
  );
  assertProblem(err, 'services[0].protocol', /^must be one of "http1", "h2c", "auto"; got "h2"$/);
  const cond = assertProblem(err, 'services[0].retry.on[1]', /got "unavailble"$/);
  // The message lists what is allowed, the gRPC conditions included.
  for (const c of ['5xx', 'retriable-status-codes', 'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable']) assert.ok(cond.includes(`"${c}"`), `${c} in ${cond}`);
  assertProblem(err, 'routes[0].rules[1].retry.on[0]', /got "grpc-unavailable"$/);
  assert.equal(err.problems.length, 3, err.message);
  // A protocol that is not a string is refused by type.
  assertProblem(configError(MINIMAL.replace('endpoints: [{ address: 127.0.0.1:8081 }]', 'endpoints: [{ address: 127.0.0.1:8081 }]\n    protocol: [h2c]')), 'services[0].protocol', /^must be a string, got a list$/);
});

test('a JSON mesh file takes the protocol and gRPC retry conditions too, and names itself in errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bowline-json-'));
  try {
    const mesh = (protocol: string): string =>
      JSON.stringify({
        listeners: [{ name: 'out', address: '127.0.0.1:4140', routes: ['r'] }],
        services: [{ name: 'grpc', endpoints: [{ address: '127.0.0.1:50051' }], protocol, retry: { on: ['unavailable', 'cancelled'] } }],
        routes: [{ name: 'r', backendRefs: [{ name: 'grpc' }] }],
      });
    const good = join(dir, 'mesh.json');
    writeFileSync(good, mesh('h2c'));
    const s = loadConfigFile(good);
    assert.equal(s.services[0]!.protocol, 'h2c');
    assert.deepEqual(s.services[0]!.retry!.on, ['unavailable', 'cancelled']);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, mesh('HTTP/2'));
    assert.throws(
      () => loadConfigFile(bad),
      (err: unknown) => err instanceof ConfigError && err.file === bad && err.message === `${bad}: services[0].protocol: must be one of "http1", "h2c", "auto"; got "HTTP/2"`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('schema errors in policies: unknown retry conditions and balancers', () => {
  const err = configError(POLICIES.replace('on: [gateway-error]', 'on: [gateway-errors]').replace('least-request', 'random'));
  assertProblem(err, 'services[0].retry.on[0]', /must be one of "5xx", "gateway-error"/);
  assertProblem(err, 'services[0].balancer', /must be one of "p2c-ewma", "round-robin", "least-request"/);
});

const AUTHZ = `${MINIMAL}
policy:
  defaultPolicy: cluster-authenticated
  servers:
    - { name: out-http, listener: out }
    - { name: db, port: 5432 }
  authorizationPolicies:
    - name: web
      targetRef: { kind: Server, name: out-http }
      meshTLS: { identities: ["spiffe://mesh.test/ns/shop/sa/web", "spiffe://mesh.test/ns/ops/sa/*"] }
    - name: lan
      targetRef: { kind: HTTPRoute, name: r }
      network: { networks: [{ cidr: 10.0.0.0/8, except: [10.9.0.0/16] }] }
`;

test('authorization policy translates, with the cluster networks defaulted', () => {
  const s = parseConfigText(AUTHZ, FILE, 'v1');
  assert.deepEqual(s.policy, {
    defaultPolicy: 'cluster-authenticated',
    clusterNetworks: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fd00::/8'],
    audit: false,
    servers: [
      { name: 'out-http', listener: 'out' },
      { name: 'db', port: 5432 },
    ],
    authorizations: [
      { name: 'web', target: { kind: 'server', name: 'out-http' }, identities: ['spiffe://mesh.test/ns/shop/sa/web', 'spiffe://mesh.test/ns/ops/sa/*'] },
      { name: 'lan', target: { kind: 'route', name: 'r' }, networks: [{ cidr: '10.0.0.0/8', except: ['10.9.0.0/16'] }] },
    ],
  });
});

test('authorization policy problems name the field as written in the file', () => {
  const err = configError(
    AUTHZ.replace('name: out-http }', 'name: nope }')
      .replace('{ kind: HTTPRoute, name: r }', '{ kind: HTTPRoute, name: missing }')
      .replace('"spiffe://mesh.test/ns/shop/sa/web"', '"web"')
      .replace('except: [10.9.0.0/16]', 'except: [10.9.0.0/99]')
      .replace('{ name: db, port: 5432 }', '{ name: db }'),
  );
  assertProblem(err, 'policy.authorizationPolicies[0].targetRef.name', /no server named "nope"/);
  assertProblem(err, 'policy.authorizationPolicies[1].targetRef.name', /no route named "missing"/);
  assertProblem(err, 'policy.authorizationPolicies[0].meshTLS.identities[0]', /SPIFFE ID pattern/);
  assertProblem(err, 'policy.authorizationPolicies[1].network.networks[0].except', /not an address or CIDR/);
  assertProblem(err, 'policy.servers[1]', /a port or a listener/);
  const bad = configError(AUTHZ.replace('cluster-authenticated', 'allow-all'));
  assertProblem(bad, 'policy.defaultPolicy', /must be one of "all-unauthenticated"/);
});

const MCP = AUTHZ.concat(`
mcp:
  maxBodyBytes: 4096
  oversizedBody: pass
  policies:
    - name: agents
      targetRef: { kind: HTTPRoute, name: r }
      rules:
        - name: readers
          meshTLS: { identities: ["spiffe://mesh.test/ns/agents/sa/*"] }
          tools: [search, "read_*"]
          resources: ["file:///docs/*"]
        - network: { networks: [{ cidr: 10.0.0.0/8 }] }
          prompts: [greet]
    - name: on-server
      targetRef: { kind: Server, name: out-http }
      rules: []
`);

test('MCP settings and policies translate, with defaults filled in', () => {
  const s = parseConfigText(MCP.replace('  - name: r\n', '  - name: r\n    mcp: true\n'), FILE, 'v1');
  assert.deepEqual(s.mcp, {
    inspectAll: false,
    maxBodyBytes: 4096,
    oversizedBody: 'pass',
    maxNames: 100,
    audit: false,
    policies: [
      {
        name: 'agents',
        target: { kind: 'route', name: 'r' },
        rules: [
          { name: 'readers', identities: ['spiffe://mesh.test/ns/agents/sa/*'], tools: ['search', 'read_*'], resources: ['file:///docs/*'], prompts: [] },
          { name: '1', networks: [{ cidr: '10.0.0.0/8', except: [] }], tools: [], resources: [], prompts: ['greet'] },
        ],
      },
      { name: 'on-server', target: { kind: 'server', name: 'out-http' }, rules: [] },
    ],
  });
  assert.equal(s.routes.find((r) => r.name === 'r')!.mcp, true);
});

test('MCP policy problems name the field as written in the file', () => {
  const [head, mcpPart] = MCP.split('\nmcp:\n') as [string, string];
  const err = configError(
    head + '\nmcp:\n' + mcpPart.replace('{ kind: HTTPRoute, name: r }', '{ kind: HTTPRoute, name: nowhere }')
      .replace('{ kind: Server, name: out-http }', '{ kind: Server, name: ghost }')
      .replace('"spiffe://mesh.test/ns/agents/sa/*"', '"agents"')
      .replace('cidr: 10.0.0.0/8 }', 'cidr: 10.0.0.0/40 }'),
  );
  assertProblem(err, 'mcp.policies[0].targetRef.name', /no route named "nowhere"/);
  assertProblem(err, 'mcp.policies[1].targetRef.name', /no server named "ghost"/);
  assertProblem(err, 'mcp.policies[0].rules[0].meshTLS.identities[0]', /SPIFFE ID pattern/);
  assertProblem(err, 'mcp.policies[0].rules[1].network.networks[0].cidr', /not an address or CIDR/);
  const typo = configError(MCP.replace('tools: [search', 'tool: [search').replace('oversizedBody: pass', 'oversizedBody: drop'));
  assertProblem(typo, 'mcp.policies[0].rules[0].tool', /unknown field "tool" \(did you mean "tools"\?\)/);
  assertProblem(typo, 'mcp.oversizedBody', /must be one of "reject", "pass"/);
});
