// Latency recording with hdr-histogram-js, exported as Prometheus buckets in Linkerd's layout
// (response_latency_ms). Values are recorded in microseconds so that the sum keeps sub-ms precision.

// The package index also compiles a WebAssembly build at load time (about 14 MB of RSS per thread),
// so only the plain Int32 implementation is loaded.
import Int32Histogram from 'hdr-histogram-js/dist/Int32Histogram';
import { LATENCY_BUCKETS_MS } from './buckets';

export { LATENCY_BUCKETS_MS };

const HIGHEST_US = 3_600_000_000; // one hour

export class LatencyHistogram {
  private readonly h = new Int32Histogram(1, HIGHEST_US, 2);
  sumUs = 0;
  count = 0;

  recordMs(ms: number): void {
    let us = Math.round(ms * 1000);
    if (us < 1) us = 1;
    else if (us > HIGHEST_US) us = HIGHEST_US;
    this.h.recordValue(us);
    this.sumUs += us;
    this.count++;
  }

  /** Per-bucket (not cumulative) counts for LATENCY_BUCKETS_MS plus a last +Inf slot. */
  bucketCounts(): number[] {
    const out = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);
    if (this.count === 0) return out;
    const h = this.h;
    const it = h.recordedValuesIterator;
    it.reset();
    while (it.hasNext()) {
      const v = it.next();
      // A value belongs to the bucket of the lowest value it may stand for, so that 1000 us stays <= 1 ms.
      const ms = h.lowestEquivalentValue(v.valueIteratedTo) / 1000;
      let b = 0;
      while (b < LATENCY_BUCKETS_MS.length && ms > LATENCY_BUCKETS_MS[b]) b++;
      out[b] += v.countAtValueIteratedTo;
    }
    return out;
  }

  percentileMs(p: number): number {
    return this.h.getValueAtPercentile(p) / 1000;
  }
}
