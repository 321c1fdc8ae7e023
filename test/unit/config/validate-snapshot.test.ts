// Unit tests of validateSnapshot: each kind of problem is found and named by its snapshot path.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_HTTP_SETTINGS,
  DEFAULT_POOL_SETTINGS,
  DEFAULT_RETRY_POLICY,
  type EngineSnapshot,
  GRPC_RETRY_CODES,
  type RetryCondition,
  type RetryPolicy,
  type UpstreamProtocol,
} from '../../../engine/config/snapshot';
import { findSnapshotProblems, formatPath, validateSnapshot } from '../../../engine/config/validate-snapshot';

function validSnapshot(): EngineSnapshot {
  return {
    version: 'test-1',
    zone: 'zone-a',
    listeners: [
      {
        name: 'outbound',
        address: { host: '127.0.0.1', port: 4140 },
        direction: 'outbound',
        protocol: 'detect',
        routes: ['web', 'api'],
        defaultService: 'web',
        detectTimeoutMs: 10_000,
      },
      {
        name: 'db',
        address: { host: '127.0.0.1', port: 3306 },
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
          { address: { host: '127.0.0.1', port: 8081 }, zone: 'zone-a', weight: 1 },
          { address: { host: '::1', port: 8081 }, zone: '', weight: 2 },
        ],
        pool: { ...DEFAULT_POOL_SETTINGS },
        connectTimeoutMs: 1000,
      },
      { name: 'api', endpoints: [], pool: { ...DEFAULT_POOL_SETTINGS }, connectTimeoutMs: 1000 },
      { name: 'db', endpoints: [{ address: { host: 'db.internal', port: 3306 }, zone: '', weight: 1 }], pool: { ...DEFAULT_POOL_SETTINGS }, connectTimeoutMs: 1000 },
    ],
    routes: [
      {
        name: 'web',
        hostnames: ['web', '*.web.local'],
        matches: [{ path: { kind: 'prefix', value: '/' }, headers: [{ name: 'x-canary', kind: 'regex', value: '^(1|true)$' }], method: 'GET' }],
        backends: [{ service: 'web', weight: 1 }],
        requestTimeoutMs: 0,
      },
      {
        name: 'api',
        hostnames: [],
        matches: [],
        backends: [
          { service: 'api', weight: 3 },
          { service: 'web', weight: 0 },
        ],
        requestTimeoutMs: 5000,
      },
    ],
    http: { ...DEFAULT_HTTP_SETTINGS },
    opaquePorts: [3306],
  };
}

function problemsOf(mutate: (s: EngineSnapshot) => void): string[] {
  const s = validSnapshot();
  mutate(s);
  return validateSnapshot(s);
}

test('a valid snapshot has no problems', () => {
  assert.deepEqual(validateSnapshot(validSnapshot()), []);
});

test('formatPath writes indexes in brackets and odd keys quoted', () => {
  assert.equal(formatPath(['routes', 2, 'backends', 0, 'service']), 'routes[2].backends[0].service');
  assert.equal(formatPath([]), '');
  assert.equal(formatPath(['a', 'b c']), 'a["b c"]');
});

test('a backend naming a missing service is reported with its path', () => {
  const problems = problemsOf((s) => {
    s.routes.push({ name: 'third', hostnames: [], matches: [], backends: [{ service: 'nope', weight: 1 }], requestTimeoutMs: 0 });
  });
  assert.deepEqual(problems, ['routes[2].backends[0].service: no service named "nope"']);
});

test('structured problems keep the path as segments', () => {
  const s = validSnapshot();
  s.routes[0]!.backends[0]!.service = 'gone';
  assert.deepEqual(findSnapshotProblems(s), [{ path: ['routes', 0, 'backends', 0, 'service'], reason: 'no service named "gone"' }]);
});

test('duplicate listener, service and route names', () => {
  const problems = problemsOf((s) => {
    s.listeners[1]!.name = 'outbound';
    s.services[1]!.name = 'web';
    s.routes[1]!.name = 'web';
  });
  assert.ok(problems.includes('listeners[1].name: duplicate listener name "outbound"'), problems.join('\n'));
  assert.ok(problems.includes('services[1].name: duplicate service name "web"'), problems.join('\n'));
  assert.ok(problems.includes('routes[1].name: duplicate route name "web"'), problems.join('\n'));
});

test('two listeners on the same host:port, including a wildcard host', () => {
  assert.deepEqual(
    problemsOf((s) => {
      s.listeners[1]!.address = { host: '127.0.0.1', port: 4140 };
    }),
    ['listeners[1].address: 127.0.0.1:4140 overlaps listener "outbound" (127.0.0.1:4140)'],
  );
  assert.deepEqual(
    problemsOf((s) => {
      s.listeners[1]!.address = { host: '0.0.0.0', port: 4140 };
    }),
    ['listeners[1].address: 0.0.0.0:4140 overlaps listener "outbound" (127.0.0.1:4140)'],
  );
  // Port 0 asks for any free port, and an IPv6 host does not clash with 0.0.0.0.
  assert.deepEqual(
    problemsOf((s) => {
      s.listeners[0]!.address = { host: '0.0.0.0', port: 0 };
      s.listeners[1]!.address = { host: '0.0.0.0', port: 0 };
    }),
    [],
  );
  assert.deepEqual(
    problemsOf((s) => {
      s.listeners[0]!.address = { host: '0.0.0.0', port: 80 };
      s.listeners[1]!.address = { host: '::1', port: 80 };
    }),
    [],
  );
});

test('a listener naming a missing route or defaultService', () => {
  assert.deepEqual(
    problemsOf((s) => {
      s.listeners[0]!.routes = ['web', 'missing', 'web'];
      s.listeners[0]!.defaultService = 'ghost';
    }),
    [
      'listeners[0].routes[1]: no route named "missing"',
      'listeners[0].routes[2]: route "web" is listed twice',
      'listeners[0].defaultService: no service named "ghost"',
    ],
  );
});

test('an opaque listener, or one on an opaque port, needs a defaultService', () => {
  assert.deepEqual(
    problemsOf((s) => {
      delete s.listeners[1]!.defaultService;
    }),
    ['listeners[1].defaultService: an opaque listener needs a defaultService to forward to'],
  );
  const problems = problemsOf((s) => {
    delete s.listeners[0]!.defaultService;
    s.opaquePorts.push(4140);
  });
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /^listeners\[0\]\.defaultService: port 4140 is in opaquePorts/);
});

test('a route with no backends or only zero weights', () => {
  assert.deepEqual(
    problemsOf((s) => {
      s.routes[0]!.backends = [];
      s.routes[1]!.backends = [{ service: 'api', weight: 0 }];
    }),
    ['routes[0].backends: a route needs at least one backend', 'routes[1].backends: every backend has weight 0, so no request could be sent'],
  );
});

test('ports out of range', () => {
  const problems = problemsOf((s) => {
    s.listeners[0]!.address.port = 70000;
    s.services[0]!.endpoints[0]!.address.port = 0;
    s.opaquePorts = [1.5];
  });
  assert.deepEqual(problems, [
    'opaquePorts[0]: port must be an integer from 1 to 65535, got 1.5',
    'services[0].endpoints[0].address: port must be an integer from 1 to 65535, got 0',
    'listeners[0].address: port must be an integer from 0 to 65535, got 70000',
  ]);
});

test('negative or non-finite timeouts', () => {
  const problems = problemsOf((s) => {
    s.http.headTimeoutMs = -1;
    s.listeners[0]!.detectTimeoutMs = Number.NaN;
    s.services[0]!.connectTimeoutMs = -5;
    s.services[0]!.pool.idleTimeoutMs = -1;
    s.routes[1]!.requestTimeoutMs = -100;
  });
  assert.deepEqual(problems, [
    'http.headTimeoutMs: must be a duration in ms >= 0, got -1',
    'services[0].connectTimeoutMs: must be a duration in ms >= 0, got -5',
    'services[0].pool.idleTimeoutMs: must be a duration in ms >= 0, got -1',
    'routes[1].requestTimeoutMs: must be a duration in ms >= 0, got -100',
    'listeners[0].detectTimeoutMs: must be a duration in ms >= 0, got NaN',
  ]);
});

test('match details: bad regex, path without slash, mixed-case header, bad hostname', () => {
  const problems = problemsOf((s) => {
    const route = s.routes[0]!;
    route.hostnames = ['Web:80', 'a.*.b'];
    route.matches = [{ path: { kind: 'exact', value: 'api' }, headers: [{ name: 'X-Up', kind: 'regex', value: '(' }], method: 'get' }];
  });
  assert.equal(problems.length, 6, problems.join('\n'));
  assert.match(problems[0]!, /^routes\[0\]\.hostnames\[0\]: "Web:80" is not a lower-case host name/);
  assert.match(problems[1]!, /^routes\[0\]\.hostnames\[1\]: /);
  assert.equal(problems[2], 'routes[0].matches[0].path.value: must start with "/", got "api"');
  assert.equal(problems[3], 'routes[0].matches[0].method: must be an upper-case method name, got "get"');
  assert.equal(problems[4], 'routes[0].matches[0].headers[0].name: must be a lower-case header name, got "X-Up"');
  assert.match(problems[5]!, /^routes\[0\]\.matches\[0\]\.headers\[0\]\.value: Invalid regular expression/);
});

test('endpoints: duplicates, negative weights, all-zero weights, empty host', () => {
  const problems = problemsOf((s) => {
    s.services[0]!.endpoints = [
      { address: { host: '127.0.0.1', port: 8081 }, zone: '', weight: 0 },
      { address: { host: '127.0.0.1', port: 8081 }, zone: '', weight: 0 },
    ];
    s.services[2]!.endpoints = [{ address: { host: '', port: 1 }, zone: '', weight: -1 }];
  });
  assert.deepEqual(problems, [
    'services[0].endpoints[1].address: duplicate endpoint 127.0.0.1:8081',
    'services[0].endpoints: every endpoint has weight 0; use an empty list to take the service out of traffic',
    'services[2].endpoints[0].address: host must not be empty',
    'services[2].endpoints[0].weight: must be a number >= 0, got -1',
  ]);
});

test('a service with no endpoints is valid (requests get 503)', () => {
  assert.deepEqual(
    problemsOf((s) => {
      s.services[0]!.endpoints = [];
    }),
    [],
  );
});

test('upstream protocols: http1, h2c and auto (or none) are valid; anything else is named by its path', () => {
  for (const protocol of ['http1', 'h2c', 'auto', undefined] as const) {
    assert.deepEqual(
      problemsOf((s) => {
        s.services[0]!.protocol = protocol;
      }),
      [],
      String(protocol),
    );
  }
  assert.deepEqual(
    problemsOf((s) => {
      s.services[2]!.protocol = 'h2' as UpstreamProtocol;
      s.services[1]!.protocol = 'HTTP1' as UpstreamProtocol;
    }),
    ['services[1].protocol: must be one of "http1", "h2c", "auto", got "HTTP1"', 'services[2].protocol: must be one of "http1", "h2c", "auto", got "h2"'],
  );
});

function retry(on: string[]): RetryPolicy {
  return { ...DEFAULT_RETRY_POLICY, on: on as RetryCondition[], statusCodes: [], budget: { ...DEFAULT_RETRY_POLICY.budget } };
}

test('gRPC retry conditions are valid on services and routes; unknown conditions are named', () => {
  const grpc = Object.keys(GRPC_RETRY_CODES);
  assert.deepEqual([...grpc].sort(), ['cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable']);
  assert.deepEqual(
    problemsOf((s) => {
      s.services[0]!.retry = retry([...grpc, '5xx', 'connect-failure']);
      s.routes[0]!.retry = retry(['unavailable', 'reset']);
    }),
    [],
  );
  const problems = problemsOf((s) => {
    s.services[0]!.retry = retry(['unavailable', 'grpc-unavailable']);
    s.routes[1]!.retry = retry(['Cancelled']);
  });
  assert.equal(problems.length, 2, problems.join('\n'));
  assert.match(problems[0]!, /^services\[0\]\.retry\.on\[1\]: must be one of "5xx", .*"unavailable".*, got "grpc-unavailable"$/);
  assert.match(problems[1]!, /^routes\[1\]\.retry\.on\[0\]: must be one of .*"cancelled".*, got "Cancelled"$/);
});
