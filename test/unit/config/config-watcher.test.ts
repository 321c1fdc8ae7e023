// Unit tests of ConfigWatcher on real temp files: edits in place, atomic renames, invalid files,
// and unchanged content. Every wait is bounded.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EngineSnapshot } from '../../../engine/config/snapshot';
import { ConfigWatcher, type ConfigWatcherOptions } from '../../../engine/config/file/config-watcher';
import { ConfigError } from '../../../engine/config/file/yaml-config';

const WAIT_MS = 5000;

function config(port: number): string {
  return `
listeners:
  - name: out
    address: 127.0.0.1:4140
    routes: [r]
services:
  - name: web
    endpoints: [{ address: 127.0.0.1:${port} }]
routes:
  - name: r
    backendRefs: [{ name: web }]
`;
}

type Event = { kind: 'snapshot'; snapshot: EngineSnapshot } | { kind: 'invalid'; error: ConfigError };

/** Records every event so that a test can wait for the next one with a deadline. */
class Recorder {
  readonly events: Event[] = [];
  private waiter: (() => void) | undefined;

  constructor(watcher: ConfigWatcher) {
    watcher.on('snapshot', (snapshot) => this.push({ kind: 'snapshot', snapshot }));
    watcher.on('invalid', (error) => this.push({ kind: 'invalid', error }));
  }

  private push(e: Event): void {
    this.events.push(e);
    this.waiter?.();
  }

  /** Resolves with event number `index` (0-based), failing after `timeoutMs`. */
  async nth(index: number, timeoutMs = WAIT_MS): Promise<Event> {
    const deadline = Date.now() + timeoutMs;
    while (this.events.length <= index) {
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`timed out waiting for event #${index}; got ${JSON.stringify(this.events.map((e) => e.kind))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.events[index]!;
  }
}

function snapshotOf(e: Event): EngineSnapshot {
  assert.equal(e.kind, 'snapshot', e.kind === 'invalid' ? e.error.message : '');
  return (e as Extract<Event, { kind: 'snapshot' }>).snapshot;
}

function invalidOf(e: Event): ConfigError {
  assert.equal(e.kind, 'invalid');
  return (e as Extract<Event, { kind: 'invalid' }>).error;
}

const endpointPort = (s: EngineSnapshot): number => s.services[0]!.endpoints[0]!.address.port;

async function withWatcher(
  options: ConfigWatcherOptions,
  body: (dir: string, file: string, watcher: ConfigWatcher, rec: Recorder) => Promise<void>,
  initial = config(8081),
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bowline-watch-'));
  const file = join(dir, 'mesh.yaml');
  writeFileSync(file, initial);
  const watcher = new ConfigWatcher(file, options);
  const rec = new Recorder(watcher);
  try {
    await body(dir, file, watcher, rec);
  } finally {
    watcher.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('start() emits the initial snapshot synchronously as file-1', async () => {
  await withWatcher({}, async (_dir, _file, watcher, rec) => {
    watcher.start();
    assert.equal(rec.events.length, 1);
    const s = snapshotOf(rec.events[0]!);
    assert.equal(s.version, 'file-1');
    assert.equal(endpointPort(s), 8081);
    assert.equal(watcher.current, s);
  });
});

test('an edit in place emits a new snapshot with the next version', async () => {
  await withWatcher({ debounceMs: 20, pollMs: 200 }, async (_dir, file, watcher, rec) => {
    watcher.start();
    writeFileSync(file, config(8082));
    const s = snapshotOf(await rec.nth(1));
    assert.equal(s.version, 'file-2');
    assert.equal(endpointPort(s), 8082);
  });
});

test('an atomic rename over the file emits a new snapshot', async () => {
  await withWatcher({ debounceMs: 20, pollMs: 200 }, async (dir, file, watcher, rec) => {
    watcher.start();
    const tmp = join(dir, '.mesh.yaml.tmp');
    writeFileSync(tmp, config(9000));
    renameSync(tmp, file);
    const s = snapshotOf(await rec.nth(1));
    assert.equal(s.version, 'file-2');
    assert.equal(endpointPort(s), 9000);

    // And again: the watch survives the replaced file.
    writeFileSync(tmp, config(9001));
    renameSync(tmp, file);
    assert.equal(endpointPort(snapshotOf(await rec.nth(2))), 9001);
    assert.equal(snapshotOf(rec.events[2]!).version, 'file-3');
  });
});

test('an invalid file emits invalid, keeps the last good snapshot, and a good file recovers', async () => {
  await withWatcher({ debounceMs: 20, pollMs: 200 }, async (_dir, file, watcher, rec) => {
    watcher.start();
    writeFileSync(file, config(8081).replace('name: web', 'name: wbe'));
    const err = invalidOf(await rec.nth(1));
    assert.ok(err instanceof ConfigError);
    assert.equal(err.file, file);
    assert.equal(err.field, 'routes[0].backendRefs[0].name');
    assert.equal(watcher.current?.version, 'file-1');

    writeFileSync(file, 'listeners: [\n');
    const syntax = invalidOf(await rec.nth(2));
    assert.ok(syntax.line !== undefined, syntax.message);

    writeFileSync(file, config(8083));
    const s = snapshotOf(await rec.nth(3));
    // Versions count good snapshots only.
    assert.equal(s.version, 'file-2');
    assert.equal(endpointPort(s), 8083);
    assert.equal(watcher.current, s);
  });
});

test('an invalid file at start is reported, and a later good file is loaded', async () => {
  await withWatcher(
    { debounceMs: 20, pollMs: 200 },
    async (_dir, file, watcher, rec) => {
      watcher.start();
      assert.equal(invalidOf(rec.events[0]!).field, 'listeners');
      assert.equal(watcher.current, undefined);
      writeFileSync(file, config(8084));
      assert.equal(snapshotOf(await rec.nth(1)).version, 'file-1');
    },
    'listeners: []\nservices: []\n',
  );
});

test('unchanged content is not emitted again', async () => {
  await withWatcher({ debounceMs: 20, pollMs: 50 }, async (_dir, file, watcher, rec) => {
    watcher.start();
    writeFileSync(file, config(8081)); // same bytes, new mtime
    const later = new Date(Date.now() + 5000);
    utimesSync(file, later, later);
    // Then a real change, to know that the identical write was seen and skipped, not just missed.
    await new Promise((resolve) => setTimeout(resolve, 300));
    writeFileSync(file, config(8085));
    const s = snapshotOf(await rec.nth(1));
    assert.equal(endpointPort(s), 8085);
    assert.equal(s.version, 'file-2');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(rec.events.length, 2, JSON.stringify(rec.events.map((e) => e.kind)));
  });
});

test('a missing file at start is reported as invalid, not thrown', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bowline-watch-'));
  const file = join(dir, 'later.yaml');
  const watcher = new ConfigWatcher(file, { debounceMs: 20, pollMs: 100 });
  const rec = new Recorder(watcher);
  try {
    watcher.start();
    const err = invalidOf(rec.events[0]!);
    assert.match(err.message, /cannot read the file: ENOENT/);
    writeFileSync(file, config(8086));
    assert.equal(endpointPort(snapshotOf(await rec.nth(1))), 8086);
  } finally {
    watcher.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('nothing is emitted after stop()', async () => {
  await withWatcher({ debounceMs: 20, pollMs: 50 }, async (_dir, file, watcher, rec) => {
    watcher.start();
    watcher.stop();
    writeFileSync(file, config(8087));
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(rec.events.length, 1);
  });
});

test('polling alone sees edits in place and renames', async () => {
  await withWatcher({ debounceMs: 10, pollMs: 50, fsWatch: false }, async (dir, file, watcher, rec) => {
    watcher.start();
    writeFileSync(file, config(18081));
    assert.equal(endpointPort(snapshotOf(await rec.nth(1))), 18081);

    const tmp = join(dir, 'next.yaml');
    writeFileSync(tmp, config(18082));
    renameSync(tmp, file);
    const s = snapshotOf(await rec.nth(2));
    assert.equal(endpointPort(s), 18082);
    assert.equal(s.version, 'file-3');
  });
});
