// Unit tests of the HTTP/1 byte-class tables and comparisons, checked against the RFC 9110 grammar
// written out independently here.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { equalsExact, equalsLower, FIELD_VCHAR, HEX_VALUE, TARGET_CHAR, TCHAR } from '../../../../engine/http1/chars';

const TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

test('TCHAR is exactly the RFC 9110 token characters', () => {
  for (let c = 0; c < 256; c++) assert.equal(TCHAR[c], TCHARS.includes(String.fromCharCode(c)) ? 1 : 0, `byte ${c}`);
});

test('FIELD_VCHAR is HTAB, SP, VCHAR and obs-text: never CR, LF, NUL, other CTLs or DEL', () => {
  for (let c = 0; c < 256; c++) {
    const want = c === 0x09 || c === 0x20 || (c >= 0x21 && c <= 0x7e) || c >= 0x80;
    assert.equal(FIELD_VCHAR[c], want ? 1 : 0, `byte ${c}`);
  }
});

test('TARGET_CHAR is VCHAR and obs-text: never SP or CTLs', () => {
  for (let c = 0; c < 256; c++) assert.equal(TARGET_CHAR[c], (c > 0x20 && c < 0x7f) || c >= 0x80 ? 1 : 0, `byte ${c}`);
});

test('HEX_VALUE', () => {
  for (let c = 0; c < 256; c++) {
    const ch = String.fromCharCode(c);
    const want = /^[0-9a-fA-F]$/.test(ch) ? parseInt(ch, 16) : 255;
    assert.equal(HEX_VALUE[c], want, `byte ${c}`);
  }
});

test('equalsLower folds ASCII letters only', () => {
  const b = (s: string): Buffer => Buffer.from(s, 'latin1');
  assert.equal(equalsLower(b('Content-Length'), 0, 14, 'content-length'), true);
  assert.equal(equalsLower(b('CONTENT-LENGTH'), 0, 14, 'content-length'), true);
  assert.equal(equalsLower(b('xContent-Lengthx'), 1, 15, 'content-length'), true);
  assert.equal(equalsLower(b('Content-Lengt'), 0, 13, 'content-length'), false);
  assert.equal(equalsLower(b('Content_Length'), 0, 14, 'content-length'), false);
  // Non-letters must match exactly: '_' | 0x20 is DEL and '^' | 0x20 is '~'.
  assert.equal(equalsLower(b('X_Request_Id'), 0, 12, 'x_request_id'), true);
  assert.equal(equalsLower(b('x^y'), 0, 3, 'x~y'), false);
  assert.equal(equalsLower(b('x@y'), 0, 3, 'x`y'), false);
  assert.equal(equalsLower(b('x\ry'), 0, 3, 'x-y'), false);
  assert.equal(equalsLower(b('\x10'), 0, 1, '0'), false);
  assert.equal(equalsLower(b('\xc9'), 0, 1, '\xe9'), false);
  assert.equal(equalsLower(b(''), 0, 0, ''), true);
});

test('equalsLower agrees with toLowerCase on token strings', () => {
  const b = Buffer.alloc(2);
  for (let c = 0; c < 128; c++) {
    for (const l of TCHARS.toLowerCase()) {
      b[0] = c;
      b[1] = 0x2d;
      const want = TCHARS.includes(String.fromCharCode(c)) && String.fromCharCode(c).toLowerCase() === l;
      assert.equal(equalsLower(b, 0, 2, `${l}-`), want, `byte ${c} vs ${l}`);
    }
  }
});

test('equalsExact is case-sensitive and length-checked', () => {
  const b = Buffer.from('GET POST', 'latin1');
  assert.equal(equalsExact(b, 0, 3, 'GET'), true);
  assert.equal(equalsExact(b, 0, 3, 'get'), false);
  assert.equal(equalsExact(b, 4, 8, 'POST'), true);
  assert.equal(equalsExact(b, 4, 7, 'POST'), false);
});
