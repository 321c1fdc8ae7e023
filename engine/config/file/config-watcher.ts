// Watches the YAML config file and emits a new EngineSnapshot whenever its content changes.
// Runs on the main thread. Editors and `mv` replace the file rather than write it in place, so the
// watch is on the file's directory (filtered by name), with slow stat() polling as a fallback for
// file systems where fs.watch misses events (network mounts, some containers).

import { EventEmitter } from 'node:events';
import { stat, readFile } from 'node:fs/promises';
import { readFileSync, statSync, watch, type FSWatcher, type Stats } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { EngineSnapshot } from '../snapshot';
import { ConfigError, parseConfigText } from './yaml-config';

export interface ConfigWatcherOptions {
  /** Quiet time after the last change event before the file is read (editors write in bursts). */
  debounceMs?: number;
  /** Interval of the stat() fallback; 0 turns polling off. */
  pollMs?: number;
  /** false relies on polling alone (file systems where fs.watch is unreliable). Default true. */
  fsWatch?: boolean;
}

export interface ConfigWatcherEvents {
  /** A valid config with new content; versions are "file-1", "file-2", ... */
  snapshot: [EngineSnapshot];
  /** The file changed but cannot be used; the last good snapshot stays in force. */
  invalid: [ConfigError];
}

/**
 * Emits 'snapshot' and 'invalid', never 'error' (an unhandled 'error' would kill the process).
 * start() reads the file once synchronously and emits the result before it returns, so attach
 * listeners first. A file whose bytes equal the last read is not emitted again.
 */
export class ConfigWatcher extends EventEmitter<ConfigWatcherEvents> {
  /** As given; used in messages. */
  readonly file: string;
  /** Absolute, so a later chdir does not matter. */
  private readonly path: string;
  private readonly debounceMs: number;
  private readonly pollMs: number;
  private readonly useFsWatch: boolean;
  private fsWatcher: FSWatcher | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private running = false;
  private reloading = false;
  private reloadAgain = false;
  private lastContent: Buffer | undefined;
  private lastStat: { mtimeMs: number; size: number; ino: number } | undefined;
  private versionCount = 0;
  private lastGood: EngineSnapshot | undefined;
  /** Stats of the files the config names (identity PEM files): a change there re-reads the config. */
  private extraStamp = '';
  private extraForced = false;

  constructor(file: string, options: ConfigWatcherOptions = {}) {
    super();
    this.file = file;
    this.path = resolve(file);
    this.debounceMs = options.debounceMs ?? 100;
    this.pollMs = options.pollMs ?? 1000;
    this.useFsWatch = options.fsWatch ?? true;
  }

  /** The last valid snapshot emitted, if any. */
  get current(): EngineSnapshot | undefined {
    return this.lastGood;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    if (this.useFsWatch) this.startFsWatch();
    if (this.pollMs > 0) {
      this.pollTimer = setInterval(() => void this.poll(), this.pollMs);
      this.pollTimer.unref();
    }
    let content: Buffer | undefined;
    let readError: Error | undefined;
    try {
      // Synchronous on purpose: the caller learns at once whether the initial config is usable.
      this.lastStat = statKey(statSync(this.path));
      content = readFileSync(this.path);
    } catch (err) {
      readError = err as Error;
    }
    this.apply(content, readError);
  }

  stop(): void {
    this.running = false;
    this.fsWatcher?.close();
    this.fsWatcher = undefined;
    clearInterval(this.pollTimer);
    clearTimeout(this.debounceTimer);
    this.pollTimer = undefined;
    this.debounceTimer = undefined;
  }

  private startFsWatch(): void {
    const name = basename(this.path);
    try {
      const w = watch(dirname(this.path), { persistent: false }, (_event, changed) => {
        // Some platforms give no file name: then any change in the directory may be ours.
        if (changed === null || changed === name) this.scheduleReload();
      });
      // E.g. the directory was removed: polling carries on alone.
      w.on('error', () => {
        w.close();
        if (this.fsWatcher === w) this.fsWatcher = undefined;
      });
      this.fsWatcher = w;
    } catch {
      // No directory, or out of inotify watches: polling is the fallback.
      this.fsWatcher = undefined;
    }
  }

  private async poll(): Promise<void> {
    let s: Stats | undefined;
    try {
      s = await stat(this.path);
    } catch {
      s = undefined; // missing for now; a reappearance changes the stat
    }
    if (!this.running) return;
    const seen = s === undefined ? undefined : statKey(s);
    const before = this.lastStat;
    this.lastStat = seen;
    const changed = seen?.mtimeMs !== before?.mtimeMs || seen?.size !== before?.size || seen?.ino !== before?.ino;
    if (changed && seen !== undefined) this.scheduleReload();
    const extra = this.lastGood?.identity?.files;
    if (extra !== undefined && extra.length > 0) {
      // Certificates rotated by another tool (cert-manager, SPIRE, a script) take effect without an edit of the config.
      const stamp = await extraStamp(extra);
      if (!this.running) return;
      if (stamp !== this.extraStamp) {
        this.extraStamp = stamp;
        this.extraForced = true;
        this.lastContent = undefined;
        this.scheduleReload();
      }
    }
    if (this.useFsWatch && this.fsWatcher === undefined && this.running) this.startFsWatch(); // the directory may be back
  }

  private scheduleReload(): void {
    if (!this.running) return;
    clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => void this.reload(), this.debounceMs);
    this.debounceTimer.unref();
  }

  private async reload(): Promise<void> {
    this.debounceTimer = undefined;
    if (this.reloading) {
      this.reloadAgain = true; // a change arrived while reading: read once more afterwards
      return;
    }
    this.reloading = true;
    try {
      let content: Buffer | undefined;
      let readError: Error | undefined;
      try {
        content = await readFile(this.path);
      } catch (err) {
        readError = err as Error;
      }
      if (this.running) this.apply(content, readError);
    } finally {
      this.reloading = false;
    }
    if (this.reloadAgain && this.running) {
      this.reloadAgain = false;
      await this.reload();
    }
  }

  private apply(content: Buffer | undefined, readError: Error | undefined): void {
    if (content === undefined) {
      // A missing file during an editor's delete-and-create shows up here; it is reported, and
      // the file's return is read like any other change.
      const reason = `cannot read the file: ${readError?.message ?? 'unknown error'}`;
      this.lastContent = undefined;
      this.emit('invalid', new ConfigError(this.file, [{ field: '', reason }]));
      return;
    }
    if (this.lastContent !== undefined && this.lastContent.equals(content)) return;
    this.lastContent = content;
    let snapshot: EngineSnapshot;
    try {
      snapshot = parseConfigText(content.toString('utf8'), this.file, `file-${this.versionCount + 1}`);
    } catch (err) {
      const error = err instanceof ConfigError ? err : new ConfigError(this.file, [{ field: '', reason: String(err) }]);
      // Files caught half-rotated (a new key beside the old certificate): looked at again at the next poll.
      if (this.extraForced) this.extraStamp = '';
      this.extraForced = false;
      this.emit('invalid', error);
      return;
    }
    this.extraForced = false;
    this.versionCount++;
    this.lastGood = snapshot;
    if (snapshot.identity?.files !== undefined && this.extraStamp === '') void extraStamp(snapshot.identity.files).then((st) => (this.extraStamp = st));
    this.emit('snapshot', snapshot);
  }
}

async function extraStamp(files: string[]): Promise<string> {
  const parts = await Promise.all(
    files.map(async (f) => {
      try {
        const st = await stat(f);
        return `${st.mtimeMs}:${st.size}:${st.ino}`;
      } catch {
        return '-';
      }
    }),
  );
  return parts.join('|');
}

function statKey(s: Stats): { mtimeMs: number; size: number; ino: number } {
  return { mtimeMs: s.mtimeMs, size: s.size, ino: s.ino };
}
