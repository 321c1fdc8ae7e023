// The seam between a service and how it chooses an endpoint. Round-robin by weight is the only
// balancer so far; P2C over peak-EWMA and zone-aware picking come behind the same interface.

import type { Endpoint } from '../pool/endpoint';
import { WeightedRotation } from './weighted-rotation';

export interface Picker {
  /** An endpoint for the next request, or null when there is none. */
  pick(): Endpoint | null;
  /** Latency feedback: the time from request sent to first response byte (balancers that use it). */
  observe?(e: Endpoint, rttMs: number): void;
}

/** Round-robin by weight over the endpoints (see WeightedRotation). */
export function createRoundRobinPicker(endpoints: readonly Endpoint[]): Picker {
  const rotation = new WeightedRotation(endpoints, endpoints.map((e) => e.weight));
  return { pick: () => rotation.pick() ?? null };
}
