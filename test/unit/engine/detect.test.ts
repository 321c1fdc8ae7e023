// Unit tests of protocol detection from a connection's first bytes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Detected, detectProtocol, DETECT_MAX_BYTES } from '../../../engine/detect';

const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
const name = (d: Detected): string => ['NeedMore', 'Http1', 'Http2', 'Tls', 'Opaque'][d];
function detect(b: string | Buffer | number[]): string {
  const buf = typeof b === 'string' ? Buffer.from(b, 'latin1') : Array.isArray(b) ? Buffer.from(b) : b;
  return name(detectProtocol(buf));
}

test('nothing yet', () => {
  assert.equal(detect(''), 'NeedMore');
});

test('the HTTP/2 preface, whole, with frames after it, and every partial prefix', () => {
  assert.equal(detect(PREFACE), 'Http2');
  assert.equal(detect(PREFACE + '\x00\x00\x12\x04\x00\x00\x00\x00\x00'), 'Http2');
  for (let k = 1; k < PREFACE.length; k++) assert.equal(detect(PREFACE.slice(0, k)), 'NeedMore', JSON.stringify(PREFACE.slice(0, k)));
});

test('a request line that starts like the preface is HTTP/1', () => {
  assert.equal(detect('PRI / HTTP/1.1\r\n'), 'Http1');
  assert.equal(detect('POST / HTTP/1.1\r\n'), 'Http1');
  assert.equal(detect('PUT /'), 'Http1');
  assert.equal(detect('PRI * HTTP/1.1\r\n'), 'Http1');
});

test('TLS ClientHello first bytes', () => {
  for (const minor of [0, 1, 2, 3, 4]) assert.equal(detect([0x16, 0x03, minor, 0x02, 0x00, 0x01]), 'Tls', `3.${minor}`);
  assert.equal(detect([0x16, 0x03, 0x01]), 'Tls');
  assert.equal(detect([0x16]), 'NeedMore');
  assert.equal(detect([0x16, 0x03]), 'NeedMore');
  assert.equal(detect([0x16, 0x02, 0x00]), 'Opaque');
  assert.equal(detect([0x16, 0x03, 0x05]), 'Opaque');
  assert.equal(detect([0x17, 0x03, 0x03, 0x00]), 'Opaque'); // application data, not a hello
});

test('HTTP/1 methods, known and extension', () => {
  for (const m of ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 'PROPFIND', 'MKCOL', 'A']) {
    assert.equal(detect(`${m} / HTTP/1.1\r\n`), 'Http1', m);
    assert.equal(detect(`${m} `), 'Http1', m);
  }
  assert.equal(detect(`${'A'.repeat(24)} /`), 'Http1');
});

test('a partial method waits for more', () => {
  for (const p of ['G', 'GE', 'GET', 'OPTIONS', 'PROPPATCH', 'A'.repeat(23)]) assert.equal(detect(p), 'NeedMore', p);
});

test('too long a method, lower case, or no SP after it is opaque', () => {
  assert.equal(detect('A'.repeat(24)), 'Opaque');
  assert.equal(detect(`${'A'.repeat(25)} /`), 'Opaque');
  assert.equal(detect('get / HTTP/1.1'), 'Opaque');
  assert.equal(detect('GET\t/'), 'Opaque');
  assert.equal(detect('GET/'), 'Opaque');
  assert.equal(detect(' GET /'), 'Opaque');
  assert.equal(detect('SSH-2.0-OpenSSH_9.6\r\n'), 'Opaque');
  assert.equal(detect('*1\r\n$4\r\nPING\r\n'), 'Opaque'); // redis
});

test('binary garbage is opaque', () => {
  assert.equal(detect([0x00]), 'Opaque');
  assert.equal(detect([0xff, 0xfe, 0x00]), 'Opaque');
  assert.equal(detect([0x80, 0x2e, 0x01, 0x03, 0x01]), 'Opaque'); // SSLv2-style hello
  assert.equal(detect([0x47, 0x45, 0x54, 0x00]), 'Opaque');
});

test('detection decides within DETECT_MAX_BYTES for every input that starts like HTTP/1', () => {
  // The caller gives up at DETECT_MAX_BYTES; a method is at most 24 bytes so HTTP/1 is decided by then.
  assert.ok(DETECT_MAX_BYTES > 24 + 1);
  assert.equal(detect('A'.repeat(DETECT_MAX_BYTES)), 'Opaque');
});
