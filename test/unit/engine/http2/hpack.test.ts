// HPACK against python3-hpack (the library python3-h2 uses): blocks it encodes (Huffman, dynamic
// table, size updates) decode to the same fields here, and blocks written here decode there; plus
// the malformed cases a decoder must refuse.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { HpackDecoder, HpackEncoder, HpackError, huffmanDecode } from '../../../../engine/http2/codec/hpack';

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

function python(script: string, input: string): string {
  const r = spawnSync(PYTHON, ['-c', script], { input, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

const SETS: [string, string][][] = [
  [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['user-agent', 'curl/7.88.1 (x86_64) bowline-test'], ['accept', '*/*']],
  [[':method', 'POST'], [':scheme', 'http'], [':path', '/api/v1/items?x=1&y=%20z'], [':authority', 'www.example.com'], ['content-type', 'application/grpc'], ['te', 'trailers'], ['grpc-timeout', '250m']],
  [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['user-agent', 'curl/7.88.1 (x86_64) bowline-test'], ['cookie', 'a=1'], ['cookie', 'b=2'], ['x-bytes', 'caf\u00e9 \u00ff~\u0001']],
  [[':status', '404'], ['x-long', 'L'.repeat(5000)], ['x-empty', '']],
];

test('blocks from python3-hpack (Huffman, indexing, a table size update) decode to the same fields, the dynamic table shared across blocks', () => {
  const out = python(
    `
import json, sys
from hpack import Encoder
sets = json.load(sys.stdin)
e = Encoder()
blocks = []
for i, s in enumerate(sets):
    if i == 2:
        e.header_table_size = 256
    blocks.append(e.encode([(n, v) for n, v in s], huffman=True).hex())
print(json.dumps(blocks))
`,
    JSON.stringify(SETS),
  );
  const blocks = JSON.parse(out) as string[];
  const d = new HpackDecoder(4096);
  blocks.forEach((hex, i) => {
    const b = Buffer.from(hex, 'hex');
    const got: [string, string][] = [];
    assert.equal(d.decode(b, 0, b.length, 1 << 20, (n, v) => got.push([n, v])), HpackError.None, `block ${i}`);
    // python3-hpack encodes str as UTF-8; our decoder reads bytes as latin1 (field values are octets).
    assert.deepEqual(got, SETS[i]!.map(([n, v]) => [n, Buffer.from(v, 'utf8').toString('latin1')]), `block ${i}`);
  });
});

test('blocks written here decode in python3-hpack', () => {
  const e = new HpackEncoder();
  const blocks: string[] = [];
  for (const s of [[[':status', '200'], ['content-type', 'text/plain'], ['x-custom', 'v']], [[':status', '418'], ['set-cookie', 'a=1'], ['x-long', 'y'.repeat(300)]]] as [string, string][][]) {
    e.begin();
    for (const [n, v] of s) {
      if (n === ':status') e.status(Number(v));
      else e.field(n, v);
    }
    blocks.push(e.end().toString('hex'));
  }
  const out = python(
    `
import json, sys
from hpack import Decoder
d = Decoder()
print(json.dumps([[[n.decode() if isinstance(n, bytes) else n, v.decode() if isinstance(v, bytes) else v] for n, v in d.decode(bytes.fromhex(b), raw=True)] for b in json.load(sys.stdin)]))
`,
    JSON.stringify(blocks),
  );
  assert.deepEqual(JSON.parse(out), [
    [[':status', '200'], ['content-type', 'text/plain'], ['x-custom', 'v']],
    [[':status', '418'], ['set-cookie', 'a=1'], ['x-long', 'y'.repeat(300)]],
  ]);
});

test('malformed blocks are refused: bad index, truncated string, EOS in Huffman data, bad padding, late size update, oversized list', () => {
  const bad = (hex: string, max = 1 << 20): HpackError => {
    const b = Buffer.from(hex, 'hex');
    return new HpackDecoder().decode(b, 0, b.length, max, () => {});
  };
  assert.equal(bad('80'), HpackError.Compression, 'index 0');
  assert.equal(bad('be'), HpackError.Compression, 'dynamic index 62 with an empty table');
  assert.equal(bad('400a'), HpackError.Compression, 'name length past the end');
  assert.equal(bad('82' + '3fe21f'), HpackError.Compression, 'table size update after a field');
  assert.equal(bad('3fe21f'), HpackError.Compression, 'table size update above the settings (4096)');
  assert.equal(bad('ff' + 'ffffffff0f'), HpackError.Compression, 'integer past 2^31');
  // "www.example.com" Huffman-coded (RFC 7541 C.4.1) decodes; with one more all-ones byte the
  // padding is 8 bits or more, which is an error.
  const good = Buffer.from('f1e3c2e5f23a6ba0ab90f4ff', 'hex');
  assert.equal(huffmanDecode(good, 0, good.length), 'www.example.com');
  const padded = Buffer.concat([good, Buffer.from([0xff])]);
  assert.equal(huffmanDecode(padded, 0, padded.length), null);
  assert.equal(huffmanDecode(Buffer.from([0xff, 0xff, 0xff, 0xff]), 0, 4), null, 'EOS');
  // 4 fields of 10 bytes + 32 each: over a 120-byte limit.
  const lit = '000161' + '0a' + '61'.repeat(10);
  assert.equal(bad(lit.repeat(4), 120), HpackError.TooLarge);
  assert.equal(bad(lit.repeat(2), 120), HpackError.None);
});
