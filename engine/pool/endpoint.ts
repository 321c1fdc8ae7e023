// One upstream address and its pool of idle keep-alive connections. Endpoints are keyed by address
// and survive config reloads, so that a reload keeps warm connections.

import type { PoolSettings } from '../config/snapshot';
import type { EndpointHealth } from '../balance/failure-accrual';
import type { PeakEwma } from '../balance/peak-ewma';
import type { ZoneTraffic } from '../metrics/zone-traffic';
import type { SessionPool } from '../http2/session-pool';

/** What the pool needs of a pooled connection. */
export interface Poolable {
  /** False once the socket closed or errored while idle. */
  readonly usable: boolean;
  /** performance.now() when it last went idle. */
  idleSinceMs: number;
  close(): void;
}

export class Endpoint<C extends Poolable = Poolable> {
  readonly key: string;
  /** Idle connections, most recently used last (reused LIFO to keep a warm set). */
  readonly idle: C[] = [];
  /** Connections open to this endpoint (idle + busy + connecting). */
  open = 0;
  /** Requests in flight on this endpoint. */
  inFlight = 0;
  /** False once a reload removed it: its connections close when they go idle. */
  live = true;
  /** Latency estimate for P2C (kept on the endpoint, so that it survives config reloads). */
  ewma: PeakEwma | null = null;
  /** Failure accrual state (created on the first outcome; survives reloads too). */
  health: EndpointHealth | null = null;
  /** Where this endpoint's traffic is counted (set when a snapshot is applied). */
  traffic: ZoneTraffic | null = null;
  /** A meshed endpoint's SPIFFE ID (mutual TLS, checked); null: plaintext. */
  identity: string | null = null;
  /** Pooled HTTP/2 sessions to this endpoint (created on the first HTTP/2 request to it). */
  h2: SessionPool | null = null;

  constructor(
    readonly host: string,
    readonly port: number,
    public zone: string,
    public weight: number,
    public pool: PoolSettings,
  ) {
    this.key = endpointKey(host, port);
  }

  /** An idle usable connection, or null. */
  takeIdle(): C | null {
    const idle = this.idle;
    while (idle.length > 0) {
      const c = idle.pop()!;
      if (c.usable) return c;
    }
    return null;
  }

  /** Returns a connection to the pool; closes it when the pool is full or the endpoint was removed. */
  putIdle(c: C, nowMs: number): void {
    if (!this.live || this.idle.length >= this.pool.maxIdlePerEndpoint) {
      c.close();
      return;
    }
    c.idleSinceMs = nowMs;
    this.idle.push(c);
  }

  /** Closes idle connections past the idle timeout, and unusable ones. */
  sweepIdle(nowMs: number): void {
    if (this.h2 !== null) this.h2.sweepIdle(nowMs, this.pool.idleTimeoutMs);
    const idle = this.idle;
    if (idle.length === 0) return;
    const limit = nowMs - this.pool.idleTimeoutMs;
    let w = 0;
    for (let r = 0; r < idle.length; r++) {
      const c = idle[r];
      if (!c.usable) continue;
      if (c.idleSinceMs < limit) {
        c.close();
        continue;
      }
      idle[w++] = c;
    }
    idle.length = w;
  }

  closeIdle(): void {
    if (this.h2 !== null) this.h2.closeAll();
    for (const c of this.idle) c.close();
    this.idle.length = 0;
  }
}

export function endpointKey(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
