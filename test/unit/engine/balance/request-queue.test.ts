// The bounded queue in front of a balancer: slots up to maxInFlight, FIFO waiters, shedding when
// full, fail-fast after failFastMs (driven by sweep(now) with fake times), cancellation.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Admission, type QueueWaiter, RequestQueue } from '../../../../engine/balance/request-queue';
import { DEFAULT_QUEUE, type QueueSettings } from '../../../../engine/config/snapshot';

/** A waiter that records what happened to it in a shared log. */
class Waiter implements QueueWaiter {
  constructor(
    readonly name: string,
    private readonly log: string[],
  ) {}

  onSlot(): void {
    this.log.push(`${this.name}:slot`);
  }

  onFailFast(): void {
    this.log.push(`${this.name}:failfast`);
  }
}

function setup(s: Partial<QueueSettings> = {}): { q: RequestQueue; log: string[]; w: (name: string) => Waiter } {
  const log: string[] = [];
  return { q: new RequestQueue({ maxInFlight: 2, capacity: 3, failFastMs: 3_000, ...s }), log, w: (name) => new Waiter(name, log) };
}

test('the defaults: 1024 in flight, 1000 waiting, fail fast after 3 s', () => {
  assert.deepEqual({ ...DEFAULT_QUEUE }, { maxInFlight: 1024, capacity: 1000, failFastMs: 3_000 });
});

test('requests go at once up to maxInFlight, then wait', () => {
  const { q, log, w } = setup();
  assert.equal(q.admit(w('a'), 0), Admission.Go);
  assert.equal(q.admit(w('b'), 0), Admission.Go);
  assert.equal(q.inFlight, 2);
  assert.equal(q.admit(w('c'), 0), Admission.Queued);
  assert.equal(q.waiting, 1);
  assert.equal(q.inFlight, 2);
  assert.deepEqual(log, [], 'no callback for a request admitted at once');
});

test('a freed slot goes to the oldest waiter, in arrival order', () => {
  const { q, log, w } = setup({ capacity: 10 });
  q.admit(w('a'), 0);
  q.admit(w('b'), 0);
  for (const n of ['c', 'd', 'e']) assert.equal(q.admit(w(n), 1), Admission.Queued);
  q.release();
  assert.deepEqual(log, ['c:slot']);
  assert.equal(q.inFlight, 2, 'the slot passed straight on');
  q.release();
  q.release();
  assert.deepEqual(log, ['c:slot', 'd:slot', 'e:slot']);
  assert.equal(q.waiting, 0);
  q.release();
  assert.equal(q.inFlight, 1, 'with nobody waiting the slot is free');
});

test('a new request does not overtake the waiters', () => {
  const { q, log, w } = setup({ maxInFlight: 1 });
  q.admit(w('a'), 0);
  q.admit(w('b'), 0);
  q.release(); // b gets a's slot
  assert.equal(q.admit(w('c'), 0), Admission.Queued);
  q.release();
  assert.deepEqual(log, ['b:slot', 'c:slot']);
});

test('past capacity waiting, new requests are shed and never called back', () => {
  const { q, log, w } = setup();
  q.admit(w('a'), 0);
  q.admit(w('b'), 0);
  for (const n of ['c', 'd', 'e']) assert.equal(q.admit(w(n), 0), Admission.Queued);
  assert.equal(q.admit(w('shed'), 0), Admission.Shed);
  assert.equal(q.waiting, 3);
  for (let i = 0; i < 5; i++) q.release();
  assert.ok(!log.some((l) => l.startsWith('shed')), log.join(' '));
  // Room again: the next one queues.
  q.admit(w('f'), 0);
  q.admit(w('g'), 0);
  assert.equal(q.admit(w('h'), 0), Admission.Queued);
});

test('capacity 0: a request that cannot go at once is shed', () => {
  const { q, w } = setup({ maxInFlight: 1, capacity: 0 });
  assert.equal(q.admit(w('a'), 0), Admission.Go);
  assert.equal(q.admit(w('b'), 0), Admission.Shed);
});

test('sweep fails the waiters that waited failFastMs, oldest first, and leaves the younger ones', () => {
  const { q, log, w } = setup({ capacity: 10 });
  q.admit(w('a'), 0);
  q.admit(w('b'), 0);
  q.admit(w('old1'), 1_000);
  q.admit(w('old2'), 1_500);
  q.admit(w('young'), 2_500);
  q.sweep(3_999);
  assert.deepEqual(log, [], 'nobody has waited 3 s yet');
  q.sweep(4_500);
  assert.deepEqual(log, ['old1:failfast', 'old2:failfast']);
  assert.equal(q.waiting, 1);
  assert.equal(q.inFlight, 2, 'failing a waiter takes no slot');
  q.release();
  assert.deepEqual(log, ['old1:failfast', 'old2:failfast', 'young:slot']);
});

test('after a fail-fast, requests that would wait are refused at once until a slot frees', () => {
  const { q, log, w } = setup();
  q.admit(w('a'), 0);
  q.admit(w('b'), 0);
  q.admit(w('c'), 0);
  q.sweep(3_000);
  assert.deepEqual(log, ['c:failfast']);
  assert.equal(q.admit(w('d'), 3_001), Admission.FailFast);
  assert.equal(q.admit(w('e'), 10_000), Admission.FailFast, 'however long it lasts');
  assert.equal(q.waiting, 0, 'refused requests do not wait');
  q.release();
  assert.equal(q.admit(w('f'), 10_001), Admission.Go, 'the freed slot');
  assert.equal(q.admit(w('g'), 10_001), Admission.Queued, 'waiting is allowed again');
});

test('while failing fast, a request that finds a free slot still goes', () => {
  const { q, w } = setup({ maxInFlight: 1 });
  q.admit(w('a'), 0);
  q.admit(w('b'), 0);
  q.sweep(5_000); // b fails; fail-fast on
  assert.equal(q.admit(w('c'), 5_000), Admission.FailFast);
  q.release(); // a done: the fail-fast ends with it
  assert.equal(q.admit(w('d'), 5_001), Admission.Go);
});

test('a sweep with nobody past the limit does not start failing fast', () => {
  const { q, w } = setup();
  q.admit(w('a'), 0);
  q.admit(w('b'), 0);
  q.admit(w('c'), 1_000);
  q.sweep(3_500);
  assert.equal(q.admit(w('d'), 3_500), Admission.Queued);
});

test('a cancelled waiter is skipped: the next one gets the slot', () => {
  const { q, log, w } = setup();
  q.admit(w('a'), 0);
  q.admit(w('b'), 0);
  const c = w('c');
  q.admit(c, 0);
  q.admit(w('d'), 0);
  q.cancel(c);
  q.release();
  assert.deepEqual(log, ['d:slot']);
  assert.equal(q.inFlight, 2);
  q.release();
  q.release();
  assert.equal(q.inFlight, 0, 'nobody was served twice');
});

test('a cancelled waiter is not failed by the sweep, and does not start fail-fast', () => {
  const { q, log, w } = setup();
  q.admit(w('a'), 0);
  q.admit(w('b'), 0);
  const c = w('c');
  q.admit(c, 0);
  q.cancel(c);
  q.sweep(10_000);
  assert.deepEqual(log, []);
  assert.equal(q.admit(w('d'), 10_000), Admission.Queued);
});

test('cancelling a request that is not waiting changes nothing', () => {
  const { q, log, w } = setup();
  const a = w('a');
  q.admit(a, 0);
  q.admit(w('b'), 0);
  q.admit(w('c'), 0);
  q.cancel(a); // a holds a slot; it is not waiting
  q.cancel(w('stranger'));
  q.release();
  assert.deepEqual(log, ['c:slot']);
});

test('a cancelled waiter no longer counts as waiting, nor against the capacity', () => {
  const { q, w } = setup({ maxInFlight: 1, capacity: 2 });
  q.admit(w('a'), 0);
  const b = w('b');
  const c = w('c');
  q.admit(b, 0);
  q.admit(c, 0);
  q.cancel(b);
  q.cancel(c);
  assert.equal(q.admit(w('d'), 1), Admission.Queued, 'the queue has room: nobody is waiting');
  assert.equal(q.waiting, 1, 'only d waits');
});

test('FIFO holds over many waiters with cancellations spread among them', () => {
  const { q, log, w } = setup({ maxInFlight: 1, capacity: 1_000 });
  q.admit(w('first'), 0);
  const all: Waiter[] = [];
  for (let i = 0; i < 300; i++) {
    const x = w(String(i));
    all.push(x);
    assert.equal(q.admit(x, i), Admission.Queued);
  }
  for (let i = 0; i < 300; i += 7) q.cancel(all[i]!);
  const expected = all.filter((_, i) => i % 7 !== 0).map((x) => `${x.name}:slot`);
  // Interleave new arrivals with the releases: they queue behind everyone.
  for (let i = 0; i < expected.length; i++) {
    q.release();
    if (i === 100) assert.equal(q.admit(w('late'), 1_000), Admission.Queued);
  }
  assert.deepEqual(log, expected);
  q.release();
  assert.equal(log[log.length - 1], 'late:slot');
  assert.equal(q.waiting, 0);
});

test('sweep after a long queue was partly served still measures each waiter from its own arrival', () => {
  const { q, log, w } = setup({ maxInFlight: 1, capacity: 1_000 });
  q.admit(w('first'), 0);
  for (let i = 0; i < 200; i++) q.admit(w(String(i)), i * 10); // arrivals at 0, 10, .., 1990 ms
  for (let i = 0; i < 100; i++) q.release(); // 0..99 served
  log.length = 0;
  q.sweep(4_000); // waited 3 s: arrived at or before 1000 ms, i.e. 100
  assert.deepEqual(log, ['100:failfast']);
  q.sweep(4_055);
  assert.deepEqual(log, ['100:failfast', '101:failfast', '102:failfast', '103:failfast', '104:failfast', '105:failfast']);
});

test('update applies new limits to the queue that survives a reload', () => {
  const { q, w } = setup({ capacity: 3 });
  q.admit(w('a'), 0);
  q.admit(w('b'), 0);
  q.admit(w('c'), 0);
  q.update({ maxInFlight: 2, capacity: 1, failFastMs: 3_000 });
  assert.equal(q.admit(w('d'), 0), Admission.Shed, 'the new capacity');
  q.update({ maxInFlight: 2, capacity: 5, failFastMs: 100 });
  assert.equal(q.admit(w('e'), 0), Admission.Queued);
  q.sweep(100);
  assert.equal(q.waiting, 0, 'the new fail-fast time');
});
