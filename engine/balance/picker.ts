// The seam between a service and how it chooses an endpoint. Balancers are registered explicitly by
// name; issue-level work adds P2C over peak-EWMA and zone-aware picking behind the same interface.

import type { Endpoint } from '../pool/endpoint';

export interface Picker {
  /** An endpoint for the next request, or null when there is none. */
  pick(): Endpoint | null;
}

export interface PickerFactory {
  (endpoints: readonly Endpoint[], rng: () => number): Picker;
}

/** Smooth weighted round-robin (each endpoint gets its weight's share, interleaved). */
export function createRoundRobinPicker(endpoints: readonly Endpoint[]): Picker {
  const n = endpoints.length;
  if (n === 0) return { pick: () => null };
  const equal = endpoints.every((e) => e.weight === endpoints[0].weight);
  if (equal) {
    let next = 0;
    return {
      pick() {
        const e = endpoints[next];
        next = next + 1 === n ? 0 : next + 1;
        return e;
      },
    };
  }
  const current = new Float64Array(n);
  let total = 0;
  for (const e of endpoints) total += e.weight;
  return {
    pick() {
      let best = 0;
      for (let i = 0; i < n; i++) {
        current[i] += endpoints[i].weight;
        if (current[i] > current[best]) best = i;
      }
      current[best] -= total;
      return endpoints[best];
    },
  };
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
