// Property: a head fed one byte at a time costs the parser linear work in total (a slowloris client
// must not make it rescan what it has already seen), whatever the shape of the head: many
// lines, one huge field value, one huge request target.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeadInfo, NEED_MORE, parseHead } from '../../engine/http1/head-parser';
import { ChunkedScanner } from '../../engine/http1/chunked-scanner';

const SIZE = 60 * 1024;
const MAX = 64 * 1024;

/**
 * Feeds `full` as growing prefixes (what the proxy holds after each 1-byte read; subarray, so the
 * test itself adds no copying) and counts the bytes the parser searches through with indexOf.
 */
function slowFeed(full: Buffer): { end: number; scanned: number; ms: number } {
  const h = new HeadInfo();
  h.reset(0);
  let scanned = 0;
  const t0 = process.hrtime.bigint();
  let end = NEED_MORE;
  for (let k = 1; k <= full.length && end === NEED_MORE; k++) {
    const view = full.subarray(0, k);
    // The parser's only way to look for line ends; counting what each call covers measures its work.
    Object.defineProperty(view, 'indexOf', {
      value(this: Buffer, v: number, from: number): number {
        const r = Buffer.prototype.indexOf.call(this, v, from);
        scanned += (r === -1 ? this.length : r + 1) - from;
        return r;
      },
    });
    end = parseHead(view, h, true, MAX);
  }
  return { end, scanned, ms: Number(process.hrtime.bigint() - t0) / 1e6 };
}

function shape(name: string, head: string): void {
  test(`1-byte feed of a ${Math.round(head.length / 1024)} KB head (${name}) is linear`, () => {
    const full = Buffer.from(head, 'latin1');
    assert.ok(full.length >= SIZE - 1024 && full.length <= MAX, String(full.length));
    const { end, scanned, ms } = slowFeed(full);
    assert.equal(end, full.length);
    assert.ok(scanned > 0, 'the parser no longer uses indexOf: measure its work another way');
    // Linear: every byte is searched a small constant number of times (quadratic would be ~n^2/2).
    assert.ok(scanned <= 3 * full.length, `searched ${scanned} bytes for a ${full.length}-byte head`);
    // And a generous wall-clock bound for a slow 2-core machine (linear takes a few ms here).
    assert.ok(ms < 3000, `${ms} ms`);
  });
}

const lines: string[] = ['GET / HTTP/1.1', 'Host: slow.test'];
for (let i = 0; lines.join('\r\n').length < SIZE - 600; i++) lines.push(`X-Field-${i}: ${'v'.repeat(450 + (i % 50))}`);
shape('120 lines', lines.join('\r\n') + '\r\n\r\n');
shape('one huge field value', `GET / HTTP/1.1\r\nHost: slow.test\r\nX-Big: ${'b'.repeat(SIZE - 50)}\r\n\r\n`);
shape('one huge target', `GET /${'t'.repeat(SIZE - 50)} HTTP/1.1\r\nHost: slow.test\r\n\r\n`);

test('a 60 KB chunked body fed one byte at a time takes bounded time', () => {
  // The scanner keeps its state between calls: each call looks at its new bytes only.
  let body = '';
  while (body.length < SIZE) body += `3f;ext=${'e'.repeat(20)}\r\n${'d'.repeat(63)}\r\n`;
  body += '0\r\nTrailer: t\r\n\r\n';
  const buf = Buffer.from(body, 'latin1');
  const s = new ChunkedScanner();
  const t0 = process.hrtime.bigint();
  let r = -1;
  for (let i = 0; i < buf.length && r === -1; i++) r = s.scan(buf, i, i + 1);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  assert.equal(r, buf.length);
  assert.ok(ms < 3000, `${ms} ms`);
});
