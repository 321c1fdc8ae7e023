// The one-line mode's snapshot (`bowline proxy --listen ... --to ...`): its upstream protocol (from
// --upstream-protocol, default auto) and balancer on the one service, valid as a whole; and the
// command's answer to a bad --upstream-protocol (exit 2, what is allowed, before anything starts).

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { validateSnapshot } from '../../../../engine/config/validate-snapshot';
import { isUpstreamProtocol, oneLineSnapshot } from '../../../../workers/config/one-line';

// Compiled to dist/test/unit/workers/config; the command is dist/bin/bowline.js.
const BIN = resolve(__dirname, '../../../../bin/bowline.js');

const base = { listen: { host: '127.0.0.1', port: 4140 }, to: [{ address: { host: '127.0.0.1', port: 8080 }, zone: '' }] };

test('the upstream protocol lands on the one service, auto unless given', () => {
  assert.equal(oneLineSnapshot(base).services[0]!.protocol, 'auto');
  for (const p of ['http1', 'h2c', 'auto'] as const) {
    const s = oneLineSnapshot({ ...base, upstreamProtocol: p, balancer: 'round-robin' });
    assert.equal(s.services.length, 1);
    assert.equal(s.services[0]!.protocol, p);
    assert.equal(s.services[0]!.balancer, 'round-robin');
    assert.deepEqual(validateSnapshot(s), [], p);
  }
});

test('isUpstreamProtocol takes exactly http1, h2c and auto', () => {
  for (const v of ['http1', 'h2c', 'auto']) assert.equal(isUpstreamProtocol(v), true, v);
  for (const v of ['', 'h2', 'HTTP1', 'http2', 'h2c ', 'detect']) assert.equal(isUpstreamProtocol(v), false, JSON.stringify(v));
});

function bowline(...args: string[]): { status: number | null; stderr: string; stdout: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 10_000 });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

test('a bad --upstream-protocol is refused with what is allowed, before anything is bound', () => {
  const r = bowline('proxy', '--listen', '127.0.0.1:0', '--to', '127.0.0.1:1', '--workers', '1', '--upstream-protocol', 'h2');
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /^bowline: --upstream-protocol must be http1, h2c or auto, got "h2"\n/);
  assert.doesNotMatch(r.stdout, /admin on/);
});

test('--upstream-protocol belongs to the one-line mode: refused with --config', () => {
  const r = bowline('proxy', '--config', 'mesh.yaml', '--upstream-protocol', 'h2c');
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /^bowline: --upstream-protocol is for the one-line mode \(--listen\/--to\); a config file sets "protocol" per service\n/);
});

test('the usage text documents --upstream-protocol', () => {
  const r = bowline('proxy', '--help');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /--upstream-protocol P\s+http1, h2c \(HTTP\/2 with prior knowledge\) or auto/);
});
