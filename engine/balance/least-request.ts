// Least-request balancing as Envoy does it by default: two distinct random candidates, the one with
// fewer requests in flight wins (ties to the first). Blind to latency; kept for comparison.

import type { Endpoint } from '../pool/endpoint';
import type { Picker } from './picker';

export class LeastRequestPicker implements Picker {
  /** `rng` is uniform in [0, 1). */
  constructor(private readonly rng: () => number) {}

  pick(candidates: readonly Endpoint[]): Endpoint {
    const n = candidates.length;
    if (n === 1) return candidates[0]!;
    const i = Math.floor(this.rng() * n);
    let j = Math.floor(this.rng() * (n - 1));
    if (j >= i) j++;
    const a = candidates[i]!;
    const b = candidates[j]!;
    return b.inFlight < a.inFlight ? b : a;
  }
}
