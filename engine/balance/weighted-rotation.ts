// Smooth weighted round-robin: each item gets its weight's share of picks, interleaved (weights
// 5:1:1 give a a b a c a a, never five a's in a row), deterministic, and fine with fractional weights.

export class WeightedRotation<T> {
  private readonly current: Float64Array;
  private readonly total: number;
  private readonly equal: boolean;
  private next = 0;

  constructor(
    private readonly items: readonly T[],
    private readonly weights: readonly number[],
  ) {
    this.current = new Float64Array(items.length);
    this.total = weights.reduce((a, w) => a + w, 0);
    this.equal = weights.every((w) => w === weights[0]);
  }

  /** The next item, or undefined when there are none. */
  pick(): T | undefined {
    const n = this.items.length;
    if (n <= 1) return this.items[0];
    if (this.equal) {
      const i = this.next;
      this.next = i + 1 === n ? 0 : i + 1;
      return this.items[i];
    }
    const cur = this.current;
    let best = 0;
    for (let i = 0; i < n; i++) {
      cur[i] += this.weights[i];
      if (cur[i] > cur[best]) best = i;
    }
    cur[best] -= this.total;
    return this.items[best];
  }
}
