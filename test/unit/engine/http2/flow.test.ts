// Flow control of the HTTP/2 codec: data held while a stream is paused is given to its owner in
// order on resume, its end only after it, and held data of a stream that closes is credited back
// to the connection window (else every cancelled paused stream would shrink it for good).

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { type FlowConnection, FlowStream } from '../../../../engine/http2/codec/flow';
import type { FrameWriter } from '../../../../engine/http2/codec/frame-writer';

class Conn implements FlowConnection {
  connSendWindow = 65_535;
  readonly peerMaxFrame = 16_384;
  readonly windowWaiters = new Set<FlowStream>();
  readonly out = null as unknown as FrameWriter;
  readonly blocked = false;
  consumedBytes = 0;
  consumed(n: number): void {
    this.consumedBytes += n;
  }
  creditStream(): void {}
}

class Stream extends FlowStream {
  readonly got: string[] = [];
  pauseAfter = -1;
  protected take(chunk: Buffer): boolean {
    this.got.push(chunk.toString());
    return this.got.length !== this.pauseAfter;
  }
  protected takeEnd(): void {
    this.got.push('END');
  }
  finishLocal(): void {}
}

test('held data goes to the owner in order on resume, the end after it, even when the owner pauses again midway', () => {
  const c = new Conn();
  const s = new Stream(1, c, 65_535, 65_535);
  s.pause();
  for (const x of ['a', 'b', 'c']) s.deliver(Buffer.from(x));
  s.deliverEnd();
  assert.deepEqual(s.got, []);
  s.pauseAfter = 2;
  s.resume();
  assert.deepEqual(s.got, ['a', 'b'], 'the owner paused after b: c and the end wait');
  s.resume();
  assert.deepEqual(s.got, ['a', 'b', 'c', 'END']);
  assert.equal(c.consumedBytes, 3);
});

test('held data of a stream dropped before it was taken is credited back to the connection', () => {
  const c = new Conn();
  const s = new Stream(1, c, 65_535, 65_535);
  s.deliver(Buffer.alloc(100));
  s.pause();
  s.deliver(Buffer.alloc(1000));
  s.deliver(Buffer.alloc(500));
  assert.equal(c.consumedBytes, 100);
  s.dropPending();
  assert.equal(c.consumedBytes, 1600);
});
