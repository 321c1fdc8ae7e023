// The bounded queue in front of a service's balancer (per worker): a request takes a slot while it is
// in flight; past maxInFlight it waits, in order; past `capacity` waiting it is shed (503); after
// failFastMs of waiting it fails (504) and the service fails fast, answering new requests that would
// wait at once, until a slot frees. Envoy's max_requests/max_pending_requests and Linkerd's
// fail-fast, in one place.

import type { QueueSettings } from '../config/snapshot';

export interface QueueWaiter {
  /** A slot is now held for this request. */
  onSlot(): void;
  /** The request waited too long. */
  onFailFast(): void;
}

export const enum Admission {
  /** A slot is held: go on. */
  Go = 0,
  /** Queued: onSlot or onFailFast follows. */
  Queued,
  /** Refused: queue full (503). */
  Shed,
  /** Refused: the service is failing fast (504). */
  FailFast,
}

export class RequestQueue {
  inFlight = 0;
  private readonly waiters: QueueWaiter[] = [];
  private readonly since: number[] = [];
  /** Index of the first live waiter (the arrays are compacted now and then). */
  private headIdx = 0;
  private failingFast = false;

  constructor(private s: QueueSettings) {}

  /** New settings from a reload (the queue itself survives it, with its waiters). */
  update(s: QueueSettings): void {
    this.s = s;
    this.admitWaiting();
  }

  get waiting(): number {
    return this.waiters.length - this.headIdx;
  }

  /** Asks for a slot for one request. */
  admit(w: QueueWaiter, nowMs: number): Admission {
    if (this.inFlight < this.s.maxInFlight && this.waiting === 0) {
      this.inFlight++;
      return Admission.Go;
    }
    if (this.failingFast) return Admission.FailFast;
    if (this.waiting >= this.s.capacity) return Admission.Shed;
    this.waiters.push(w);
    this.since.push(nowMs);
    return Admission.Queued;
  }

  /** Gives a slot back; the oldest waiter gets it. */
  release(): void {
    this.inFlight--;
    this.failingFast = false;
    this.admitWaiting();
  }

  /** Gives free slots to the oldest waiters. */
  private admitWaiting(): void {
    while (this.inFlight < this.s.maxInFlight && this.waiting > 0) {
      const w = this.shift();
      this.inFlight++;
      w.onSlot();
    }
  }

  /** A waiter that left (its client closed, its deadline passed). Rare: a linear search is fine. */
  cancel(w: QueueWaiter): void {
    const i = this.waiters.indexOf(w, this.headIdx);
    if (i === -1) return;
    this.waiters.splice(i, 1);
    this.since.splice(i, 1);
  }

  /** Fails the waiters that waited past failFastMs (called by the engine's sweeper). */
  sweep(nowMs: number): void {
    const limit = nowMs - this.s.failFastMs;
    while (this.waiting > 0 && this.since[this.headIdx]! <= limit) {
      const w = this.shift();
      this.failingFast = true;
      w.onFailFast();
    }
  }

  private shift(): QueueWaiter {
    const w = this.waiters[this.headIdx]!;
    this.headIdx++;
    if (this.headIdx > 64 && this.headIdx * 2 > this.waiters.length) {
      this.waiters.splice(0, this.headIdx);
      this.since.splice(0, this.headIdx);
      this.headIdx = 0;
    }
    return w;
  }
}
