// Bounds the bytes of responses written but not yet flushed to clients, across all streams. gRPC
// copies each message into its own frame buffer, and a thousand clients syncing at once would
// otherwise hold a thousand copies of the whole snapshot; past the bound, writes wait their turn in
// order (so each stream still sees its responses in order).

import type * as grpc from '@grpc/grpc-js';

type Call = grpc.ServerDuplexStream<unknown, unknown>;

export class PushGate {
  private pending = 0;
  private readonly queue: { call: Call; bytes: Buffer }[] = [];
  private readonly perCall = new Map<Call, number>();

  constructor(private readonly maxPendingBytes: number) {}

  write(call: Call, bytes: Buffer): void {
    if (this.queue.length > 0 || (this.pending > 0 && this.pending + bytes.length > this.maxPendingBytes)) {
      this.queue.push({ call, bytes });
      return;
    }
    this.start(call, bytes);
  }

  /** A stream that ended: what it had outstanding no longer counts, and its queued writes go. */
  forget(call: Call): void {
    const n = this.perCall.get(call);
    if (n !== undefined) {
      this.pending -= n;
      this.perCall.delete(call);
    }
    for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i]!.call === call) this.queue.splice(i, 1);
    this.next();
  }

  get pendingBytes(): number {
    return this.pending;
  }

  private start(call: Call, bytes: Buffer): void {
    const n = bytes.length;
    this.pending += n;
    this.perCall.set(call, (this.perCall.get(call) ?? 0) + n);
    // The callback comes once the message is flushed to the connection (HTTP/2 flow control allowing).
    call.write(bytes, () => {
      const left = this.perCall.get(call);
      if (left === undefined) return; // forgotten meanwhile
      this.pending -= n;
      if (left - n <= 0) this.perCall.delete(call);
      else this.perCall.set(call, left - n);
      this.next();
    });
  }

  private next(): void {
    while (this.queue.length > 0 && (this.pending === 0 || this.pending + this.queue[0]!.bytes.length <= this.maxPendingBytes)) {
      const { call, bytes } = this.queue.shift()!;
      if (call.cancelled || call.destroyed) continue;
      this.start(call, bytes);
    }
  }
}
