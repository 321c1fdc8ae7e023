// The import rules of DESIGN.md section 1, checked on the source tree: engine/ imports nothing of
// ours outside engine/; workers/ only engine/ and workers/; xds/ only engine/config and xds/.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../../..');

function sources(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    if (!fs.existsSync(d)) return;
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory() && e.name !== 'node_modules' && e.name !== 'build') walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
    }
  };
  walk(path.join(ROOT, dir));
  return out;
}

/** Relative imports of a file, resolved to repo-relative paths. */
function localImports(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:from\s+|import\s*\(\s*|require\(\s*)'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]);
  return specs.map((s) => path.relative(ROOT, path.resolve(path.dirname(file), s)));
}

const RULES: Record<string, (target: string) => boolean> = {
  engine: (t) => t.startsWith('engine/') || t === 'engine',
  workers: (t) => t.startsWith('engine') || t.startsWith('workers/'),
  xds: (t) => t.startsWith('engine/config') || t.startsWith('xds/'),
};

for (const [dir, allowed] of Object.entries(RULES)) {
  test(`${dir}/ imports only what DESIGN.md allows`, () => {
    const bad: string[] = [];
    for (const f of sources(dir)) {
      for (const t of localImports(f)) if (!allowed(t)) bad.push(`${path.relative(ROOT, f)} -> ${t}`);
    }
    assert.deepEqual(bad, []);
  });
}

test('the rule check itself sees imports (guards against a silently empty scan)', () => {
  const files = sources('engine');
  assert.ok(files.length > 10);
  assert.ok(files.some((f) => localImports(f).length > 0));
});

test('loading the engine does not load the config-file parsers (ajv, yaml) or the xDS stack', async () => {
  const { execFileSync } = await import('node:child_process');
  const engine = path.join(ROOT, 'dist/engine/index.js');
  const out = execFileSync(process.execPath, ['-e', `require(${JSON.stringify(engine)}); console.log(Object.keys(require.cache).join('\\n'))`], { encoding: 'utf8' });
  const loaded = out.split('\n').filter((f) => /node_modules[\\/](ajv|yaml|protobufjs|@grpc)[\\/]/.test(f) || f.includes('engine/config/file'));
  assert.deepEqual(loaded, []);
});
