// Loads the native socket helper (workers/native), which creates listening sockets outside libuv and
// duplicates descriptors. Absent helper: null, with the reason, so callers can explain what is missing.

import * as fs from 'node:fs';
import * as path from 'node:path';

export interface NativeSocket {
  listenTcp(host: string, port: number, backlog: number): number;
  dupFd(fd: number): number;
  closeFd(fd: number): void;
  localPort(fd: number): number;
  /** SO_ORIGINAL_DST of an accepted socket: [address, port], or null when the kernel knows none. */
  originalDst(fd: number): [string, number] | null;
}

/** Where `npm install` builds the helper, relative to this file's compiled location (dist/workers). */
export function nativeHelperPath(): string {
  const candidates = [
    path.resolve(__dirname, '../../workers/native/build/Release/bowline_native.node'),
    path.resolve(__dirname, 'native/build/Release/bowline_native.node'),
  ];
  return candidates.find((p) => fs.existsSync(p)) ?? candidates[0];
}

export function loadNativeSocket(p = nativeHelperPath()): { native: NativeSocket | null; error: string } {
  try {
    return { native: require(p) as NativeSocket, error: '' };
  } catch (e) {
    return {
      native: null,
      error:
        `the native socket helper is missing (${p}): ${(e as Error).message.split('\n')[0]}. ` +
        'Build it with `npm rebuild` (needs python3, make and a C compiler).',
    };
  }
}
