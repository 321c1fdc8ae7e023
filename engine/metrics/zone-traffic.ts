// Traffic from this proxy's zone to one destination zone: requests (attempts), bytes each way, and
// the estimated transfer cost of the bytes that crossed zones. Counted once per attempt, not per
// chunk: the exchange sums its bytes and flushes them here when the attempt ends.

import type { Counter, MetricsRegistry } from './registry';

export class ZoneTraffic {
  readonly requests: Counter;
  private readonly sent: Counter;
  private readonly received: Counter;
  private readonly cost: Counter | null;
  private readonly usdPerByte: number;

  constructor(m: MetricsRegistry, srcZone: string, dstZone: string, usdPerGb: number) {
    const labels = { src_zone: srcZone, dst_zone: dstZone };
    this.requests = m.counter('zone_requests_total', labels);
    this.sent = m.counter('zone_bytes_total', { ...labels, direction: 'request' });
    this.received = m.counter('zone_bytes_total', { ...labels, direction: 'response' });
    // Only traffic between two known, different zones costs anything.
    const cross = srcZone !== '' && dstZone !== '' && srcZone !== dstZone;
    this.cost = cross ? m.counter('zone_cross_transfer_cost_usd_total', labels) : null;
    this.usdPerByte = usdPerGb / 1e9;
  }

  /** Adds the bytes of one finished attempt. */
  record(sentBytes: number, receivedBytes: number): void {
    this.sent.value += sentBytes;
    this.received.value += receivedBytes;
    if (this.cost !== null) this.cost.value += (sentBytes + receivedBytes) * this.usdPerByte;
  }
}
