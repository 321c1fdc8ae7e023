// Latency recording: every sample goes into an hdr-histogram-js histogram (microseconds, 2
// significant digits), which the supervisor merges across workers for exact percentiles, and into
// exact counters of Linkerd's response_latency_ms buckets for the Prometheus histogram.

// The package index also compiles a WebAssembly build at load time (about 14 MB of RSS per thread),
// so only the plain Int32 implementation is loaded.
import Int32Histogram from 'hdr-histogram-js/dist/Int32Histogram';
import { LATENCY_BUCKETS_MS } from './buckets';

export { LATENCY_BUCKETS_MS };

const HIGHEST_US = 3_600_000_000; // one hour
const BOUNDS_US = LATENCY_BUCKETS_MS.map((ms) => ms * 1000);

export class LatencyHistogram {
  private readonly h = new Int32Histogram(1, HIGHEST_US, 2);
  /**
   * Exact per-bucket counts: the histogram's 2 significant digits would put a value up to 1% above a
   * bound (5.02 ms, 50.2 s) into that bound's bucket.
   */
  private readonly buckets = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);
  sumUs = 0;
  count = 0;

  recordMs(ms: number): void {
    let us = Math.round(ms * 1000);
    if (us < 1) us = 1;
    else if (us > HIGHEST_US) us = HIGHEST_US;
    this.h.recordValue(us);
    let b = 0;
    while (b < BOUNDS_US.length && us > BOUNDS_US[b]) b++;
    this.buckets[b]++;
    this.sumUs += us;
    this.count++;
  }

  /** Per-bucket (not cumulative) counts for LATENCY_BUCKETS_MS plus a last +Inf slot. */
  bucketCounts(): number[] {
    return this.buckets.slice();
  }

  percentileMs(p: number): number {
    return this.h.getValueAtPercentile(p) / 1000;
  }

  /** The recorded distribution as flat [valueUs, count, ...] pairs, for merging in another thread. */
  exportPairs(): number[] {
    const out: number[] = [];
    if (this.count === 0) return out;
    const it = this.h.recordedValuesIterator;
    it.reset();
    while (it.hasNext()) {
      const v = it.next();
      out.push(v.valueIteratedTo, v.countAtValueIteratedTo);
    }
    return out;
  }
}

/** Merges exported distributions (from several workers) and reads percentiles of the whole. */
export class MergedLatency {
  private readonly h = new Int32Histogram(1, HIGHEST_US, 2);

  add(pairs: readonly number[]): void {
    for (let i = 0; i + 1 < pairs.length; i += 2) this.h.recordValueWithCount(Math.min(pairs[i], HIGHEST_US), pairs[i + 1]);
  }

  /** The value (ms) at a percentile in 0..100; 0 when empty. */
  percentileMs(p: number): number {
    return this.h.totalCount === 0 ? 0 : this.h.getValueAtPercentile(p) / 1000;
  }
}
