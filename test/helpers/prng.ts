// A tiny seeded PRNG (xorshift32 over a splitmix-scrambled seed) for property tests: the same seed
// gives the same cases on every machine, so a failure report names the seed that reproduces it.

export class Prng {
  private s: number;

  constructor(readonly seed: number) {
    // Scramble the seed so that nearby seeds start far apart; xorshift32 must never hold 0.
    let z = (seed + 0x9e3779b9) | 0;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z ^= z >>> 16;
    this.s = z === 0 ? 0x6d2b79f5 : z;
  }

  /** A uniformly distributed 32-bit unsigned integer. */
  u32(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x;
    return x >>> 0;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.u32() / 0x100000000) * n);
  }

  /** An integer in [lo, hi] (both inclusive). */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.u32() / 0x100000000 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** A string of n characters drawn from `alphabet`. */
  string(alphabet: string, n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[this.int(alphabet.length)];
    return s;
  }

  /** n random bytes. */
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }

  /** Sorted, distinct cut points in (0, len): where a byte stream is split into reads. */
  cuts(len: number, count: number): number[] {
    const set = new Set<number>();
    for (let i = 0; i < count && len > 1; i++) set.add(1 + this.int(len - 1));
    return [...set].sort((a, b) => a - b);
  }
}

/** Seeds for a property test: fixed, plus BOWLINE_FUZZ_SEED when set, so that a failure can be replayed. */
export function fuzzSeeds(base: number[]): number[] {
  const extra = process.env.BOWLINE_FUZZ_SEED;
  return extra === undefined ? base : [...base, Number(extra)];
}

/** `buf` cut at the given sorted offsets (as Prng.cuts gives them): the pieces, as subarrays. */
export function splitAt(buf: Buffer, cuts: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of cuts) {
    out.push(buf.subarray(prev, c));
    prev = c;
  }
  out.push(buf.subarray(prev));
  return out;
}
