// A service as one worker runs it: its endpoints (shared with the pool registry, so that connections
// and health survive reloads), its balancer and queue, and the policies of requests sent to it.

import type { Balancer } from './balance/balancer';
import type { RequestQueue } from './balance/request-queue';
import type { ServiceSnapshot, TimeoutSettings } from './config/snapshot';
import type { Counter } from './metrics/registry';
import type { Endpoint } from './pool/endpoint';
import type { CompiledRetry } from './retry/retry-policy';

export interface ClusterCounters {
  shed: Counter;
  failFast: Counter;
}

export class Cluster {
  constructor(
    readonly name: string,
    readonly endpoints: Endpoint[],
    readonly balancer: Balancer,
    readonly queue: RequestQueue,
    readonly connectTimeoutMs: number,
    /** Retries of requests whose route sets no policy. */
    readonly retry: CompiledRetry,
    readonly timeouts: TimeoutSettings,
    readonly counters: ClusterCounters,
    readonly snapshot: ServiceSnapshot,
  ) {}
}
