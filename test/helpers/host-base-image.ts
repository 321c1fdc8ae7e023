// A container base image made from this machine's own files, for building docker/Dockerfile without
// a registry: the running Node (where the official node images keep it, /usr/local/bin/node), a
// shell for RUN steps, getent/groupadd/useradd, iptables with its extensions, the shared libraries
// they load (from ldd), and a minimal /etc. It stands in for node:20-bookworm-slim with iptables
// already installed, so the Dockerfile's runtime stage runs without apt.

import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, copyFileSync, existsSync, mkdirSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** The PATH of the official node images, used to find the tools here and set in the image. */
export const IMAGE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function which(name: string): string {
  for (const d of IMAGE_PATH.split(':')) if (existsSync(join(d, name))) return join(d, name);
  throw new Error(`${name} is not installed on this machine (the local base image copies it)`);
}

/** The shared objects a binary loads, the dynamic loader included. */
function sharedLibraries(bin: string): string[] {
  const out = execFileSync('ldd', [bin], { encoding: 'utf8' });
  return [...out.matchAll(/(\/\S+) \(0x[0-9a-f]+\)/g)].map((m) => m[1]!);
}

/**
 * Lays the base out in `root` (an empty directory). Merged /usr like Debian 12, so the library paths
 * ldd prints (/lib/..., /usr/lib/...) land in one tree.
 */
export function writeHostBaseRootfs(root: string): void {
  for (const d of ['usr/bin', 'usr/sbin', 'usr/lib', 'usr/lib64', 'usr/local/bin', 'etc', 'tmp']) mkdirSync(join(root, d), { recursive: true });
  for (const d of ['bin', 'sbin', 'lib', 'lib64']) symlinkSync(`usr/${d}`, join(root, d));
  chmodSync(join(root, 'tmp'), 0o1777);
  const put = (from: string, to: string): void => {
    mkdirSync(dirname(join(root, to)), { recursive: true });
    copyFileSync(from, join(root, to));
  };

  const iptables = realpathSync(which('iptables'));
  const bins: [string, string][] = [
    [process.execPath, '/usr/local/bin/node'],
    [realpathSync('/bin/sh'), '/usr/bin/sh'],
    [which('getent'), '/usr/bin/getent'],
    [which('groupadd'), '/usr/sbin/groupadd'],
    [which('useradd'), '/usr/sbin/useradd'],
    [which('nologin'), '/usr/sbin/nologin'],
    [iptables, `/usr/sbin/${basename(iptables)}`],
  ];
  const libs = new Set<string>();
  for (const [from, to] of bins) {
    put(from, to);
    for (const l of sharedLibraries(from)) libs.add(l);
  }
  for (const l of libs) put(l, l);
  // iptables is one multi-call binary named by argv[0]; its matches and targets are plugins.
  for (const n of ['iptables', 'iptables-restore', 'iptables-save']) symlinkSync(basename(iptables), join(root, 'usr/sbin', n));
  const xtablesLib = [...libs].find((l) => basename(l).startsWith('libxtables.'));
  if (xtablesLib !== undefined && existsSync(join(dirname(xtablesLib), 'xtables'))) {
    cpSync(join(dirname(xtablesLib), 'xtables'), join(root, dirname(xtablesLib), 'xtables'), { recursive: true });
  }

  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n');
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  writeFileSync(join(root, 'etc/shadow'), 'root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n', { mode: 0o640 });
  writeFileSync(join(root, 'etc/gshadow'), 'root:*::\nnogroup:*::\n', { mode: 0o640 });
}
