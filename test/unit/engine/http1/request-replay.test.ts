// Request replay: the bounded copy of a request body kept for retries, and Retry-After parsing
// (delay-seconds and the three HTTP-date forms) against an injected "now".

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { BodyReplay, parseRetryAfter } from '../../../../engine/http1/request-replay';

const NOW = Date.UTC(2015, 9, 21, 7, 27, 0); // Wed, 21 Oct 2015 07:27:00 GMT

test('chunks are kept in order and counted', () => {
  const r = new BodyReplay(100);
  r.add(Buffer.from('hello '), false);
  r.add(Buffer.from('world'), true);
  assert.equal(r.bytes, 11);
  assert.equal(r.overflow, false);
  assert.equal(Buffer.concat(r.chunks).toString(), 'hello world');
});

test('a transient chunk is copied: refilling the read buffer does not change the kept body', () => {
  const r = new BodyReplay(100);
  const readBuffer = Buffer.from('abcdef');
  r.add(readBuffer.subarray(1, 4), true);
  readBuffer.fill(0x78); // the socket's next read lands here
  assert.equal(r.chunks[0]!.toString(), 'bcd');
});

test('a chunk that the caller owns is kept as it is, without a copy', () => {
  const r = new BodyReplay(100);
  const owned = Buffer.from('xyz');
  r.add(owned, false);
  assert.equal(r.chunks[0], owned);
});

test('a body of exactly the limit is kept', () => {
  const r = new BodyReplay(10);
  r.add(Buffer.alloc(4, 1), true);
  r.add(Buffer.alloc(6, 2), true);
  assert.equal(r.overflow, false);
  assert.equal(r.bytes, 10);
  assert.equal(r.chunks.length, 2);
});

test('one byte past the limit drops everything kept and marks the overflow', () => {
  const r = new BodyReplay(10);
  r.add(Buffer.alloc(6, 1), false);
  r.add(Buffer.alloc(5, 2), true);
  assert.equal(r.overflow, true);
  assert.deepEqual(r.chunks, []);
});

test('after an overflow, later chunks are not kept either', () => {
  const r = new BodyReplay(3);
  r.add(Buffer.from('abcd'), true);
  assert.equal(r.overflow, true);
  r.add(Buffer.from('e'), true);
  r.add(Buffer.alloc(0), false);
  assert.deepEqual(r.chunks, []);
  assert.equal(r.overflow, true);
});

test('a limit of 0 keeps an empty body and overflows on the first byte', () => {
  const r = new BodyReplay(0);
  r.add(Buffer.alloc(0), true);
  assert.equal(r.overflow, false);
  r.add(Buffer.from('a'), true);
  assert.equal(r.overflow, true);
});

test('Retry-After in delay-seconds', () => {
  assert.equal(parseRetryAfter('120', NOW), 120);
  assert.equal(parseRetryAfter('0', NOW), 0);
  assert.equal(parseRetryAfter('  5 ', NOW), 5, 'surrounding whitespace is ignored');
  assert.equal(parseRetryAfter('007', NOW), 7);
  assert.equal(parseRetryAfter('86400', NOW), 86_400);
});

test('Retry-After as an IMF-fixdate is the time left until then, in seconds', () => {
  assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', NOW), 60);
  assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:27:01 GMT', NOW), 1);
  assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:27:00 GMT', NOW + 500), 0, 'already past: 0, not negative');
  assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', NOW + 59_500), 0.5);
});

test('a date in the past means retry now: 0', () => {
  assert.equal(parseRetryAfter('Tue, 20 Oct 2015 07:28:00 GMT', NOW), 0);
  assert.equal(parseRetryAfter('Thu, 01 Jan 1970 00:00:00 GMT', NOW), 0);
});

test('Retry-After in the obsolete RFC 850 form', () => {
  assert.equal(parseRetryAfter('Wednesday, 21-Oct-15 07:28:00 GMT', NOW), 60);
});

test('Retry-After in the asctime form is GMT, whatever the local time zone', () => {
  const saved = process.env.TZ;
  try {
    process.env.TZ = 'Asia/Kolkata'; // UTC+5:30: a local-time reading is 5.5 hours off
    assert.equal(parseRetryAfter('Wed Oct 21 07:28:00 2015', NOW), 60);
  } finally {
    if (saved === undefined) delete process.env.TZ;
    else process.env.TZ = saved;
  }
});

test('absent or unreadable values give -1', () => {
  for (const v of ['', '   ', 'soon', '5s', '0x10', '1e3', 'Wed, 99 Foo 2015 07:28:00 GMT', 'tomorrow at noon']) {
    assert.equal(parseRetryAfter(v, NOW), -1, JSON.stringify(v));
  }
});

test('a number that is not delay-seconds (a fraction, a sign) is unreadable, not a date', () => {
  for (const v of ['1.5', '-5', '+5']) assert.equal(parseRetryAfter(v, NOW), -1, JSON.stringify(v));
});
