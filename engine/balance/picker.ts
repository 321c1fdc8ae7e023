// The seam between a service and how it chooses an endpoint. Balancers are registered explicitly by
// name; issue-level work adds P2C over peak-EWMA and zone-aware picking behind the same interface.

import type { Endpoint } from '../pool/endpoint';
import { WeightedRotation } from './weighted-rotation';

export interface Picker {
  /** An endpoint for the next request, or null when there is none. */
  pick(): Endpoint | null;
}

export interface PickerFactory {
  (endpoints: readonly Endpoint[], rng: () => number): Picker;
}

/** Round-robin by weight over the endpoints (see WeightedRotation). */
export function createRoundRobinPicker(endpoints: readonly Endpoint[]): Picker {
  const rotation = new WeightedRotation(endpoints, endpoints.map((e) => e.weight));
  return { pick: () => rotation.pick() ?? null };
}

const registry = new Map<string, PickerFactory>();

export function registerPicker(name: string, factory: PickerFactory): void {
  registry.set(name, factory);
}

export function pickerFactory(name: string): PickerFactory | undefined {
  return registry.get(name);
}

/** Called once by the engine at start-up: built-ins are registered explicitly, never on import. */
export function registerBuiltinPickers(): void {
  registerPicker('round-robin', (eps) => createRoundRobinPicker(eps));
}
