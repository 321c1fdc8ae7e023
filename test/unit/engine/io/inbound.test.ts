// Inbound: accepted handles wrapped once with a read buffer of their own; chunks valid only during
// delivery (retain copies them); reads held while a write of their bytes to another socket is pending.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { Inbound } from '../../../../engine/io/inbound';

async function serverWithHandles(onInbound: (i: Inbound) => void): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer({ pauseOnConnect: true });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  assert.equal(Inbound.acceptHandles(server, (h) => onInbound(Inbound.fromHandle(h, true))), true);
  return { server, port: (server.address() as net.AddressInfo).port };
}

test('chunks arrive through the sink, live in the read buffer, and retain() copies them', async () => {
  let kept = null as Buffer | null;
  let transient = false;
  const got = new Promise<string>((resolve) => {
    void serverWithHandles((i) => {
      i.sink = (chunk) => {
        transient = i.isTransient(chunk);
        kept = i.retain(chunk);
        resolve(chunk.toString());
        i.socket.end();
      };
    }).then(({ server, port }) => {
      const c = net.connect(port, '127.0.0.1', () => c.write('hello'));
      c.on('close', () => server.close());
    });
  });
  assert.equal(await got, 'hello');
  assert.equal(transient, true);
  assert.ok(kept !== null);
  assert.equal(kept!.toString(), 'hello');
});

test('a write of delivered bytes that goes pending holds reads until it is flushed', async () => {
  // dest: a connection whose peer does not read at first, so that writes to it stay pending.
  const sink = net.createServer((s) => {
    s.pause();
    setTimeout(() => s.resume(), 300);
    s.on('data', () => {});
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const dest = net.connect((sink.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise((r) => dest.once('connect', r));
  let inbound = null as Inbound | null;
  const { server, port } = await serverWithHandles((i) => {
    inbound = i;
    i.sink = (chunk) => {
      dest.write(Buffer.alloc(16 * 1024 * 1024)); // fills the kernel buffers
      dest.write(chunk);
      i.afterWrite(dest, chunk.length);
    };
  });
  const c = net.connect(port, '127.0.0.1', () => c.write('x'));
  const deadline = Date.now() + 3000;
  while (inbound === null || !inbound!.socket.isPaused()) {
    if (Date.now() > deadline) assert.fail('reads were not held while the write was pending');
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.ok(dest.writableLength > 0, 'the write is still pending');
  while (inbound!.socket.isPaused()) {
    if (Date.now() > deadline) assert.fail('reads were not resumed after the flush');
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(dest.writableLength, 0);
  c.destroy();
  dest.destroy();
  server.close();
  sink.close();
});
