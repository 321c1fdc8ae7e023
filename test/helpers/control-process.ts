// Starts `bowline control` as a real child process for integration tests and reads its ports.

import { type ChildProcess, spawn } from 'node:child_process';
import { sleep } from './admin-probe';
import { BOWLINE_BIN } from './proxy-process';

export interface Control {
  child: ChildProcess;
  port: number;
  adminPort: number;
  out: () => string;
  stop(): Promise<void>;
}

export async function startControl(meshFile: string, port = 0, extraArgs: string[] = []): Promise<Control> {
  const child = spawn(process.execPath, [BOWLINE_BIN, 'control', '--config', meshFile, '--listen', `127.0.0.1:${port}`, '--admin', '127.0.0.1:0', '--build-threads', '1', ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 15_000;
  for (;;) {
    const m = /xds on [^:]+:(\d+), admin on [^:]+:(\d+)/.exec(out);
    if (m) {
      return {
        child,
        port: Number(m[1]),
        adminPort: Number(m[2]),
        out: () => out,
        stop: async () => {
          if (child.exitCode === null) child.kill('SIGTERM');
          await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
        },
      };
    }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`bowline control did not start:\n${out}`);
    await sleep(25);
  }
}

