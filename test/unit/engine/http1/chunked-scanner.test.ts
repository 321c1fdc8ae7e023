// Unit tests of the chunked transfer coding scanner: valid bodies (extensions, trailers, hex case),
// exact end offsets with pipelined data after the body, and each framing error with its ErrorCode.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode, errorInfo } from '../../../../engine/errors';
import { ChunkedScanner } from '../../../../engine/http1/chunked-scanner';

/** Scans a whole body in one call; returns the scanner's result. */
function scan(body: string | Buffer, start = 0): { r: number; s: ChunkedScanner } {
  const buf = typeof body === 'string' ? Buffer.from(body, 'latin1') : body;
  const s = new ChunkedScanner();
  return { r: s.scan(buf, start, buf.length), s };
}

/** Scans one byte per call; returns the first non -1 result and the offset where it came. */
function scanBytewise(body: string): { r: number; s: ChunkedScanner } {
  const buf = Buffer.from(body, 'latin1');
  const s = new ChunkedScanner();
  for (let i = 0; i < buf.length; i++) {
    const r = s.scan(buf, i, i + 1);
    if (r !== -1) return { r, s };
  }
  return { r: -1, s };
}

function ends(body: string, tail = ''): void {
  const whole = scan(body + tail);
  assert.equal(whole.r, Buffer.byteLength(body, 'latin1'), JSON.stringify(body + tail));
  assert.equal(whole.s.done, true);
  assert.equal(whole.s.error, ErrorCode.None);
  const bytewise = scanBytewise(body + tail);
  assert.equal(bytewise.r, Buffer.byteLength(body, 'latin1'), `bytewise ${JSON.stringify(body + tail)}`);
}

function fails(body: string, code: ErrorCode): void {
  for (const run of [scan(body), scanBytewise(body)]) {
    assert.equal(run.r, -2, JSON.stringify(body));
    assert.equal(errorInfo(run.s.error).name, errorInfo(code).name, JSON.stringify(body));
  }
}

function needsMore(body: string): void {
  const run = scan(body);
  assert.equal(run.r, -1, JSON.stringify(body));
  assert.equal(run.s.done, false);
}

describe('valid chunked bodies', () => {
  test('only the last chunk', () => {
    ends('0\r\n\r\n');
    ends('000\r\n\r\n');
  });

  test('data chunks, upper and lower case hex, leading zeros', () => {
    ends('5\r\nhello\r\n0\r\n\r\n');
    ends(`a\r\n${'x'.repeat(10)}\r\nA\r\n${'y'.repeat(10)}\r\n0\r\n\r\n`);
    ends(`1f\r\n${'z'.repeat(31)}\r\n1F\r\n${'z'.repeat(31)}\r\n0\r\n\r\n`);
    ends(`00000000000ff\r\n${'q'.repeat(255)}\r\n0\r\n\r\n`); // 13 digits
    ends(`fF\r\n${'q'.repeat(255)}\r\n0000000000000\r\n\r\n`);
  });

  test('chunk data is opaque: CR, LF, NUL and a fake last chunk inside data are skipped', () => {
    ends('c\r\n0\r\n\r\n\x00\r\nab\nZ\r\n0\r\n\r\n');
  });

  test('extensions: names, token and quoted values, BWS, several per line', () => {
    for (const ext of [
      ';name',
      ';name=value',
      ';a=1;b=2;c',
      ' ;a=1',
      '\t; a = 1 ',
      ';a ;b',
      ';a="quoted value"',
      ';a="with \\"escapes\\" and \\\\"',
      ';a="obs-text \xe9\xff" ;b=c',
      ';a=""',
      ";!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~",
    ]) {
      ends(`3${ext}\r\nabc\r\n0${ext}\r\n\r\n`);
    }
  });

  test('trailers', () => {
    ends('0\r\nX-Checksum: abc\r\n\r\n');
    ends('5\r\nhello\r\n0\r\nA: 1\r\nB:2\r\nC: \t v \xe9\r\n\r\n');
  });

  test('the end offset is exact when a pipelined message follows', () => {
    ends('5\r\nhello\r\n0\r\n\r\n', 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    ends('0\r\nT: 1\r\n\r\n', '\r\n');
    ends('0\r\n\r\n', '0\r\n\r\n');
  });

  test('scan honours start and end inside a larger buffer', () => {
    const pre = 'HEADERS';
    const body = '3\r\nabc\r\n0\r\n\r\n';
    const buf = Buffer.from(pre + body + 'NEXT', 'latin1');
    const s = new ChunkedScanner();
    assert.equal(s.scan(buf, pre.length, pre.length + 5), -1);
    assert.equal(s.scan(buf, pre.length + 5, buf.length), pre.length + body.length);
  });

  test('needs more until the final CRLF', () => {
    const body = '5\r\nhello\r\n0\r\nT: 1\r\n\r\n';
    for (let k = 0; k < body.length; k++) needsMore(body.slice(0, k));
  });

  test('a large chunk is skipped in one step across reads', () => {
    const size = 1 << 20;
    const s = new ChunkedScanner();
    const head = Buffer.from(`${size.toString(16)}\r\n`, 'latin1');
    assert.equal(s.scan(head, 0, head.length), -1);
    const data = Buffer.alloc(size, 0x0a);
    assert.equal(s.scan(data, 0, size - 1), -1);
    assert.equal(s.scan(data, size - 1, size), -1);
    const tail = Buffer.from('\r\n0\r\n\r\nX', 'latin1');
    assert.equal(s.scan(tail, 0, tail.length), tail.length - 1);
  });

  test('reset makes the scanner reusable after an error and after the end', () => {
    const s = new ChunkedScanner();
    const badBody = Buffer.from('zz\r\n', 'latin1');
    assert.equal(s.scan(badBody, 0, badBody.length), -2);
    assert.equal(s.error, ErrorCode.BadChunkSize);
    s.reset();
    assert.equal(s.error, ErrorCode.None);
    const good = Buffer.from('1\r\na\r\n0\r\n\r\n', 'latin1');
    assert.equal(s.scan(good, 0, good.length), good.length);
    assert.equal(s.done, true);
    s.reset();
    assert.equal(s.done, false);
    assert.equal(s.scan(good, 0, good.length), good.length);
  });
});

describe('chunked framing errors', () => {
  test('invalid hex in the size is BadChunkSize', () => {
    for (const b of ['g\r\n', 'x1\r\n', '-1\r\n', '+1\r\n', '0x5\r\n', '\r\n', ';a\r\n', ' 5\r\n', '5g\r\n', '5\x00\r\n', '1.5\r\n']) {
      fails(b, ErrorCode.BadChunkSize);
    }
  });

  test('more than 13 hex digits is BadChunkSize, even when they are leading zeros', () => {
    fails('fffffffffffff0\r\n', ErrorCode.BadChunkSize);
    fails('00000000000000\r\n\r\n', ErrorCode.BadChunkSize);
    fails(`${'1'.repeat(40)}\r\n`, ErrorCode.BadChunkSize);
    needsMore('fffffffffffff\r\n'); // 13 digits: 2^52 - 1 bytes of data follow
  });

  test('whitespace after the size without an extension is BadChunkSize (smuggling vector)', () => {
    fails('5 \r\nhello\r\n0\r\n\r\n', ErrorCode.BadChunkSize);
    fails('5\t\r\nhello\r\n0\r\n\r\n', ErrorCode.BadChunkSize);
    fails('0 \r\n\r\n', ErrorCode.BadChunkSize);
    fails('5 5\r\n', ErrorCode.BadChunkSize);
  });

  test('a bare LF after the size, its extension or the data is refused', () => {
    fails('5\nhello\r\n0\r\n\r\n', ErrorCode.BadChunkSize);
    fails('5;a\nhello\r\n', ErrorCode.BadChunkExtension);
    fails('5;a=b\nhello\r\n', ErrorCode.BadChunkExtension);
    fails('5\r\nhello\n0\r\n\r\n', ErrorCode.BadChunkFraming);
    fails('0\r\n\n', ErrorCode.BadTrailer);
  });

  test('a bare CR after the size is BadChunkFraming', () => {
    fails('5\rhello\r\n', ErrorCode.BadChunkFraming);
    fails('5;a\rhello\r\n', ErrorCode.BadChunkFraming);
  });

  test('missing CRLF after the data is BadChunkFraming', () => {
    fails('5\r\nhelloX\r\n0\r\n\r\n', ErrorCode.BadChunkFraming);
    fails('5\r\nhello\rX0\r\n\r\n', ErrorCode.BadChunkFraming);
    fails('3\r\nhello\r\n0\r\n\r\n', ErrorCode.BadChunkFraming); // declared size shorter than the data
    fails('0\r\n\r\r', ErrorCode.BadChunkFraming);
    fails('0\r\n\rX', ErrorCode.BadChunkFraming);
  });

  test('bad extension characters are BadChunkExtension', () => {
    for (const ext of [
      ';',
      '; ',
      ';=v',
      ';a=',
      ';a= ',
      ';a b',
      ';a=b c',
      ';a="x"y',
      ';a="unterminated',
      ';a="ctl\x01"',
      ';a="del\x7f"',
      ';a="esc\\\x00"',
      ';a=b"',
      ';a@b',
      ';a=b@',
      ';a=\x80',
      ';\x00',
      ';a=b;',
      ';a;;b',
    ]) {
      const body = `5${ext}\r\nhello\r\n0\r\n\r\n`;
      fails(body, ErrorCode.BadChunkExtension);
    }
  });

  test('an extension line longer than 4 KiB is BadChunkExtension', () => {
    ends(`1;a=${'v'.repeat(4000)}\r\nx\r\n0\r\n\r\n`);
    fails(`1;a=${'v'.repeat(5000)}\r\nx\r\n0\r\n\r\n`, ErrorCode.BadChunkExtension);
    fails(`1${' '.repeat(5000)};a\r\nx\r\n0\r\n\r\n`, ErrorCode.BadChunkExtension);
  });

  test('CTLs, obs-fold and bad line ends in trailers are BadTrailer', () => {
    for (const t of ['X: a\x00b', 'X: a\x01', 'X: \x7f', ' X: folded', '\tX: folded', ':empty-name', '(X): 1', 'X: a\rb']) {
      fails(`0\r\n${t}\r\n\r\n`, ErrorCode.BadTrailer);
    }
    fails('0\r\nX: 1\n\r\n', ErrorCode.BadTrailer);
    fails('0\r\nX: 1\r\n\n', ErrorCode.BadTrailer);
  });

  test('trailers over 16 KiB are BadTrailer', () => {
    const line = `X-T: ${'t'.repeat(1000)}\r\n`;
    ends(`0\r\n${line.repeat(15)}\r\n`);
    fails(`0\r\n${line.repeat(17)}\r\n`, ErrorCode.BadTrailer);
    fails(`0\r\nX: ${'t'.repeat(20000)}\r\n\r\n`, ErrorCode.BadTrailer);
  });

  test('scanning past the end without reset is refused rather than misread', () => {
    const s = new ChunkedScanner();
    const buf = Buffer.from('0\r\n\r\n0\r\n\r\n', 'latin1');
    assert.equal(s.scan(buf, 0, buf.length), 5);
    assert.equal(s.scan(buf, 5, buf.length), -2);
    assert.equal(s.error, ErrorCode.BadChunkFraming);
  });

  test('every framing error maps to a 400', () => {
    for (const c of [ErrorCode.BadChunkSize, ErrorCode.BadChunkExtension, ErrorCode.BadChunkFraming, ErrorCode.BadTrailer]) {
      assert.equal(errorInfo(c).status, 400);
    }
  });
});
