// Unit tests of the error table: stable names and statuses, and local replies that our own strict
// parser accepts as well-formed responses.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode, errorInfo, localReply } from '../../../engine/errors';
import { BodyKind, ConnFlag, HeadInfo, parseHead } from '../../../engine/http1/head-parser';

const ALL: ErrorCode[] = [];
for (let c = ErrorCode.None; c <= ErrorCode.Draining; c++) ALL.push(c);

test('every code has a distinct, lower-case, token-shaped name and a 4xx/5xx status', () => {
  const names = new Set<string>();
  for (const c of ALL) {
    const info = errorInfo(c);
    assert.match(info.name, /^[a-z0-9-]+$/, String(c));
    assert.ok(!names.has(info.name), `duplicate name ${info.name}`);
    names.add(info.name);
    assert.ok(info.status >= 400 && info.status < 600, `${info.name} ${info.status}`);
    assert.ok(info.reason.length > 0);
  }
  assert.equal(names.size, ALL.length);
});

test('request-smuggling and framing rejections are 400s', () => {
  for (const c of [
    ErrorCode.BadRequestLine,
    ErrorCode.BadVersion,
    ErrorCode.BareLf,
    ErrorCode.BareCr,
    ErrorCode.BadHeaderName,
    ErrorCode.BadHeaderValue,
    ErrorCode.WhitespaceBeforeColon,
    ErrorCode.ObsFold,
    ErrorCode.MissingHost,
    ErrorCode.DuplicateHost,
    ErrorCode.BadContentLength,
    ErrorCode.DuplicateContentLength,
    ErrorCode.ContentLengthWithTransferEncoding,
    ErrorCode.BadTransferEncoding,
    ErrorCode.BadChunkSize,
    ErrorCode.BadChunkExtension,
    ErrorCode.BadChunkFraming,
    ErrorCode.BadTrailer,
  ]) {
    assert.equal(errorInfo(c).status, 400, errorInfo(c).name);
  }
  assert.equal(errorInfo(ErrorCode.VersionNotSupported).status, 505);
  assert.equal(errorInfo(ErrorCode.HeadTooLarge).status, 431);
  assert.equal(errorInfo(ErrorCode.TooManyHeaders).status, 431);
  assert.equal(errorInfo(ErrorCode.HeadTimeout).status, 408);
});

test('upstream failures are 5xx; NoRoute is a 404', () => {
  for (const c of [ErrorCode.UpstreamConnectFailed, ErrorCode.UpstreamReset, ErrorCode.NoEndpoints, ErrorCode.ResponseTimeout, ErrorCode.Draining]) {
    assert.ok(errorInfo(c).status >= 500, errorInfo(c).name);
  }
  assert.equal(errorInfo(ErrorCode.NoRoute).status, 404);
});

test('unknown codes fall back to None', () => {
  assert.equal(errorInfo(9999 as ErrorCode).name, 'none');
});

test('local replies parse as responses with the right status, length and error header', () => {
  for (const c of ALL) {
    for (const close of [false, true]) {
      const b = localReply(c, close);
      const h = new HeadInfo();
      h.reset(0);
      const end = parseHead(b, h, false, 8192);
      assert.ok(end > 0, `${errorInfo(c).name}: error ${h.error}`);
      const info = errorInfo(c);
      assert.equal(h.statusCode, info.status);
      assert.equal(h.bodyKind === BodyKind.Length, true);
      assert.equal(h.contentLength, b.length - end);
      assert.equal(b.toString('latin1', end), `${info.reason}: ${info.name}\n`);
      const i = h.find(b, 'l5d-proxy-error');
      assert.notEqual(i, -1);
      assert.equal(h.value(b, i), info.name);
      assert.equal((h.conn & ConnFlag.Close) !== 0, close);
      assert.equal(localReply(c, close), b, 'cached');
    }
  }
});
