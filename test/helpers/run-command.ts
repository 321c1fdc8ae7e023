// Runs a command to completion without blocking the event loop (servers of the test may live in
// this process and must keep answering); killed after timeoutMs.

import { spawn } from 'node:child_process';

export interface CommandResult {
  /** Exit status; null when killed at the timeout; -1 when it could not be started. */
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCommand(cmd: string, args: string[], timeoutMs = 15_000): Promise<CommandResult> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args);
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
    c.on('error', (e) => {
      clearTimeout(t);
      resolve({ code: -1, stdout, stderr: `${stderr}${String(e)}` });
    });
  });
}
