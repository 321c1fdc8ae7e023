// Where the control plane's mesh comes from, behind one interface so that a Kubernetes source
// (Services and EndpointSlices with zones) can sit beside the file: a source emits whole, validated
// mesh snapshots, and reports a change it had to refuse without replacing the one in force.

import { EventEmitter } from 'node:events';
import { ConfigWatcher } from '../../engine/config/file/config-watcher';
import type { EngineSnapshot } from '../../engine/config/snapshot';

export interface MeshSourceEvents {
  mesh: [EngineSnapshot];
  invalid: [Error];
}

export interface MeshSource extends EventEmitter<MeshSourceEvents> {
  /** Starts watching and returns the first mesh (throws when there is none that is valid). */
  start(): EngineSnapshot;
  stop(): void;
  /** Where it reads from, for logs. */
  readonly description: string;
}

/** The mesh file (the same YAML language as `bowline proxy --config`), watched and applied live. */
export class FileMeshSource extends EventEmitter<MeshSourceEvents> implements MeshSource {
  private readonly watcher: ConfigWatcher;

  constructor(readonly file: string) {
    super();
    // A short debounce: an endpoint change should reach clients within a second, and generated
    // mesh files are written in one go (atomically renamed).
    this.watcher = new ConfigWatcher(file, { debounceMs: 20 });
  }

  get description(): string {
    return this.file;
  }

  start(): EngineSnapshot {
    let first: EngineSnapshot | undefined;
    let error: Error | undefined;
    this.watcher.once('snapshot', (s) => (first = s));
    this.watcher.once('invalid', (e) => (error = e));
    this.watcher.start();
    if (first === undefined) {
      this.watcher.stop();
      throw error ?? new Error(`${this.file}: no mesh`);
    }
    this.watcher.on('snapshot', (s) => this.emit('mesh', s));
    this.watcher.on('invalid', (e) => this.emit('invalid', e));
    return first;
  }

  stop(): void {
    this.watcher.stop();
  }
}
