'use strict';
// Builds the native socket helper with node-gyp at `npm install`. Bowline runs without it (workers
// then share one descriptor and connections may spread unevenly), so a failed build warns, not fails.
const { spawnSync } = require('child_process');
const path = require('path');

const dir = __dirname;
const gyp = process.env.npm_config_node_gyp;
const cmd = gyp ? process.execPath : 'node-gyp';
const args = gyp ? [gyp, 'rebuild'] : ['rebuild'];
const r = spawnSync(cmd, args, { cwd: dir, stdio: 'inherit' });
if (r.status !== 0) {
  console.warn(`\nbowline: could not build the native socket helper in ${path.relative(process.cwd(), dir) || dir}.\n` +
    'It needs python3, make, a C compiler (g++/gcc) and the Node.js headers (node-gyp downloads them, or set npm\'s nodedir).\n' +
    'Without it, worker threads share one listening descriptor and the kernel may spread connections unevenly.\n');
}
