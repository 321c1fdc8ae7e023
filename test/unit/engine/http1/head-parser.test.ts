// Unit tests of the HTTP/1 head parser: valid request and status lines, the RFC 9112 rejections (each
// with its exact ErrorCode), hop-by-hop marking, Connection flags, limits and incremental parsing.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode, errorInfo } from '../../../../engine/errors';
import {
  BodyKind,
  ConnFlag,
  HeadInfo,
  markConnectionNamedFields,
  MAX_HEADERS,
  Method,
  NEED_MORE,
  parseHead,
  PARSE_ERROR,
} from '../../../../engine/http1/head-parser';
import { feedSplit, everyByte, summarizeHead } from '../../../helpers/http1-stream';

const MAX = 65536;

interface Parsed {
  r: number;
  h: HeadInfo;
  buf: Buffer;
}

function parse(input: string | Buffer, isRequest = true, max = MAX): Parsed {
  const buf = typeof input === 'string' ? Buffer.from(input, 'latin1') : input;
  const h = new HeadInfo();
  h.reset(0);
  return { r: parseHead(buf, h, isRequest, max), h, buf };
}

/** Parses a complete head and asserts that it ends exactly at the end of the input. */
function ok(input: string | Buffer, isRequest = true): Parsed {
  const p = parse(input, isRequest);
  assert.equal(p.r === PARSE_ERROR ? `error ${errorInfo(p.h.error).name}` : p.r, p.buf.length, JSON.stringify(p.buf.toString('latin1')));
  assert.equal(p.h.error, ErrorCode.None);
  return p;
}

/** Asserts a PARSE_ERROR with this code (compared by name so that a failure says which). */
function bad(input: string | Buffer, code: ErrorCode, isRequest = true, max = MAX): void {
  const p = parse(input, isRequest, max);
  const label = JSON.stringify(p.buf.toString('latin1'));
  assert.equal(p.r, PARSE_ERROR, `expected ${errorInfo(code).name} for ${label}, got ${p.r}`);
  assert.equal(errorInfo(p.h.error).name, errorInfo(code).name, label);
}

function fieldsOf(p: Parsed): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < p.h.count; i++) out.push([p.h.name(p.buf, i), p.h.value(p.buf, i)]);
  return out;
}

function dropped(p: Parsed): string[] {
  const out: string[] = [];
  for (let i = 0; i < p.h.count; i++) if (p.h.drop[i] === 1) out.push(p.h.name(p.buf, i));
  return out;
}

const target = (p: Parsed): string => p.buf.toString('latin1', p.h.base + p.h.targetStart, p.h.base + p.h.targetEnd);
const methodText = (p: Parsed): string => p.buf.toString('latin1', p.h.base, p.h.base + p.h.methodEnd);

function req(line: string, ...fields: string[]): string {
  return `${line}\r\n${fields.map((f) => `${f}\r\n`).join('')}\r\n`;
}

describe('request lines', () => {
  test('known methods map to their Method and others to Method.Other', () => {
    const cases: [string, Method][] = [
      ['GET', Method.Get],
      ['HEAD', Method.Head],
      ['POST', Method.Post],
      ['PUT', Method.Put],
      ['DELETE', Method.Delete],
      ['CONNECT', Method.Connect],
      ['OPTIONS', Method.Options],
      ['TRACE', Method.Trace],
      ['PATCH', Method.Patch],
      ['PROPFIND', Method.Other],
      ['get', Method.Other], // methods are case-sensitive
      ['GETS', Method.Other],
      ['M-SEARCH', Method.Other],
      ["X!#$%&'*+-.^_`|~9", Method.Other],
    ];
    for (const [m, want] of cases) {
      const p = ok(req(`${m} / HTTP/1.1`, 'Host: a'));
      assert.equal(p.h.method, want, m);
      assert.equal(methodText(p), m);
    }
  });

  test('origin, absolute, authority and asterisk targets', () => {
    const cases: [string, string][] = [
      ['GET', '/'],
      ['GET', '/a/b/c?x=1&y=%20z#frag'],
      ['GET', 'http://example.com:8080/path?q'],
      ['CONNECT', 'example.com:443'],
      ['CONNECT', '[::1]:443'],
      ['OPTIONS', '*'],
      ['GET', "/!$&'()*+,;=:@-._~"],
    ];
    for (const [m, t] of cases) {
      const p = ok(req(`${m} ${t} HTTP/1.1`, 'Host: example.com'));
      assert.equal(target(p), t);
    }
  });

  test('obs-text is accepted in the target', () => {
    const p = ok(Buffer.from('GET /caf\xe9 HTTP/1.1\r\nHost: a\r\n\r\n', 'latin1'));
    assert.equal(target(p), '/caf\xe9');
  });

  test('HTTP/1.0 and HTTP/1.1 set versionMinor; Host is optional in 1.0', () => {
    assert.equal(ok('GET / HTTP/1.0\r\n\r\n').h.versionMinor, 0);
    assert.equal(ok(req('GET / HTTP/1.0', 'Host: a')).h.versionMinor, 0);
    assert.equal(ok(req('GET / HTTP/1.1', 'Host: a')).h.versionMinor, 1);
  });

  test('a head with no fields and a body-less request', () => {
    const p = ok('GET / HTTP/1.0\r\n\r\n');
    assert.equal(p.h.count, 0);
    assert.equal(p.h.bodyKind, BodyKind.None);
    assert.equal(p.h.contentLength, -1);
    assert.equal(p.h.headLen, p.buf.length);
  });

  test('the returned offset is the head end even with a body or a pipelined request after it', () => {
    const head = req('POST /x HTTP/1.1', 'Host: a', 'Content-Length: 3');
    const p = parse(head + 'abcGET / HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(p.r, Buffer.byteLength(head));
    assert.equal(p.h.headLen, Buffer.byteLength(head));
    assert.equal(p.h.bodyKind, BodyKind.Length);
    assert.equal(p.h.contentLength, 3);
  });

  test('one empty line before the request line is tolerated; the head starts after it', () => {
    const head = req('GET / HTTP/1.1', 'Host: a');
    const p = parse('\r\n' + head);
    assert.equal(p.r, 2 + head.length);
    assert.equal(p.h.base, 2);
    assert.equal(target(p), '/');
    assert.equal(methodText(p), 'GET');
    assert.deepEqual(fieldsOf(p), [['host', 'a']]);
    assert.equal(p.h.headLen, head.length);
  });

  test('only one empty line is tolerated, and only before a request line', () => {
    bad('\r\n\r\n' + req('GET / HTTP/1.1', 'Host: a'), ErrorCode.BadRequestLine);
    bad('\r\nHTTP/1.1 200 OK\r\n\r\n', ErrorCode.BadRequestLine, false);
    bad('\n' + req('GET / HTTP/1.1', 'Host: a'), ErrorCode.BareLf);
  });

  test('the leading empty line is also tolerated when it arrives in its own read', () => {
    const whole = Buffer.from('\r\n' + req('GET /x HTTP/1.1', 'Host: a'), 'latin1');
    const split = feedSplit(whole, [1, 2, 3], true);
    assert.equal(split.error, null);
    assert.equal(split.messages.length, 1);
    assert.equal(split.messages[0].headStart, 2);
    assert.equal(split.messages[0].headEnd, whole.length);
    assert.equal(split.messages[0].target, '/x');
    // Two empty lines are refused however they are split.
    const twice = Buffer.from('\r\n\r\n' + req('GET / HTTP/1.1', 'Host: a'), 'latin1');
    for (const cuts of [[], [2], [1, 2, 3], everyByte(twice.length)]) {
      assert.equal(feedSplit(twice, cuts, true).error?.code, ErrorCode.BadRequestLine, String(cuts));
    }
  });

  test('malformed request lines are BadRequestLine', () => {
    for (const line of ['GET', 'GET /', ' GET / HTTP/1.1', 'GET  / HTTP/1.1', 'GET\t/ HTTP/1.1', 'GET /\tHTTP/1.1', 'G(T / HTTP/1.1', '/ HTTP/1.1']) {
      bad(req(line, 'Host: a'), ErrorCode.BadRequestLine);
    }
    // Once method and target are read, whatever follows the second SP must be exactly the version.
    for (const line of ['GET / ', 'GET /  HTTP/1.1', 'GET / HTTP/1.1 extra', 'GET / HTTP/1.1\t']) {
      bad(req(line, 'Host: a'), ErrorCode.BadVersion);
    }
  });

  test('malformed versions are BadVersion; other major versions are VersionNotSupported', () => {
    for (const v of ['HTTP/1', 'HTTP/1.', 'HTTP/1.1.1', 'HTTP/11', 'http/1.1', 'HTTP/1,1', 'HTTP/a.1', 'HTTP/1.a', 'HTTPS/1.1', 'HTTP/1.1 ', 'HTTP 1.1', 'HTTP/-.1']) {
      bad(req(`GET / ${v}`, 'Host: a'), ErrorCode.BadVersion);
    }
    for (const v of ['HTTP/2.0', 'HTTP/0.9', 'HTTP/3.0', 'HTTP/9.9']) {
      bad(req(`GET / ${v}`, 'Host: a'), ErrorCode.VersionNotSupported);
    }
    assert.equal(errorInfo(ErrorCode.VersionNotSupported).status, 505);
  });

  test('NUL and other CTLs, and SP, in the method or the target are refused', () => {
    for (const c of [0x00, 0x01, 0x08, 0x0b, 0x0c, 0x1b, 0x1f, 0x7f]) {
      const ch = String.fromCharCode(c);
      bad(req(`GE${ch}T / HTTP/1.1`, 'Host: a'), ErrorCode.BadRequestLine);
      bad(req(`GET /a${ch}b HTTP/1.1`, 'Host: a'), ErrorCode.BadRequestLine);
    }
    bad(req('GET /a b HTTP/1.1', 'Host: a'), ErrorCode.BadVersion);
  });
});

describe('status lines', () => {
  test('with and without a reason phrase', () => {
    for (const [line, status, minor] of [
      ['HTTP/1.1 200 OK', 200, 1],
      ['HTTP/1.1 204', 204, 1],
      ['HTTP/1.1 404 ', 404, 1],
      ['HTTP/1.0 503 Service Unavailable', 503, 0],
      ['HTTP/1.1 101 Switching Protocols', 101, 1],
      ['HTTP/1.1 599 \tWeird\tbut valid \xe9', 599, 1],
    ] as [string, number, number][]) {
      const p = ok(Buffer.from(`${line}\r\nContent-Length: 0\r\n\r\n`, 'latin1'), false);
      assert.equal(p.h.statusCode, status, line);
      assert.equal(p.h.versionMinor, minor, line);
    }
  });

  test('malformed status lines', () => {
    bad('HTTP/1.1 20\r\n\r\n', ErrorCode.BadRequestLine, false);
    bad('HTTP/1.1 2000\r\n\r\n', ErrorCode.BadRequestLine, false);
    bad('HTTP/1.1 099 X\r\n\r\n', ErrorCode.BadRequestLine, false);
    bad('HTTP/1.1 600 X\r\n\r\n', ErrorCode.BadRequestLine, false);
    bad('HTTP/1.1 2x0 X\r\n\r\n', ErrorCode.BadRequestLine, false);
    bad('HTTP/1.1 200\tOK\r\n\r\n', ErrorCode.BadRequestLine, false);
    bad('HTTP/1.1  200 OK\r\n\r\n', ErrorCode.BadRequestLine, false);
    bad('HTTP/2.0 200 OK\r\n\r\n', ErrorCode.BadVersion, false);
    bad('HTTP/1.x 200 OK\r\n\r\n', ErrorCode.BadVersion, false);
    bad('HTTX/1.1 200 OK\r\n\r\n', ErrorCode.BadVersion, false);
    bad('HTTP/1.1_200 OK\r\n\r\n', ErrorCode.BadVersion, false);
    bad('HTTP/1.1 200 O\x00K\r\n\r\n', ErrorCode.BadHeaderValue, false);
    bad('HTTP/1.1 200 O\x7fK\r\n\r\n', ErrorCode.BadHeaderValue, false);
  });
});

describe('header fields', () => {
  test('many fields keep their order, names are matched case-insensitively, values are OWS-trimmed', () => {
    const p = ok(
      req(
        'GET / HTTP/1.1',
        'Host: example.com',
        'X-Empty:',
        'X-Spaces:    ',
        'X-Ows: \t  a b\tc \t ',
        'x-tight:v',
        'ACCEPT: */*',
        "X-Tchar!#$%&'*+-.^_`|~: ok",
      ),
    );
    assert.deepEqual(fieldsOf(p), [
      ['host', 'example.com'],
      ['x-empty', ''],
      ['x-spaces', ''],
      ['x-ows', 'a b\tc'],
      ['x-tight', 'v'],
      ['accept', '*/*'],
      ["x-tchar!#$%&'*+-.^_`|~", 'ok'],
    ]);
    assert.equal(p.h.hostField, 0);
    assert.equal(p.h.find(p.buf, 'accept'), 5);
    assert.equal(p.h.find(p.buf, 'x-ows'), 3);
    assert.equal(p.h.find(p.buf, 'missing'), -1);
  });

  test('field offsets cover the whole line and the value exactly', () => {
    const head = req('GET / HTTP/1.1', 'Host:  a  ', 'X-A: 1');
    const p = ok(head);
    assert.equal(p.buf.toString('latin1', p.h.lineStart(0), p.h.lineEnd(0)), 'Host:  a  \r\n');
    assert.equal(p.buf.toString('latin1', p.h.nameStart(0), p.h.nameEnd(0)), 'Host');
    assert.equal(p.buf.toString('latin1', p.h.valueStart(0), p.h.valueEnd(0)), 'a');
    assert.equal(p.buf.toString('latin1', p.h.lineStart(1), p.h.lineEnd(1)), 'X-A: 1\r\n');
    assert.equal(p.h.lineEnd(1) + 2, p.h.headLen);
  });

  test('find() matches names with underscores and does not fold non-letters', () => {
    const p = ok(req('GET / HTTP/1.1', 'Host: a', 'X_Request_Id: 7', 'x^y: 1'));
    assert.equal(p.h.find(p.buf, 'x_request_id'), 1);
    assert.equal(p.h.find(p.buf, 'x^y'), 2);
    assert.equal(p.h.find(p.buf, 'x~y'), -1);
  });

  test('obs-text and the full VCHAR range are accepted in values', () => {
    let all = '';
    for (let c = 0x21; c <= 0x7e; c++) all += String.fromCharCode(c);
    for (let c = 0x80; c <= 0xff; c++) all += String.fromCharCode(c);
    const p = ok(Buffer.from(req('GET / HTTP/1.1', 'Host: a', `X-All: ${all}`), 'latin1'));
    assert.equal(p.h.value(p.buf, 1), all);
  });

  test('exactly MAX_HEADERS fields are accepted, one more is TooManyHeaders', () => {
    const fields = ['Host: a'];
    for (let i = 1; i < MAX_HEADERS; i++) fields.push(`X-F${i}: ${i}`);
    const p = ok(req('GET / HTTP/1.1', ...fields));
    assert.equal(p.h.count, MAX_HEADERS);
    bad(req('GET / HTTP/1.1', ...fields, 'X-One-Too-Many: 1'), ErrorCode.TooManyHeaders);
    assert.equal(errorInfo(ErrorCode.TooManyHeaders).status, 431);
  });

  test('obs-fold is refused, also right after the start line', () => {
    bad(req('GET / HTTP/1.1', 'Host: a', 'X-A: 1', ' folded'), ErrorCode.ObsFold);
    bad(req('GET / HTTP/1.1', 'Host: a', 'X-A: 1', '\tfolded'), ErrorCode.ObsFold);
    bad(req('GET / HTTP/1.1', ' Host: a'), ErrorCode.ObsFold);
    bad('HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n', ErrorCode.ObsFold, false);
  });

  test('whitespace between the name and the colon is refused', () => {
    bad(req('GET / HTTP/1.1', 'Host : a'), ErrorCode.WhitespaceBeforeColon);
    bad(req('GET / HTTP/1.1', 'Host: a', 'Content-Length\t: 0'), ErrorCode.WhitespaceBeforeColon);
    bad(req('GET / HTTP/1.1', 'Host: a', 'Transfer-Encoding : chunked'), ErrorCode.WhitespaceBeforeColon);
    bad('HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n', ErrorCode.WhitespaceBeforeColon, false);
  });

  test('bad names: empty, no colon, non-token characters, CTLs', () => {
    bad(req('GET / HTTP/1.1', 'Host: a', ': v'), ErrorCode.BadHeaderName);
    bad(req('GET / HTTP/1.1', 'Host: a', 'NoColon'), ErrorCode.BadHeaderName);
    for (const c of ['\x00', '\x01', '\x7f', '(', ')', '/', '[', '@', '"', '{', '\xe9']) {
      bad(Buffer.from(req('GET / HTTP/1.1', 'Host: a', `X${c}Y: v`), 'latin1'), ErrorCode.BadHeaderName);
    }
  });

  test('NUL and other CTLs in values are BadHeaderValue', () => {
    for (let c = 0; c < 0x20; c++) {
      if (c === 0x09 || c === 0x0a || c === 0x0d) continue;
      bad(req('GET / HTTP/1.1', 'Host: a', `X-A: a${String.fromCharCode(c)}b`), ErrorCode.BadHeaderValue);
    }
    bad(req('GET / HTTP/1.1', 'Host: a', 'X-A: a\x7fb'), ErrorCode.BadHeaderValue);
    bad(req('GET / HTTP/1.1', 'Host: a\x00'), ErrorCode.BadHeaderValue);
  });
});

describe('line endings', () => {
  test('a bare CR anywhere in the head is BareCr', () => {
    const cases: [string, boolean][] = [
      ['GE\rT / HTTP/1.1\r\nHost: a\r\n\r\n', true],
      ['GET\r/ HTTP/1.1\r\nHost: a\r\n\r\n', true],
      ['GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n', true],
      ['GET /\r HTTP/1.1\r\nHost: a\r\n\r\n', true],
      ['GET / HTTP/1\r1\r\nHost: a\r\n\r\n', true],
      ['GET / HTTP/1.1\r\r\nHost: a\r\n\r\n', true],
      ['\rGET / HTTP/1.1\r\nHost: a\r\n\r\n', true],
      ['\r\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n', true],
      ['GET / HTTP/1.1\r\nHo\rst: a\r\n\r\n', true],
      ['GET / HTTP/1.1\r\nHost\r: a\r\n\r\n', true],
      ['GET / HTTP/1.1\r\nHost:\ra\r\n\r\n', true],
      ['GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n', true],
      ['GET / HTTP/1.1\r\nHost: a\r\r\n\r\n', true],
      ['GET / HTTP/1.1\r\nHost: a\r\n\rX: 1\r\n\r\n', true],
      ['GET / HTTP/1.1\r\nHost: a\r\n\r\r\n', true],
      ['HTTP/1.1 200 O\rK\r\n\r\n', false],
      ['HTTP/1.1 200\r\r\n\r\n', false],
      ['HTTP/1.1 2\r0 OK\r\n\r\n', false],
      ['HTTP/1.1\r200 OK\r\n\r\n', false],
      ['HTTP/1\r1 200 OK\r\n\r\n', false],
      ['HTTP/1.1 200 OK\r\nX: \r1\r\n\r\n', false],
    ];
    for (const [s, isRequest] of cases) bad(s, ErrorCode.BareCr, isRequest);
  });

  test('a bare LF ends no line: BareLf wherever it is', () => {
    bad('GET / HTTP/1.1\nHost: a\r\n\r\n', ErrorCode.BareLf);
    bad('GET / HTTP/1.1\r\nHost: a\n\r\n', ErrorCode.BareLf);
    bad('GET / HTTP/1.1\r\nHost: a\r\n\n', ErrorCode.BareLf);
    bad('GET / HTTP/1.1\r\nHost: a\r\nX: a\nb\r\n\r\n', ErrorCode.BareLf);
    bad('GET / HTTP/1.1\n\n', ErrorCode.BareLf);
    bad('\n', ErrorCode.BareLf);
    bad('HTTP/1.1 200 OK\n\n', ErrorCode.BareLf, false);
  });

  test('short request lines ending in CRLF are BadRequestLine, not BareCr', () => {
    bad('GET\r\n\r\n', ErrorCode.BadRequestLine);
    bad('GET /\r\n\r\n', ErrorCode.BadRequestLine);
    bad('GET / \r\n\r\n', ErrorCode.BadVersion);
  });
});

describe('framing: Content-Length and Transfer-Encoding', () => {
  test('Content-Length gives a Length body; 0 gives none', () => {
    let p = ok(req('POST / HTTP/1.1', 'Host: a', 'Content-Length: 42'));
    assert.equal(p.h.contentLength, 42);
    assert.equal(p.h.bodyKind, BodyKind.Length);
    p = ok(req('POST / HTTP/1.1', 'Host: a', 'Content-Length: 0'));
    assert.equal(p.h.contentLength, 0);
    assert.equal(p.h.bodyKind, BodyKind.None);
    p = ok(req('POST / HTTP/1.1', 'Host: a', 'content-length: 007'));
    assert.equal(p.h.contentLength, 7);
    p = ok(req('POST / HTTP/1.1', 'Host: a', 'Content-Length: 999999999999999'));
    assert.equal(p.h.contentLength, 999999999999999);
  });

  test('identical duplicate Content-Length is accepted and the duplicate dropped', () => {
    const p = ok(req('POST / HTTP/1.1', 'Host: a', 'Content-Length: 5', 'X: y', 'content-length: 5'));
    assert.equal(p.h.contentLength, 5);
    assert.equal(p.h.drop[0], 0);
    assert.equal(p.h.drop[1], 0);
    assert.equal(p.h.drop[3], 1);
    assert.equal(p.h.dropCount, 1);
  });

  test('differing duplicate Content-Length is DuplicateContentLength', () => {
    bad(req('POST / HTTP/1.1', 'Host: a', 'Content-Length: 5', 'Content-Length: 6'), ErrorCode.DuplicateContentLength);
    bad(req('POST / HTTP/1.1', 'Host: a', 'Content-Length: 0', 'Content-Length: 10'), ErrorCode.DuplicateContentLength);
    bad('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', ErrorCode.DuplicateContentLength, false);
  });

  test('non-digit, empty, signed, listed or oversized Content-Length is BadContentLength', () => {
    for (const v of ['', 'abc', '-1', '+1', '1a', '0x10', '1 2', '1,1', '5, 5', '1.0', '١', '1000000000000000', '99999999999999999999']) {
      bad(Buffer.from(req('POST / HTTP/1.1', 'Host: a', `Content-Length: ${v}`), 'latin1'), ErrorCode.BadContentLength);
    }
  });

  test('Content-Length together with Transfer-Encoding is refused, in either order', () => {
    bad(req('POST / HTTP/1.1', 'Host: a', 'Content-Length: 5', 'Transfer-Encoding: chunked'), ErrorCode.ContentLengthWithTransferEncoding);
    bad(req('POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked', 'Content-Length: 5'), ErrorCode.ContentLengthWithTransferEncoding);
    bad(req('POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked', 'Content-Length: 0'), ErrorCode.ContentLengthWithTransferEncoding);
    bad('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n', ErrorCode.ContentLengthWithTransferEncoding, false);
  });

  test('Transfer-Encoding with final chunked gives a Chunked body', () => {
    for (const v of ['chunked', 'Chunked', 'CHUNKED', 'gzip, chunked', 'gzip,chunked', 'gzip;q=1 , chunked', 'chunked ', ' , chunked', 'chunked,', 'x-custom, deflate, chunked']) {
      const p = ok(req('POST / HTTP/1.1', 'Host: a', `Transfer-Encoding: ${v}`));
      assert.equal(p.h.chunked, true, v);
      assert.equal(p.h.bodyKind, BodyKind.Chunked, v);
      assert.equal(p.h.hasTransferEncoding, true, v);
    }
    const two = ok(req('POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: gzip', 'Transfer-Encoding: chunked'));
    assert.equal(two.h.bodyKind, BodyKind.Chunked);
  });

  test('Transfer-Encoding other than a final chunked is BadTransferEncoding in requests', () => {
    const cases: string[][] = [
      ['Transfer-Encoding: chunked, gzip'],
      ['Transfer-Encoding: identity'],
      ['Transfer-Encoding: gzip'],
      ['Transfer-Encoding: chunked;x'],
      ['Transfer-Encoding: chunked ;x=1'],
      ['Transfer-Encoding: chunked, chunked'],
      ['Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'],
      ['Transfer-Encoding: chunked', 'Transfer-Encoding: gzip'],
      ['Transfer-Encoding:'],
      ['Transfer-Encoding: ,'],
      ['Transfer-Encoding: "chunked"'],
      ['Transfer-Encoding: chunked@'],
      ['Transfer-Encoding: xchunked'],
      ['Transfer-Encoding: chunkedx'],
      ['Transfer-Encoding: chunked\x0b'],
    ];
    for (const f of cases) {
      const p = parse(req('POST / HTTP/1.1', 'Host: a', ...f));
      assert.equal(p.r, PARSE_ERROR, JSON.stringify(f));
      // \x0b is a CTL: it fails as a value before Transfer-Encoding is looked at.
      const want = f[0].endsWith('\x0b') ? ErrorCode.BadHeaderValue : ErrorCode.BadTransferEncoding;
      assert.equal(errorInfo(p.h.error).name, errorInfo(want).name, JSON.stringify(f));
    }
  });

  test('Transfer-Encoding in an HTTP/1.0 request is refused', () => {
    bad(req('POST / HTTP/1.0', 'Transfer-Encoding: chunked'), ErrorCode.BadTransferEncoding);
    bad(req('POST / HTTP/1.0', 'Host: a', 'Transfer-Encoding: chunked'), ErrorCode.BadTransferEncoding);
  });

  test('response framing: TE without final chunked or no framing at all reads until close', () => {
    let p = ok('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n', false);
    assert.equal(p.h.bodyKind, BodyKind.UntilClose);
    p = ok('HTTP/1.1 200 OK\r\n\r\n', false);
    assert.equal(p.h.bodyKind, BodyKind.UntilClose);
    p = ok('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', false);
    assert.equal(p.h.bodyKind, BodyKind.Chunked);
    p = ok('HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n', false);
    assert.equal(p.h.bodyKind, BodyKind.None);
    p = ok('HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n', false);
    assert.equal(p.h.bodyKind, BodyKind.Length);
    bad('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n', ErrorCode.BadTransferEncoding, false);
  });
});

describe('Host', () => {
  test('missing Host in HTTP/1.1 is MissingHost; absolute-form does not replace it', () => {
    bad('GET / HTTP/1.1\r\n\r\n', ErrorCode.MissingHost);
    bad(req('GET http://a/ HTTP/1.1', 'X: 1'), ErrorCode.MissingHost);
    bad(req('GET / HTTP/1.1', 'Hostx: a'), ErrorCode.MissingHost);
  });

  test('duplicate Host is DuplicateHost, whatever its case or value', () => {
    bad(req('GET / HTTP/1.1', 'Host: a', 'Host: a'), ErrorCode.DuplicateHost);
    bad(req('GET / HTTP/1.1', 'Host: a', 'HOST: b'), ErrorCode.DuplicateHost);
    bad(req('GET / HTTP/1.0', 'host: a', 'Host: a'), ErrorCode.DuplicateHost);
  });

  test('an empty Host is present', () => {
    const p = ok(req('GET / HTTP/1.1', 'Host:'));
    assert.equal(p.h.hostField, 0);
    assert.equal(p.h.value(p.buf, 0), '');
  });
});

describe('hop-by-hop fields and Connection', () => {
  test('Connection, Keep-Alive, Proxy-Connection, TE, Upgrade and HTTP2-Settings are dropped; others are not', () => {
    const p = ok(
      req(
        'GET / HTTP/1.1',
        'Host: a',
        'Connection: keep-alive, Upgrade',
        'Keep-Alive: timeout=5',
        'Proxy-Connection: keep-alive',
        'TE: trailers',
        'Upgrade: websocket',
        'HTTP2-Settings: AAMAAABkAAQAAP__',
        'Trailer: x-checksum',
        'Transfer-Encoding: chunked',
        'X-Keep: 1',
        'Tee: 1',
        'Connections: 1',
        'Proxy-Authorization: Basic x',
        'Expect: 100-continue',
      ),
    );
    assert.deepEqual(dropped(p), ['connection', 'keep-alive', 'proxy-connection', 'te', 'upgrade', 'http2-settings']);
    assert.equal(p.h.dropCount, 6);
    assert.equal(p.h.connectionField, 1);
    assert.equal(p.h.upgradeField, 5);
    assert.equal(p.h.expectContinue, true);
  });

  test('names are matched case-insensitively', () => {
    const p = ok(req('GET / HTTP/1.1', 'Host: a', 'CONNECTION: close', 'kEEP-aLIVE: 1', 'te: trailers', 'UPGRADE: x'));
    assert.deepEqual(dropped(p), ['connection', 'keep-alive', 'te', 'upgrade']);
  });

  test('Connection flags', () => {
    const flags = (v: string): number => ok(req('GET / HTTP/1.1', 'Host: a', `Connection: ${v}`)).h.conn;
    assert.equal(flags('close'), ConnFlag.Close);
    assert.equal(flags('Close'), ConnFlag.Close);
    assert.equal(flags('keep-alive'), ConnFlag.KeepAlive);
    assert.equal(flags('Upgrade'), ConnFlag.Upgrade);
    assert.equal(flags('x-foo'), ConnFlag.Other);
    assert.equal(flags(' close ,, keep-alive,upgrade ,x-a'), ConnFlag.Close | ConnFlag.KeepAlive | ConnFlag.Upgrade | ConnFlag.Other);
    assert.equal(flags(''), 0);
    assert.equal(flags('closed'), ConnFlag.Other);
    assert.equal(ok(req('GET / HTTP/1.1', 'Host: a')).h.conn, 0);
    // Two Connection fields combine.
    const two = ok(req('GET / HTTP/1.1', 'Host: a', 'Connection: close', 'Connection: upgrade'));
    assert.equal(two.h.conn, ConnFlag.Close | ConnFlag.Upgrade);
    assert.deepEqual(dropped(two), ['connection', 'connection']);
  });

  test('Connection values that are not token lists are BadHeaderValue', () => {
    for (const v of ['close keep-alive', 'close;x', '"close"', 'a=b', 'close/1']) {
      bad(req('GET / HTTP/1.1', 'Host: a', `Connection: ${v}`), ErrorCode.BadHeaderValue);
    }
  });

  test('Expect: 100-continue is recognised case-insensitively, other expectations are not', () => {
    assert.equal(ok(req('POST / HTTP/1.1', 'Host: a', 'Expect: 100-Continue')).h.expectContinue, true);
    assert.equal(ok(req('POST / HTTP/1.1', 'Host: a', 'Expect: 100-continues')).h.expectContinue, false);
    assert.equal(ok(req('POST / HTTP/1.1', 'Host: a')).h.expectContinue, false);
  });

  test('markConnectionNamedFields drops the fields that Connection names, in any case, across Connection fields', () => {
    const p = ok(
      req('GET / HTTP/1.1', 'Host: a', 'Connection: X-Foo, close', 'x-foo: 1', 'X-Bar: 2', 'X-FOO: 3', 'Connection: x-bar', 'X-Baz: 4'),
    );
    assert.deepEqual(dropped(p), ['connection', 'connection']);
    markConnectionNamedFields(p.buf, p.h);
    assert.deepEqual(dropped(p), ['connection', 'x-foo', 'x-bar', 'x-foo', 'connection']);
    assert.equal(p.h.dropCount, 5);
  });

  test('markConnectionNamedFields does nothing without extra Connection tokens', () => {
    const p = ok(req('GET / HTTP/1.1', 'Host: a', 'Connection: close', 'Close: 1'));
    markConnectionNamedFields(p.buf, p.h);
    assert.deepEqual(dropped(p), ['connection']);
  });

  test('Connection can not remove the fields that frame the message (smuggling)', () => {
    // Dropping Content-Length would forward the 5 body bytes as the start of another request upstream.
    let p = ok(req('POST / HTTP/1.1', 'Host: a', 'Content-Length: 5', 'Connection: Content-Length, x-a', 'X-A: 1'));
    markConnectionNamedFields(p.buf, p.h);
    assert.deepEqual(dropped(p), ['connection', 'x-a']);
    p = ok(req('POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked', 'Connection: transfer-encoding, host'));
    markConnectionNamedFields(p.buf, p.h);
    assert.deepEqual(dropped(p), ['connection']);
  });

  test('reset clears drop marks from the previous message', () => {
    const h = new HeadInfo();
    h.reset(0);
    const a = Buffer.from(req('GET / HTTP/1.1', 'Host: a', 'Connection: close', 'TE: trailers'), 'latin1');
    assert.equal(parseHead(a, h, true, MAX), a.length);
    assert.equal(h.dropCount, 2);
    h.reset(0);
    const b = Buffer.from(req('GET / HTTP/1.1', 'Host: a', 'X-1: 1', 'X-2: 2'), 'latin1');
    assert.equal(parseHead(b, h, true, MAX), b.length);
    assert.equal(h.dropCount, 0);
    assert.deepEqual([...h.drop.subarray(0, h.count)], [0, 0, 0]);
    assert.equal(h.conn, 0);
    assert.equal(h.connectionField, -1);
  });
});

describe('limits', () => {
  test('a head over maxHeadBytes is HeadTooLarge, complete or not; exactly at the limit is fine', () => {
    const head = req('GET / HTTP/1.1', 'Host: a', `X-Pad: ${'p'.repeat(200)}`);
    const n = head.length;
    assert.equal(parse(head, true, n).r, n);
    bad(head, ErrorCode.HeadTooLarge, true, n - 1);
    // Incomplete: no LF in sight and already too long.
    const partial = `GET /${'a'.repeat(300)}`;
    bad(partial, ErrorCode.HeadTooLarge, true, 256);
    assert.equal(parse(partial, true, 1024).r, NEED_MORE);
    // Complete lines within the limit but the head is not finished: too large once past it.
    bad(`GET / HTTP/1.1\r\nHost: a\r\nX: ${'v'.repeat(300)}`, ErrorCode.HeadTooLarge, true, 256);
    assert.equal(errorInfo(ErrorCode.HeadTooLarge).status, 431);
  });

  test('the limit counts from the head start, after a tolerated empty line', () => {
    const head = req('GET / HTTP/1.1', 'Host: a');
    assert.equal(parse('\r\n' + head, true, head.length).r, head.length + 2);
  });
});

describe('incremental parsing', () => {
  test('NEED_MORE until the blank line, then the same result as in one read', () => {
    const whole = Buffer.from(req('POST /p?q HTTP/1.1', 'Host: h', 'Content-Length: 3', 'Connection: close, x-a', 'X-A: 1'), 'latin1');
    const once = parse(whole);
    const h = new HeadInfo();
    h.reset(0);
    let r = NEED_MORE;
    for (let k = 1; k <= whole.length; k++) {
      r = parseHead(whole.subarray(0, k), h, true, MAX);
      if (k < whole.length) assert.equal(r, NEED_MORE, `at ${k}`);
    }
    assert.equal(r, whole.length);
    assert.deepEqual(summarizeHead(whole, h, 0, r), summarizeHead(once.buf, once.h, 0, once.r));
  });

  test('an error is found as soon as its line is complete', () => {
    const h = new HeadInfo();
    h.reset(0);
    assert.equal(parseHead(Buffer.from('GET / HTTP/1.1\r\nHost: a\r\nBad Name: 1', 'latin1'), h, true, MAX), NEED_MORE);
    assert.equal(parseHead(Buffer.from('GET / HTTP/1.1\r\nHost: a\r\nBad Name: 1\r', 'latin1'), h, true, MAX), NEED_MORE);
    assert.equal(parseHead(Buffer.from('GET / HTTP/1.1\r\nHost: a\r\nBad Name: 1\r\n', 'latin1'), h, true, MAX), PARSE_ERROR);
    assert.equal(h.error, ErrorCode.WhitespaceBeforeColon);
  });

  test('a head at a non-zero base is parsed in place with offsets relative to the base', () => {
    const prefix = 'xxxxxxxx';
    const head = req('GET /q HTTP/1.1', 'Host: a', 'X-B: 2');
    const buf = Buffer.from(prefix + head, 'latin1');
    const h = new HeadInfo();
    h.reset(prefix.length);
    assert.equal(parseHead(buf, h, true, MAX), buf.length);
    assert.equal(h.targetStart, 4);
    assert.equal(h.value(buf, 1), '2');
    assert.equal(h.name(buf, 0), 'host');
    assert.equal(h.find(buf, 'x-b'), 1);
  });
});

test('an HTTP/1.0 response with Transfer-Encoding has faulty framing and is refused', () => {
  bad('HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', ErrorCode.BadTransferEncoding, false);
  ok('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', false);
});
