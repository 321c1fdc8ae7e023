// Starts `bowline proxy` as a real child process for integration tests, reads the bound ports from
// its stdout, and stops it (SIGTERM, then SIGKILL after a bound).

import { type ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';

export const BOWLINE_BIN = path.resolve(__dirname, '../../bin/bowline.js');

export interface ProxyProcess {
  child: ChildProcess;
  /** Bound ports by listener name. */
  ports: Record<string, number>;
  adminPort: number;
  stdout: () => string;
  stderr: () => string;
  /** SIGTERM and wait for exit (bounded); resolves with the exit code. */
  stop(timeoutMs?: number): Promise<number | null>;
  exited: Promise<number | null>;
}

export async function startProxy(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<ProxyProcess> {
  const child = spawn(process.execPath, ['--max-semi-space-size=1', BOWLINE_BIN, 'proxy', '--admin', '127.0.0.1:0', ...args], {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ports: Record<string, number> = {};
  let adminPort = 0;
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  for (;;) {
    const m = /admin on [^:]+:(\d+)/.exec(out);
    if (m) {
      adminPort = Number(m[1]);
      for (const l of out.matchAll(/listener (\S+) \(\w+\) on \S+:(\d+)/g)) ports[l[1]] = Number(l[2]);
      break;
    }
    if (child.exitCode !== null) throw new Error(`bowline exited (${child.exitCode}) before starting:\n${out}\n${err}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`bowline did not start in time:\n${out}\n${err}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  const stop = async (timeoutMs = 15_000): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const code = await exited;
    clearTimeout(t);
    return code;
  };
  return { child, ports, adminPort, stdout: () => out, stderr: () => err, stop, exited };
}

/** GET on the admin port; returns status and body. */
export async function admin(p: ProxyProcess, pathName: string, method = 'GET'): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${p.adminPort}${pathName}`, { method, signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: await res.text() };
}

/** Parses Prometheus text into a list of samples. */
export function parseMetrics(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const out: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`bad metrics line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2]) for (const l of m[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of the samples of a metric whose labels include `match`. */
export function metricSum(text: string, name: string, match: Record<string, string> = {}): number {
  return parseMetrics(text)
    .filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

/** Polls `check` until it returns true, failing after timeoutMs. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
