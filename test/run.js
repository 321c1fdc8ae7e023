'use strict';
// Runs every compiled test file (dist/test/**/*.test.js) with node's test runner. Node 20 takes no
// glob patterns, so the files are listed here; `node test/run.js unit` narrows to a subfolder.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..', 'dist', 'test', process.argv[2] ?? '');
const files = [];
(function walk(d) {
  for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name.endsWith('.test.js')) files.push(p);
  }
})(root);
files.sort();
if (files.length === 0) {
  console.error(`no test files under ${root}`);
  process.exit(1);
}
// A watchdog: a hung test file must fail the run, not stall CI (the whole suite takes a few minutes).
const limitMs = Number(process.env.BOWLINE_TEST_LIMIT_MS ?? 15 * 60 * 1000);
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...files], { stdio: 'inherit', timeout: limitMs, killSignal: 'SIGKILL' });
if (r.error || r.signal) {
  console.error(`test run stopped: ${r.error ? r.error.message : `killed by ${r.signal}`} (limit ${limitMs} ms)`);
  process.exit(1);
}
process.exit(r.status ?? 1);
