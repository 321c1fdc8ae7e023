// Interop with a client nobody here wrote: @grpc/grpc-js-xds resolves xds:/// targets through
// Bowline's control plane (in this process) and calls real grpc-js servers: the plain case, a
// weighted split, an EDS change mid-run without failed calls, and a NACK (a retry backoff of 0, which
// gRPC refuses) that keeps the last good config serving until the mesh is fixed. The clusters carry
// each upstream protocol form (h2c and the default, auto), and the retry policy a gRPC condition.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { sleep } from '../helpers/admin-probe';
import { TempConfig } from '../helpers/config-file';
import { eventually } from '../helpers/proxy-process';
import { ControlPlane } from '../../xds/server/control-plane';
import { FileMeshSource } from '../../xds/server/mesh-source';

const json = {
  serialize: (v: unknown): Buffer => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer): unknown => JSON.parse(b.toString()) as unknown,
};
const ECHO: grpc.ServiceDefinition = {
  echo: {
    path: '/test.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
};

interface EchoServer {
  name: string;
  port: number;
  server: grpc.Server;
}

async function echoServer(name: string): Promise<EchoServer> {
  const server = new grpc.Server();
  server.addService(ECHO, { echo: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { server: name }) });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { name, port, server };
}

let servers: Record<string, EchoServer>;
let cfg: TempConfig;
let cp: ControlPlane;
const logs: string[] = [];

function mesh(o: { echoB: string[]; retryBackoffMs?: number }): string {
  const ep = (names: string[], zone: string): string => names.map((n) => `{ address: 127.0.0.1:${servers[n]!.port}, zone: ${zone} }`).join(', ');
  // gRPC clients act on the gRPC conditions in retry_on (unavailable), and ignore the HTTP ones.
  const retry = o.retryBackoffMs === undefined ? '' : `\n        retry: { on: [unavailable, gateway-error], backoff: { baseMs: ${o.retryBackoffMs} } }`;
  return `
listeners:
  - { name: out, address: 127.0.0.1:0, routes: [] }
services:
  - name: echo
    endpoints: [${ep(['a1', 'a2'], 'zone-a')}]
    protocol: h2c
  - name: echo-b
    endpoints: [${ep(o.echoB, 'zone-b')}]
routes:
  - name: split
    hostnames: [echo]
    rules:
      - matches:
          - path: { value: /test.Echo/ }
        backendRefs: [{ name: echo, weight: 80 }, { name: echo-b, weight: 20 }]${retry}
`;
}

before(async () => {
  servers = {};
  for (const n of ['a1', 'a2', 'b1', 'b2']) servers[n] = await echoServer(n);
  cfg = new TempConfig(mesh({ echoB: ['b1'] }));
  cp = new ControlPlane({ source: new FileMeshSource(cfg.file), listen: '127.0.0.1:0', buildThreads: 1, log: (level, msg, f) => logs.push(`${level} ${msg} ${JSON.stringify(f ?? {})}`) });
  await cp.start();
  process.env['GRPC_XDS_BOOTSTRAP_CONFIG'] = JSON.stringify({
    xds_servers: [{ server_uri: `127.0.0.1:${cp.port}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: 'interop-client', cluster: 'test', locality: { zone: 'zone-a' } },
  });
  // Registers the xds: resolver with the same @grpc/grpc-js this file uses.
  (require('@grpc/grpc-js-xds') as { register(): void }).register();
});

after(async () => {
  await cp?.stop();
  for (const s of Object.values(servers ?? {})) s.server.forceShutdown();
  cfg?.remove();
});

type EchoClient = grpc.Client & { echo(req: unknown, cb: (e: grpc.ServiceError | null, r?: { server: string }) => void): void };

function client(target: string): EchoClient {
  const C = grpc.makeGenericClientConstructor(ECHO, 'Echo');
  return new C(target, grpc.credentials.createInsecure()) as unknown as EchoClient;
}

function call(c: EchoClient): Promise<string> {
  return new Promise((resolve, reject) => c.echo({ hi: 1 }, (e, r) => (e ? reject(e) : resolve(r!.server))));
}

async function tally(c: EchoClient, n: number): Promise<Map<string, number>> {
  const m = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const s = await call(c);
    m.set(s, (m.get(s) ?? 0) + 1);
  }
  return m;
}

test('grpc-js-xds resolves xds:///echo-b through the control plane and reaches its endpoint', { timeout: 30_000 }, async () => {
  const c = client('xds:///echo-b');
  try {
    const t = await tally(c, 20);
    assert.deepEqual([...t], [['b1', 20]]);
  } finally {
    c.close();
  }
  const m = cp.metrics.render();
  for (const type of ['lds', 'rds', 'cds', 'eds']) assert.match(m, new RegExp(`xds_acks_total\\{type="${type}"\\} [1-9]`), `${type} acked:\n${m}`);
});

test('a weighted split (80/20) is honoured by the gRPC client', { timeout: 30_000 }, async () => {
  const c = client('xds:///echo');
  try {
    const t = await tally(c, 400);
    const b = t.get('b1') ?? 0;
    assert.ok(b > 40 && b < 130, `echo-b got ${b} of 400 (expected ~80): ${JSON.stringify([...t])}`);
    // Within echo, both zone-a endpoints serve.
    assert.ok((t.get('a1') ?? 0) > 50 && (t.get('a2') ?? 0) > 50, JSON.stringify([...t]));
  } finally {
    c.close();
  }
});

test('an EDS change mid-run moves traffic to the new endpoint without a failed call', { timeout: 30_000 }, async () => {
  const c = client('xds:///echo-b');
  try {
    assert.equal(await call(c), 'b1');
    let running = true;
    const seen = new Map<string, number>();
    let failures = 0;
    const loop = (async () => {
      while (running) {
        try {
          const s = await call(c);
          seen.set(s, (seen.get(s) ?? 0) + 1);
        } catch {
          failures++;
        }
      }
    })();
    await sleep(200);
    cfg.replace(mesh({ echoB: ['b2'] }));
    await eventually(async () => (await call(c)) === 'b2', 10_000, 'calls reach b2');
    await sleep(200);
    running = false;
    await loop;
    assert.equal(failures, 0);
    assert.ok((seen.get('b2') ?? 0) > 0);
  } finally {
    c.close();
  }
});

test('a resource the client rejects is NACKed and held; the last good config serves until the mesh is fixed', { timeout: 30_000 }, async () => {
  const c = client('xds:///echo');
  try {
    await tally(c, 5);
    const before = cp.metrics.render();
    const nacksBefore = count(before, 'xds_nacks_total', 'rds');
    // A retry backoff of 0 ms: valid for Bowline (no wait), refused by gRPC (and Envoy), which need > 0.
    cfg.replace(mesh({ echoB: ['b2'], retryBackoffMs: 0 }));
    await eventually(() => count(cp.metrics.render(), 'xds_nacks_total', 'rds') > nacksBefore, 10_000, 'the RDS NACK');
    const pushesAfterNack = count(cp.metrics.render(), 'xds_pushes_total', 'rds');
    // The last good routes keep serving, and the NACKed version is not pushed again.
    const t = await tally(c, 50);
    assert.equal([...t.values()].reduce((a, b) => a + b, 0), 50);
    await sleep(500);
    assert.equal(count(cp.metrics.render(), 'xds_pushes_total', 'rds'), pushesAfterNack, 'no resend loop');
    assert.match(cp.metrics.render(), /^xds_nacks_total\{type="rds",reason=".*base_interval.*"\} 1$/m);
    // Fixed: the new version is accepted.
    const acks = count(cp.metrics.render(), 'xds_acks_total', 'rds');
    cfg.replace(mesh({ echoB: ['b2'], retryBackoffMs: 25 }));
    await eventually(() => count(cp.metrics.render(), 'xds_acks_total', 'rds') > acks, 10_000, 'the fixed routes ACKed');
    await tally(c, 10);
  } finally {
    c.close();
  }
});

function count(text: string, name: string, type: string): number {
  let n = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name}{type="${type}"`)) n += Number(line.slice(line.lastIndexOf(' ') + 1));
  return n;
}
