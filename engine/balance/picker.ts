// The seam between the balancer (which endpoints are ready, which zones are in use) and the policy
// that chooses one of them: P2C over peak-EWMA, least-request or round-robin.

import type { Endpoint } from '../pool/endpoint';
import { WeightedRotation } from './weighted-rotation';

export interface Picker {
  /** One of `candidates` (never empty). The same array is passed again until the ready set changes. */
  pick(candidates: readonly Endpoint[], nowMs: number): Endpoint;
  /** Latency feedback: request sent to first response byte (policies that use it). */
  observe?(e: Endpoint, rttMs: number, nowMs: number): void;
}

/** Round-robin by weight over the candidates (see WeightedRotation). */
export class RoundRobinPicker implements Picker {
  private set: readonly Endpoint[] | null = null;
  private rotation: WeightedRotation<Endpoint> | null = null;

  pick(candidates: readonly Endpoint[]): Endpoint {
    if (candidates !== this.set) {
      this.set = candidates;
      this.rotation = new WeightedRotation(candidates, candidates.map((e) => e.weight));
    }
    return this.rotation!.pick()!;
  }
}
