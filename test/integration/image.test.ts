// The container image (docker/Dockerfile), built and run with buildah, without a network or a Docker
// engine. The runtime stage is built as written, on a stand-in for node:20-bookworm-slim made from
// this machine's Node (test/helpers/host-base-image.ts). The build stage needs npm and Debian's tool
// chain from the network, so this checkout's built tree takes its place: a named build context
// `build` replaces the stage of that name, which buildah then skips. In the image: `bowline --help`;
// a proxy forwarding a request, as UID 2102, with two workers (so the native helper loads); the
// HEALTHCHECK command; SIGTERM and SIGINT with node as PID 1, no init process in front; and
// `bowline init` as root with NET_ADMIN, in a network namespace of its own.

import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { IMAGE_PATH, writeHostBaseRootfs } from '../helpers/host-base-image';
import { eventually } from '../helpers/proxy-process';
import { type CommandResult, runCommand } from '../helpers/run-command';
import { scriptedUpstream, type ScriptedUpstream } from '../helpers/scripted-upstream';

const REPO = resolve(__dirname, '../../..');
const PROXY_UID = 2102;
const tag = Math.random().toString(36).slice(2, 8);
const BASE = `localhost/bowline-test-base-${tag}`;
const IMAGE = `localhost/bowline-test-${tag}`;

const onPath = (name: string): string | undefined => IMAGE_PATH.split(':').map((d) => join(d, name)).find((p) => existsSync(p));
const skip = process.getuid?.() !== 0 ? 'buildah runs as root here' : onPath('buildah') === undefined ? 'buildah is not on PATH (.ci/run installs it)' : false;

interface ImageConfig {
  User: string;
  Env: string[];
  Entrypoint: string[];
  ExposedPorts?: Record<string, unknown>;
  Healthcheck?: { Test: string[] };
  StopSignal?: string;
}

let dir = '';
/** A private store (vfs: plain directories, no mounts to leak), removed at the end. */
const store = (): string[] => ['--root', join(dir, 'storage'), '--runroot', join(dir, 'run'), '--storage-driver', 'vfs'];
const buildah = (args: string[], timeoutMs = 60_000): Promise<CommandResult> => runCommand('buildah', [...store(), ...args], timeoutMs);

async function must(args: string[], timeoutMs?: number): Promise<string> {
  const r = await buildah(args, timeoutMs);
  assert.equal(r.code, 0, `buildah ${args.join(' ')}:\n${r.stderr}`);
  return r.stdout.trim();
}

/**
 * What the Dockerfile's build stage leaves in /app, from this checkout's build: dist without tests
 * and benchmarks (the build context leaves them out), the native helper, and the production
 * dependencies only (package-lock.json's packages not marked dev), without uWebSockets.js's binaries
 * for other platforms (as the build stage deletes them; 100 MB less to copy, three times).
 */
function writePrebuiltTree(app: string): void {
  const uws = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  const keep = (src: string): boolean => !/^uws_.*\.node$/.test(basename(src)) || basename(src) === uws;
  const copy = (rel: string): void => cpSync(join(REPO, rel), join(app, rel), { recursive: true, verbatimSymlinks: true, filter: keep });
  mkdirSync(app, { recursive: true });
  for (const f of ['package.json', 'protos', 'workers/native/build/Release/bowline_native.node']) copy(f);
  for (const e of readdirSync(join(REPO, 'dist'))) if (e !== 'test' && e !== 'perf') copy(join('dist', e));
  const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  for (const [key, p] of Object.entries(lock.packages)) {
    // Top-level packages only: nested ones come with their parent's folder.
    if (/^node_modules\/(@[^/]+\/)?[^/]+$/.test(key) && p.dev !== true && existsSync(join(REPO, key))) copy(key);
  }
}

/** The host PID of the image's node process whose command line contains `marker`. */
function findNode(marker: string): number | undefined {
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (/(^|\/)node$/.test(argv[0] ?? '') && argv.some((a) => a.includes(marker))) return Number(e);
  }
  return undefined;
}

function statusField(pid: number, field: string): string {
  const m = new RegExp(`^${field}:\\s*(.*)$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? m[1]!.trim() : '';
}

interface Running {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

const children: ChildProcess[] = [];

function start(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Running {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  return { child, out: () => out, exited };
}

/** Waits for a process's exit, bounded, so that a hang fails the test instead of stalling it. */
async function exitOf(r: Running, timeoutMs = 15_000): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((res) => (timer = setTimeout(() => res('late'), timeoutMs)));
  const code = await Promise.race([r.exited, late]);
  clearTimeout(timer);
  assert.notEqual(code, 'late', `no exit within ${timeoutMs} ms:\n${r.out()}`);
  return code as number | null;
}

describe('the container image (docker/Dockerfile, built with buildah)', { skip, timeout: 300_000 }, () => {
  let config: ImageConfig;
  let ctr = '';
  let up: ScriptedUpstream | undefined;
  const timings: string[] = [];
  const timed = async <T>(what: string, f: () => T | Promise<T>): Promise<T> => {
    const t0 = Date.now();
    const v = await f();
    timings.push(`${what} ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return v;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bowline-image-'));
    await timed('local base image', async () => {
      writeHostBaseRootfs(join(dir, 'rootfs'));
      const c = await must(['from', 'scratch']);
      await must(['copy', c, join(dir, 'rootfs'), '/']);
      await must(['config', '--env', `PATH=${IMAGE_PATH}`, c]);
      await must(['commit', '-q', c, BASE]);
      await must(['rm', c]);
    });
    await timed('prebuilt tree', () => writePrebuiltTree(join(dir, 'prebuilt', 'app')));
    await timed('buildah bud', () =>
      must(
        [
          'bud', '--format', 'docker', '--isolation', 'chroot', '--pull=never', '-q',
          '--build-arg', `BASE_IMAGE=${BASE}`, '--build-arg', `BUILD_IMAGE=${BASE}`,
          '--build-context', `build=${join(dir, 'prebuilt')}`,
          '-f', join(REPO, 'docker/Dockerfile'), '-t', IMAGE, REPO,
        ],
        240_000,
      ),
    );
    const inspected = JSON.parse(await must(['inspect', '--type', 'image', IMAGE])) as { Docker: { config: ImageConfig } };
    config = inspected.Docker.config;
    ctr = await timed('buildah from', () => must(['from', '--pull=false', IMAGE]));
    up = await scriptedUpstream('app');
  });

  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await up?.close();
    if (dir === '') return;
    await buildah(['rm', '--all']);
    await buildah(['rmi', '--all', '--force']);
    rmSync(dir, { recursive: true, force: true });
  });

  const run = (args: string[], opts: string[] = [], timeoutMs = 30_000): Promise<CommandResult> =>
    buildah(['run', '--isolation', 'chroot', ...opts, ctr, '--', ...config.Entrypoint, ...args], timeoutMs);

  test('UID 2102, an entry point with the interpreter settings of bin/bowline.ts, a HEALTHCHECK', (t) => {
    t.diagnostic(`timings: ${timings.join(', ')}`);
    assert.equal(config.User, `${PROXY_UID}:${PROXY_UID}`);
    // `#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=1`: the variables go to the
    // environment, the node flags in front of the script.
    const shebang = readFileSync(join(REPO, 'bin/bowline.ts'), 'utf8').split('\n')[0]!.split(/\s+/);
    const words = shebang.slice(shebang.indexOf('-S') + 1);
    const vars = words.filter((w) => /^\w+=/.test(w));
    const flags = words.slice(words.indexOf('node') + 1);
    assert.deepEqual(config.Entrypoint, ['node', ...flags, '/app/dist/bin/bowline.js']);
    for (const v of vars) assert.ok(config.Env.includes(v), `${v} in ${config.Env.join(' ')}`);
    assert.deepEqual(Object.keys(config.ExposedPorts ?? {}).sort(), ['4140/tcp', '4143/tcp', '4191/tcp']);
    assert.equal(config.Healthcheck?.Test[0], 'CMD');
    assert.equal(config.StopSignal, 'SIGTERM');
  });

  test('`bowline --help` and `bowline proxy --help` run in the image, with the protos it loads at run time', async () => {
    const help = await run(['--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /bowline control --config MESH_FILE/);
    const proxyHelp = await run(['proxy', '--help']);
    assert.equal(proxyHelp.code, 0, proxyHelp.stderr);
    assert.match(proxyHelp.stdout, /bowline proxy --listen HOST:PORT --to HOST:PORT/);
    // The files read at run time beside the code: Bowline's identity.proto and Envoy's protos.
    const protos = await buildah(['run', '--isolation', 'chroot', ctr, '--', 'node', '-e',
      "require('/app/dist/xds/common/identity-proto').identityRoot(); require('/app/dist/xds/common/protos').envoyRoot()"]);
    assert.equal(protos.code, 0, protos.stderr);
  });

  test('a proxy in the image forwards a request, runs as UID 2102 with the native helper, and passes its HEALTHCHECK', async () => {
    // buildah's chroot isolation shares this machine's network: the upstream is in this process.
    const marker = `127.0.0.1:${up!.port}`;
    const proxy = start('buildah', [...store(), 'run', '--isolation', 'chroot', ctr, '--', ...config.Entrypoint,
      'proxy', '--listen', '127.0.0.1:0', '--to', marker, '--workers', '2', '--admin', '127.0.0.1:0']);
    await eventually(() => /admin on/.test(proxy.out()) || proxy.child.exitCode !== null, 30_000, 'the proxy in the image to start');
    const port = Number(/listener \S+ \(\w+\) on [^:]+:(\d+)/.exec(proxy.out())?.[1]);
    const adminPort = Number(/admin on [^:]+:(\d+)/.exec(proxy.out())?.[1]);
    assert.ok(port > 0 && adminPort > 0, proxy.out());

    const res = await fetch(`http://127.0.0.1:${port}/through-the-image`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'app 200 /through-the-image\n');
    assert.ok(up!.requests.includes('/through-the-image'));

    const pid = findNode(marker);
    assert.ok(pid !== undefined, 'the proxy process');
    assert.match(statusField(pid, 'Uid'), /^2102\s+2102\s+2102\s+2102$/);
    assert.match(statusField(pid, 'Gid'), /^2102\s+2102\s+2102\s+2102$/);
    assert.notEqual(readlinkSync(`/proc/${pid}/root`), '/', 'the proxy runs in the image\'s root');

    // The image's own HEALTHCHECK command, pointed at this run's admin port.
    const health = (): Promise<CommandResult> =>
      buildah(['run', '--isolation', 'chroot', '--env', `BOWLINE_HEALTH_URL=http://127.0.0.1:${adminPort}/ready`, ctr, '--', ...config.Healthcheck!.Test.slice(1)]);
    assert.equal((await health()).code, 0);

    process.kill(pid, 'SIGTERM');
    assert.equal(await exitOf(proxy), 0, proxy.out());
    assert.match(proxy.out(), /SIGTERM: draining[\s\S]*"stopped"/);
    assert.notEqual((await health()).code, 0, 'the HEALTHCHECK fails once the proxy is gone');
  });

  test('as PID 1 with no init in front (as `docker run` starts it): SIGTERM drains a request in flight, SIGINT stops', async () => {
    const root = await must(['mount', ctr]);
    const env = Object.fromEntries(config.Env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
    // A new PID namespace whose first process (unshare's child, which execs chroot, then node) is
    // PID 1, in the image's files, as the image's user.
    const asPid1 = (args: string[]): Running =>
      start('unshare', ['--pid', '--fork', '--kill-child', `--mount-proc=${root}/proc`, onPath('chroot')!, `--userspec=${config.User}`, root, ...args], env);

    // The control: a node with no handlers of its own ignores SIGTERM as PID 1.
    const plainMarker = `bowline-pid1-${tag}`;
    const plain = asPid1(['node', '-e', `setTimeout(() => {}, 20000); // ${plainMarker}`]);
    let plainPid: number | undefined;
    await eventually(() => (plainPid = findNode(plainMarker)) !== undefined, 10_000, 'the plain node');
    assert.match(statusField(plainPid!, 'NSpid'), /\s1$/, 'PID 1 in its namespace');
    process.kill(plainPid!, 'SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(plain.child.exitCode, null, 'SIGTERM to a handler-less PID 1 is dropped');
    process.kill(plainPid!, 'SIGKILL');
    await exitOf(plain);

    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      const marker = `127.0.0.1:${up!.port}`;
      const proxy = asPid1([...config.Entrypoint, 'proxy', '--listen', '127.0.0.1:0', '--to', marker, '--workers', '2', '--admin', '127.0.0.1:0']);
      await eventually(() => /admin on/.test(proxy.out()) || proxy.child.exitCode !== null, 30_000, 'the proxy as PID 1 to start');
      const port = Number(/listener \S+ \(\w+\) on [^:]+:(\d+)/.exec(proxy.out())?.[1]);
      const pid = findNode(marker);
      assert.ok(pid !== undefined && port > 0, proxy.out());
      assert.match(statusField(pid, 'NSpid'), /\s1$/, 'PID 1 in its namespace');
      assert.match(statusField(pid, 'Uid'), /^2102\s/);

      const held = up!.held;
      const inFlight = fetch(`http://127.0.0.1:${port}/hold`).then(async (r) => ({ status: r.status, body: await r.text() }));
      await eventually(() => up!.held === held + 1, 10_000, 'the request to reach the upstream');
      process.kill(pid, sig);
      await eventually(() => proxy.out().includes(`${sig}: draining`), 10_000, `the proxy to take ${sig}`);
      up!.release();
      assert.deepEqual(await inFlight, { status: 200, body: 'app 200 /hold\n' });
      assert.equal(await exitOf(proxy), 0, proxy.out());
    }
    await must(['umount', ctr]);
  });

  test('`bowline init` in the image: as root with NET_ADMIN it installs the interception; the proxy UID cannot', async () => {
    // In a network namespace of its own (buildah's chroot isolation uses the caller's), never this machine's.
    const init = (opts: string[]): Promise<CommandResult> =>
      runCommand('unshare', ['--net', 'buildah', ...store(), 'run', '--isolation', 'chroot', ...opts, ctr, '--', ...config.Entrypoint, 'init', '--proxy-uid', String(PROXY_UID)], 30_000);
    const root = await init(['--user', '0:0', '--cap-add', 'CAP_NET_ADMIN']);
    assert.equal(root.code, 0, root.stderr);
    assert.match(root.stdout, /-A BOWLINE_OUTBOUND -m owner --uid-owner 2102 -j RETURN/);
    assert.match(root.stdout, /-A BOWLINE_OUTBOUND -p tcp -j REDIRECT --to-ports 4140/);
    assert.match(root.stdout, /-A BOWLINE_INBOUND -p tcp -j REDIRECT --to-ports 4143/);
    const proxyUser = await init([]);
    assert.notEqual(proxyUser.code, 0);
    assert.match(proxyUser.stderr, /bowline init: .*(Permission denied|must be root)/);
  });
});
