// A service as the engine runs it: its endpoints (shared with the pool registry, so that connections
// survive reloads), its picker and its connection settings.

import type { ServiceSnapshot } from './config/snapshot';
import type { Picker } from './balance/picker';
import type { Endpoint } from './pool/endpoint';

export class Cluster {
  constructor(
    readonly name: string,
    readonly endpoints: Endpoint[],
    readonly picker: Picker,
    readonly connectTimeoutMs: number,
    readonly snapshot: ServiceSnapshot,
  ) {}
}
