// Public surface of the engine (the data plane of one thread).
export { Engine, type EngineOptions } from './engine';
export { Inbound } from './io/inbound';
export type { Clock } from './clock';
export { systemClock } from './clock';
export * from './config/snapshot';
export { ErrorCode, errorInfo } from './errors';
export type { WorkerMetricsSnapshot, HttpSnapshot, TcpSnapshot, ResponseSnapshot } from './metrics/registry';
export { LATENCY_BUCKETS_MS } from './metrics/buckets';
export { HeadInfo, parseHead, NEED_MORE, PARSE_ERROR } from './http1/head-parser';
export { MergedLatency } from './metrics/latency';
