// A consistent set of encoded xDS resources for one group of nodes (one zone), with a version per
// resource (a hash of its bytes) and per type, so that a stream can tell exactly what changed. Built
// off the serving thread (snapshot-builder.ts, in the piscina pool); only read on the serving thread.

import { createHash } from 'node:crypto';
import { type ResourceType, TYPE_ORDER } from '../common/type-urls';

export interface EncodedResource {
  name: string;
  /** Hash of the encoded bytes: changes exactly when the resource does. */
  version: string;
  /** The google.protobuf.Any of the resource: its message bytes, with the type URL beside them. */
  typeUrl: string;
  value: Buffer;
}

let nextId = 1;

export interface TypeDiff {
  /** Names added or changed since the previous snapshot. */
  changed: string[];
  /** Names gone since the previous snapshot. */
  removed: string[];
}

export class XdsSnapshot {
  /** Per type: a version over all its resources. */
  readonly typeVersions = new Map<ResourceType, string>();
  readonly id = nextId++;
  /** The snapshot this one replaced (same zone), and what changed since: streams in sync with it need only that. */
  prevId = 0;
  readonly diffs = new Map<ResourceType, TypeDiff>();

  constructor(
    /** The mesh version it was built from (for logs and the config dump). */
    readonly meshVersion: string,
    readonly resources: ReadonlyMap<ResourceType, ReadonlyMap<string, EncodedResource>>,
    /** Listener names sent to a wildcard LDS subscription. */
    readonly wildcardListeners: ReadonlySet<string>,
  ) {
    for (const type of TYPE_ORDER) {
      const h = createHash('sha256');
      const byName = resources.get(type);
      if (byName !== undefined) for (const name of [...byName.keys()].sort()) h.update(`${name}\u0000${byName.get(name)!.version}\u0000`);
      this.typeVersions.set(type, h.digest('base64url').slice(0, 16));
    }
  }

  /** The resources a subscription gets: every wildcard resource of the type, or the named ones that exist. */
  select(type: ResourceType, wildcard: boolean, names: ReadonlySet<string>): EncodedResource[] {
    const byName = this.resources.get(type);
    if (byName === undefined) return [];
    const out: EncodedResource[] = [];
    if (wildcard) {
      for (const r of byName.values()) if (this.inWildcard(type, r.name)) out.push(r);
    }
    for (const n of names) {
      const r = byName.get(n);
      if (r !== undefined && !(wildcard && this.inWildcard(type, n))) out.push(r);
    }
    return out;
  }

  get(type: ResourceType, name: string): EncodedResource | undefined {
    return this.resources.get(type)?.get(name);
  }

  /** Records what changed since `prev` (once per snapshot, at the swap; O(resources)). */
  diffFrom(prev: XdsSnapshot): void {
    this.prevId = prev.id;
    for (const type of TYPE_ORDER) {
      const now = this.resources.get(type) ?? new Map<string, EncodedResource>();
      const before = prev.resources.get(type) ?? new Map<string, EncodedResource>();
      const changed: string[] = [];
      const removed: string[] = [];
      for (const [name, r] of now) if (before.get(name)?.version !== r.version) changed.push(name);
      for (const name of before.keys()) if (!now.has(name)) removed.push(name);
      this.diffs.set(type, { changed, removed });
    }
  }

  /** Whether a wildcard subscription of `type` gets this resource. */
  inWildcard(type: ResourceType, name: string): boolean {
    return type !== LDS_WILDCARD_FILTER || this.wildcardListeners.has(name);
  }
}

// Wildcard LDS gets socket listeners only (gRPC api_listeners are asked for by name).
const LDS_WILDCARD_FILTER: string = 'type.googleapis.com/envoy.config.listener.v3.Listener';

export function resourceVersion(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('base64url').slice(0, 16);
}
