// `bowline inject` as a command: a file or stdin in, manifests on stdout, one line per workload on
// stderr; usage errors exit 2, bad manifests 1 with the document named.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BOWLINE_BIN } from '../../helpers/proxy-process';

const ROOT = resolve(__dirname, '../../../..');
const FIXTURES = join(ROOT, 'test/fixtures/inject');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

function run(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BOWLINE_BIN, 'inject', ...args], { input, encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('stdin (-) in, the golden output on stdout, a line per workload on stderr', () => {
  const r = run(['-', '--image', 'ghcr.io/bowline-mesh/bowline:0.1.0'], readFileSync(join(FIXTURES, 'multi-document.yaml'), 'utf8'));
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, readFileSync(join(FIXTURES, 'multi-document.golden.yaml'), 'utf8'));
  assert.equal(r.stderr, 'deployment "api" injected\nstatefulset "cache" injected\n');
});

test('a file argument; the image defaults to this version', () => {
  const r = run([join(FIXTURES, 'opted-out.yaml')]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, readFileSync(join(FIXTURES, 'opted-out.yaml'), 'utf8'));
  assert.match(r.stderr, /^deployment "legacy" skipped: bowline\.io\/inject: disabled$/m);
  const p = run([join(FIXTURES, 'pod.yaml')]);
  assert.ok(p.stdout.includes(`image: ghcr.io/bowline-mesh/bowline:${VERSION}\n`), p.stdout);
});

test('flags reach the sidecar', () => {
  const r = run(['-', '--native-sidecar', '--proxy-workers', '2', '--proxy-cpu-request', '50m', '--proxy-cpu-limit', '1', '--proxy-memory-request', '96Mi', '--proxy-memory-limit', ''], readFileSync(join(FIXTURES, 'pod.yaml'), 'utf8'));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /  initContainers:\n  - name: bowline-init\n[\s\S]*  - name: bowline-proxy\n    image: [^\n]+\n    restartPolicy: Always\n/);
  assert.match(r.stdout, /    - --workers\n    - "2"\n/);
  assert.match(r.stdout, /    resources:\n      requests:\n        cpu: 50m\n        memory: 96Mi\n      limits:\n        cpu: "1"\n    securityContext:\n      runAsUser: 2102/);
});

test('a bad manifest: exit 1, the document named, nothing on stdout', () => {
  const r = run(['-'], 'kind: Service\nmetadata: {name: s}\n---\n- not an object\n');
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, 'bowline inject: stdin: document 2 (line 3): not a Kubernetes object (a list where a map was expected)\n');
  const missing = run([join(FIXTURES, 'no-such-file.yaml')]);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /^bowline inject: ENOENT/);
});

test('usage errors: exit 2 with the reason', () => {
  for (const [args, re] of [
    [[], /inject needs one FILE, or - for stdin/],
    [['-', '--proxy-memory-request', 'lots'], /--proxy-memory-request must be a Kubernetes quantity/],
    [['-', '--proxy-workers', '0'], /--proxy-workers must be a whole number >= 1/],
    [['-', '--no-such-flag'], /Unknown option '--no-such-flag'/],
  ] as const) {
    const r = run([...args], '');
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
});
