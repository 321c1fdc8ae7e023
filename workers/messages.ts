// Messages between the supervisor (main thread) and engine workers.

import type { EngineSnapshot, WorkerMetricsSnapshot } from '../engine';

/** A listening socket the worker accepts on: `fd` is the supervisor's descriptor (the worker dups it). */
export interface ListenerFd {
  name: string;
  /** -1 when the native helper is missing: then the (single) worker binds host:port itself. */
  fd: number;
  host: string;
  port: number;
}

export type ToWorker =
  | { type: 'config'; snapshot: EngineSnapshot; listeners: ListenerFd[] }
  | { type: 'metrics'; id: number }
  | { type: 'drain'; graceMs: number }
  | { type: 'crash' };

export type FromWorker =
  | { type: 'ack'; version: string }
  | { type: 'nack'; version: string; error: string }
  | { type: 'metrics'; id: number; snapshot: WorkerMetricsSnapshot }
  | { type: 'drained' }
  | { type: 'log'; level: 'info' | 'warn' | 'error'; msg: string; fields?: Record<string, unknown> };

export interface WorkerData {
  index: number;
  /** Open client connections per worker slot, for accept balancing. */
  counts: Int32Array;
  /** 1 while the worker in that slot is running. */
  alive: Int32Array;
  /** Path of the native socket helper, or '' when it is not available. */
  nativePath: string;
  /** Local ports of the process's upstream connections (one byte each), for loop checks of redirected connections. */
  ownPorts: Uint8Array;
}
