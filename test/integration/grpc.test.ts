// gRPC through the real proxy with real @grpc/grpc-js clients and servers: the four call shapes,
// metadata and status details both ways, messages over 4 MiB, deadlines (grpc-timeout is the
// proxy's deadline too), cancellation reaching the server, retries of UNAVAILABLE where the route
// allows them, local replies as gRPC statuses, and grpc_status in the metrics.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { TempConfig } from '../helpers/config-file';
import { closeSession, h2connect, h2request, type H2Server, h2server } from '../helpers/h2';
import { admin, type ProxyProcess, startProxy } from '../helpers/proxy-process';

const id = (b: Buffer): Buffer => b;
const method = (path: string, requestStream: boolean, responseStream: boolean): grpc.MethodDefinition<Buffer, Buffer> => ({
  path,
  requestStream,
  responseStream,
  requestSerialize: id,
  requestDeserialize: id,
  responseSerialize: id,
  responseDeserialize: id,
});
const SERVICE = {
  unary: method('/test.Echo/Unary', false, false),
  serverStream: method('/test.Echo/ServerStream', false, true),
  clientStream: method('/test.Echo/ClientStream', true, false),
  bidi: method('/test.Echo/Bidi', true, true),
  flaky: method('/test.Echo/Flaky', false, false),
  hang: method('/test.Echo/Hang', false, false),
};
const Client = grpc.makeGenericClientConstructor(SERVICE, 'Echo');
type EchoClient = grpc.Client & Record<keyof typeof SERVICE, (...a: unknown[]) => unknown>;

const BIG = 6 * 1024 * 1024;
let server: grpc.Server;
let serverPort = 0;
let proxy: ProxyProcess;
let cfg: TempConfig;
let flakyCalls = 0;
/** A bare HTTP/2 server that never answers and ignores grpc-timeout (only the proxy can end its calls). */
let silent: H2Server;
const silentResets: number[] = [];
const cancelled: string[] = [];

before(async () => {
  server = new grpc.Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024, 'grpc.max_send_message_length': 16 * 1024 * 1024 });
  server.addService(SERVICE, {
    unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const md = call.metadata.get('x-token');
      const text = call.request.toString('latin1', 0, Math.min(16, call.request.length));
      if (text.startsWith('fail')) {
        const trailer = new grpc.Metadata();
        trailer.set('grpc-status-details-bin', Buffer.from([1, 2, 3, 250]));
        trailer.set('x-why', 'asked');
        cb({ code: grpc.status.NOT_FOUND, details: 'no such thing', metadata: trailer });
        return;
      }
      const reply = new grpc.Metadata();
      reply.set('x-seen-token', String(md[0] ?? ''));
      reply.set('x-client-id', String(call.metadata.get('l5d-client-id')[0] ?? 'none'));
      call.sendMetadata(reply);
      cb(null, call.request.length > 1024 ? call.request : Buffer.from(`echo:${text}`));
    },
    serverStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const n = Number(call.request.toString());
      let i = 0;
      call.on('cancelled', () => cancelled.push('serverStream'));
      const tick = (): void => {
        if (call.cancelled) return;
        if (n > 0 && i >= n) {
          call.end();
          return;
        }
        call.write(Buffer.from(`m${i++}`));
        setTimeout(tick, n > 0 ? 0 : 20);
      };
      tick();
    },
    clientStream: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      let total = 0;
      let count = 0;
      call.on('data', (d: Buffer) => {
        total += d.length;
        count++;
      });
      call.on('end', () => cb(null, Buffer.from(`${count}/${total}`)));
    },
    bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (d: Buffer) => call.write(Buffer.concat([Buffer.from('re:'), d])));
      call.on('end', () => call.end());
    },
    flaky: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      flakyCalls++;
      if (flakyCalls % 2 === 1) cb({ code: grpc.status.UNAVAILABLE, details: 'try again' });
      else cb(null, Buffer.from(`ok after ${flakyCalls}`));
    },
    hang: (call: grpc.ServerUnaryCall<Buffer, Buffer>) => {
      call.on('cancelled', () => cancelled.push('hang'));
    },
  });
  serverPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  silent = await h2server((stream) => stream.on('close', () => silentResets.push(stream.rstCode)));
  cfg = new TempConfig(`
listeners:
  - { name: out, address: 127.0.0.1:0, routes: [flaky, silent, grpc] }
  - { name: in, address: 127.0.0.1:0, direction: inbound, defaultService: echo }
  - { name: empty, address: 127.0.0.1:0, routes: [nothing] }
policy:
  defaultPolicy: all-unauthenticated
  servers:
    - { name: locked, listener: in }
services:
  - name: echo
    endpoints: [{ address: 127.0.0.1:${serverPort} }]
  - name: none
    endpoints: []
  - name: silent
    endpoints: [{ address: 127.0.0.1:${silent.port} }]
routes:
  - name: flaky
    matches: [{ path: { type: Exact, value: /test.Echo/Flaky } }]
    backendRefs: [{ name: echo }]
    retry: { on: [unavailable], maxRetries: 2, backoff: { baseMs: 1, maxMs: 2 } }
  - name: silent
    matches: [{ path: { type: PathPrefix, value: /silent.Service } }]
    backendRefs: [{ name: silent }]
  - name: grpc
    backendRefs: [{ name: echo }]
  - name: nothing
    matches: [{ path: { type: PathPrefix, value: /never } }]
    backendRefs: [{ name: none }]
`);
  proxy = await startProxy(['--config', cfg.file, '--workers', '1']);
});

after(async () => {
  await proxy?.stop();
  cfg?.remove();
  server?.forceShutdown();
  await silent?.close();
});

function client(port: number): EchoClient {
  return new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 16 * 1024 * 1024, 'grpc.max_send_message_length': 16 * 1024 * 1024 }) as unknown as EchoClient;
}

function unary(c: EchoClient, name: keyof typeof SERVICE, req: Buffer, md = new grpc.Metadata(), opts: grpc.CallOptions = {}): Promise<{ err: grpc.ServiceError | null; res: Buffer | undefined; headers: grpc.Metadata | null; trailers: grpc.Metadata | null }> {
  return new Promise((resolve) => {
    let headers: grpc.Metadata | null = null;
    let trailers: grpc.Metadata | null = null;
    const call = (c[name] as (r: Buffer, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Buffer) => void) => grpc.ClientUnaryCall)(req, md, opts, (err, res) => setImmediate(() => resolve({ err, res, headers, trailers })));
    call.on('metadata', (m: grpc.Metadata) => (headers = m));
    call.on('status', (s: grpc.StatusObject) => (trailers = s.metadata));
  });
}

test('unary calls pass with metadata both ways; a message of 6 MiB goes and comes back whole', async () => {
  const c = client(proxy.ports['out']!);
  try {
    const md = new grpc.Metadata();
    md.set('x-token', 'secret-1');
    const r = await unary(c, 'unary', Buffer.from('hello'), md);
    assert.equal(r.err, null);
    assert.equal(r.res!.toString(), 'echo:hello');
    assert.equal(r.headers!.get('x-seen-token')[0], 'secret-1');
    const big = Buffer.alloc(BIG);
    for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff;
    const rb = await unary(c, 'unary', big);
    assert.equal(rb.err, null);
    assert.equal(rb.res!.length, BIG);
    assert.ok(rb.res!.equals(big));
  } finally {
    c.close();
  }
});

test('a failed call keeps its status, message and details; the metrics count it under grpc_status', async () => {
  const c = client(proxy.ports['out']!);
  try {
    const r = await unary(c, 'unary', Buffer.from('fail please'));
    assert.equal(r.err?.code, grpc.status.NOT_FOUND);
    assert.equal(r.err?.details, 'no such thing');
    assert.deepEqual([...(r.err!.metadata.get('grpc-status-details-bin')[0] as Buffer)], [1, 2, 3, 250]);
    assert.equal(r.err!.metadata.get('x-why')[0], 'asked');
    const m = (await admin(proxy, '/metrics')).body;
    assert.match(m, /response_total\{direction="outbound",[^}]*route="grpc"[^}]*status_code="200",classification="failure",grpc_status="5"\} 1\n/);
    assert.match(m, /response_total\{direction="outbound",[^}]*route="grpc"[^}]*status_code="200",classification="success",grpc_status="0"\} \d+/);
  } finally {
    c.close();
  }
});

test('server, client and bidi streaming', async () => {
  const c = client(proxy.ports['out']!);
  try {
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const s = (c.serverStream as (r: Buffer) => grpc.ClientReadableStream<Buffer>)(Buffer.from('50'));
      s.on('data', (d: Buffer) => got.push(d.toString()));
      s.on('end', () => resolve());
      s.on('error', reject);
    });
    assert.equal(got.length, 50);
    assert.equal(got[49], 'm49');
    const summary = await new Promise<string>((resolve, reject) => {
      const w = (c.clientStream as (cb: (e: grpc.ServiceError | null, r?: Buffer) => void) => grpc.ClientWritableStream<Buffer>)((e, r) => (e ? reject(e) : resolve(r!.toString())));
      for (let i = 0; i < 100; i++) w.write(Buffer.alloc(1000, i));
      w.end();
    });
    assert.equal(summary, '100/100000');
    const echoes: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const d = (c.bidi as () => grpc.ClientDuplexStream<Buffer, Buffer>)();
      let sent = 0;
      d.on('data', (b: Buffer) => {
        echoes.push(b.toString());
        // Ping-pong: the next message only after the answer to the last (a real interleaving).
        if (++sent < 20) d.write(Buffer.from(`p${sent}`));
        else d.end();
      });
      d.on('end', () => resolve());
      d.on('error', reject);
      d.write(Buffer.from('p0'));
    });
    assert.deepEqual(echoes, Array.from({ length: 20 }, (_, i) => `re:p${i}`));
  } finally {
    c.close();
  }
});

test('a deadline ends the call with DEADLINE_EXCEEDED and the server sees it cancelled', async () => {
  const c = client(proxy.ports['out']!);
  try {
    cancelled.length = 0;
    const r = await unary(c, 'hang', Buffer.from('x'), new grpc.Metadata(), { deadline: Date.now() + 300 });
    assert.equal(r.err?.code, grpc.status.DEADLINE_EXCEEDED);
    const until = Date.now() + 3000;
    while (!cancelled.includes('hang') && Date.now() < until) await new Promise((res) => setTimeout(res, 20));
    assert.ok(cancelled.includes('hang'), 'the server saw the call cancelled');
  } finally {
    c.close();
  }
});

test('grpc-timeout is the proxy deadline too: a client that never gives up still gets DEADLINE_EXCEEDED from the proxy', async () => {
  const s = await h2connect(proxy.ports['out']!);
  try {
    const t0 = Date.now();
    const frame = Buffer.from([0, 0, 0, 0, 1, 120]);
    const r = await h2request(s, { ':method': 'POST', ':path': '/silent.Service/Hang', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '250m' }, frame, 5000);
    const ms = Date.now() - t0;
    assert.equal(r.status, 200);
    assert.equal(r.headers['grpc-status'], '4', JSON.stringify(r.headers));
    assert.equal(r.headers['l5d-proxy-error'], 'request-timeout');
    assert.ok(ms >= 240 && ms < 2000, `answered after ${ms} ms`);
    // The upstream's stream was cancelled, not left open.
    const until = Date.now() + 2000;
    while (silentResets.length === 0 && Date.now() < until) await new Promise((res) => setTimeout(res, 20));
    assert.deepEqual(silentResets, [8], 'RST_STREAM CANCEL upstream');
  } finally {
    await closeSession(s);
  }
});

test('cancelling a server stream reaches the server', async () => {
  const c = client(proxy.ports['out']!);
  try {
    cancelled.length = 0;
    const s = (c.serverStream as (r: Buffer) => grpc.ClientReadableStream<Buffer>)(Buffer.from('0'));
    s.on('error', () => {});
    await new Promise<void>((resolve) => s.once('data', () => resolve()));
    s.cancel();
    const until = Date.now() + 3000;
    while (!cancelled.includes('serverStream') && Date.now() < until) await new Promise((res) => setTimeout(res, 20));
    assert.ok(cancelled.includes('serverStream'));
  } finally {
    c.close();
  }
});

test('UNAVAILABLE is retried where the route says so, and counted', async () => {
  const c = client(proxy.ports['out']!);
  try {
    flakyCalls = 0;
    for (let i = 0; i < 3; i++) {
      const r = await unary(c, 'flaky', Buffer.from('x'));
      assert.equal(r.err, null, `call ${i}: ${r.err?.message}`);
    }
    assert.equal(flakyCalls, 6, 'every call failed once with UNAVAILABLE and was retried once');
    const m = (await admin(proxy, '/metrics')).body;
    assert.match(m, /retry_requests_total\{route="flaky",backend=""\} 3\n/);
  } finally {
    c.close();
  }
});

test('local replies are gRPC statuses: UNIMPLEMENTED for no route, UNAVAILABLE for no endpoint, PERMISSION_DENIED for a policy', async () => {
  const empty = client(proxy.ports['empty']!);
  const inbound = client(proxy.ports['in']!);
  try {
    const noRoute = await unary(empty, 'unary', Buffer.from('x'));
    assert.equal(noRoute.err?.code, grpc.status.UNIMPLEMENTED);
    const s = await h2connect(proxy.ports['empty']!);
    try {
      const r = await h2request(s, { ':method': 'POST', ':path': '/never/x', 'content-type': 'application/grpc' }, Buffer.from([0, 0, 0, 0, 0]));
      assert.equal(r.headers['grpc-status'], '14');
      assert.equal(r.headers['l5d-proxy-error'], 'no-endpoints');
    } finally {
      await closeSession(s);
    }
    const denied = await unary(inbound, 'unary', Buffer.from('x'));
    assert.equal(denied.err?.code, grpc.status.PERMISSION_DENIED);
  } finally {
    empty.close();
    inbound.close();
  }
});
