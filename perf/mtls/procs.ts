// Processes of the mTLS benchmark: every server and load client runs in its own session (detached,
// so pid = process group = session id), pinned with taskset, and is stopped by its group id, never
// by name. Also the CPU accounting: ticks per session from /proc, and what the rest of the machine used.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';

export const HZ = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
const hasTaskset = spawnSync('sh', ['-c', 'command -v taskset'], { stdio: 'ignore' }).status === 0;

export interface Group {
  name: string;
  /** pid = process group id = session id. */
  pid: number;
  child: ChildProcess;
  exited: boolean;
}

const groups = new Map<number, Group>();

function pinned(cpu: string, argv: string[]): [string, string[]] {
  return hasTaskset && cpu !== '' ? ['taskset', ['-c', cpu, ...argv]] : [argv[0]!, argv.slice(1)];
}

/** Starts a long-lived server in its own session; stdout and stderr go to `logFile`. */
export function startGroup(name: string, cpu: string, argv: string[], logFile: string, env: NodeJS.ProcessEnv = {}): Group {
  const fd = openSync(logFile, 'a');
  const [cmd, args] = pinned(cpu, argv);
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], env: { ...process.env, ...env } });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`${name}: could not start ${argv.join(' ')}`);
  const g: Group = { name, pid: child.pid, child, exited: false };
  child.once('exit', () => (g.exited = true));
  child.once('error', () => (g.exited = true));
  groups.set(g.pid, g);
  return g;
}

export interface ClientResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs a load client to completion in its own session (so that a stop on exit reaches it too). */
export function runClient(cpu: string, argv: string[], timeoutMs: number): Promise<ClientResult> {
  const [cmd, args] = pinned(cpu, argv);
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const g: Group = { name: argv[0]!, pid: child.pid ?? -1, child, exited: false };
  if (g.pid > 0) groups.set(g.pid, g);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(g, 'SIGKILL');
  }, timeoutMs);
  return new Promise((resolve) => {
    child.once('error', (e) => {
      clearTimeout(timer);
      groups.delete(g.pid);
      resolve({ code: -1, stdout, stderr: `${stderr}${e.message}\n`, timedOut });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      g.exited = true;
      groups.delete(g.pid);
      resolve({ code, stdout, stderr, timedOut });
    });
  });
}

function killGroup(g: Group, sig: NodeJS.Signals): void {
  if (g.pid <= 0) return;
  try {
    process.kill(-g.pid, sig);
  } catch {
    // already gone
  }
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM to every group we started, then SIGKILL to what is left after `graceMs`. */
export async function stopAll(graceMs = 3000): Promise<void> {
  const all = [...groups.values()];
  for (const g of all.reverse()) killGroup(g, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (all.some((g) => groupAlive(g.pid)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const g of all) if (groupAlive(g.pid)) killGroup(g, 'SIGKILL');
  groups.clear();
}

/** For the exit path (no event loop left): SIGKILL to every group at once. */
export function killAllNow(): void {
  for (const g of groups.values()) killGroup(g, 'SIGKILL');
  groups.clear();
}

export const alive = (g: Group): boolean => !g.exited && groupAlive(g.pid);

// ------------------------------------------------------------------ CPU accounting

export interface Snap {
  ns: bigint;
  /** user+nice+system+irq+softirq ticks of all CPUs. */
  busy: number;
  /** This process's own ticks plus those of its waited-for children (the load clients). */
  self: number;
  /** Ticks per session id we asked for. */
  sessions: Map<number, number>;
}

const statFields = (line: string): string[] => line.slice(line.lastIndexOf(')') + 2).split(' ');

export function snap(sids: number[]): Snap {
  const want = new Set(sids);
  const sessions = new Map<number, number>(sids.map((s) => [s, 0]));
  let busy = 0;
  const stat = readFileSync('/proc/stat', 'utf8');
  const cpu = /^cpu (.*)$/m.exec(stat);
  if (cpu) {
    const v = cpu[1]!.trim().split(/\s+/).map(Number);
    busy = v[0]! + v[1]! + v[2]! + v[5]! + v[6]!;
  }
  let self = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let line: string;
    try {
      line = readFileSync(`/proc/${d}/stat`, 'utf8');
    } catch {
      continue;
    }
    const f = statFields(line);
    // f[0] = state (field 3): session is field 6, utime/stime fields 14/15, cutime/cstime 16/17.
    const sid = Number(f[3]);
    const ticks = Number(f[11]) + Number(f[12]);
    if (want.has(sid)) sessions.set(sid, sessions.get(sid)! + ticks);
    if (Number(d) === process.pid) self = ticks + Number(f[13]) + Number(f[14]);
  }
  return { ns: process.hrtime.bigint(), busy, self, sessions };
}

export interface CpuUse {
  elapsedS: number;
  /** % of one core, per session id. */
  sessionPct: Map<number, number>;
  /** % of one core used by the load clients (and this runner). */
  clientPct: number;
  /** % of one core used by everything outside this benchmark. */
  otherPct: number;
}

export function cpuUse(a: Snap, b: Snap): CpuUse {
  const elapsedS = Math.max(1e-9, Number(b.ns - a.ns) / 1e9);
  const pct = (ticks: number): number => (100 * ticks) / HZ / elapsedS;
  const sessionPct = new Map<number, number>();
  let ours = b.self - a.self;
  for (const [sid, t] of b.sessions) {
    const d = t - (a.sessions.get(sid) ?? 0);
    ours += d;
    sessionPct.set(sid, pct(d));
  }
  return { elapsedS, sessionPct, clientPct: pct(b.self - a.self), otherPct: Math.max(0, pct(b.busy - a.busy - ours)) };
}

/** Peak RSS (VmHWM, KiB) summed over a session's processes. */
export function sessionPeakRssKib(sid: number): number {
  let total = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (Number(statFields(readFileSync(`/proc/${d}/stat`, 'utf8'))[3]) !== sid) continue;
      const m = /^VmHWM:\s+(\d+)/m.exec(readFileSync(`/proc/${d}/status`, 'utf8'));
      if (m) total += Number(m[1]);
    } catch {
      // exited meanwhile
    }
  }
  return total;
}
