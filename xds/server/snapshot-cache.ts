// The snapshots in force, one per node zone (the EDS priorities differ by zone), and the node
// identities that streams announce. Streams ask it for their node's snapshot and listen for updates.

import { EventEmitter } from 'node:events';
import type { XdsSnapshot } from './xds-snapshot';

export interface NodeInfo {
  id: string;
  cluster: string;
  zone: string;
  /** The client's user agent ("envoy", "gRPC Node", "bowline", ...), for metrics and logs. */
  userAgent: string;
}

export interface SnapshotCacheEvents {
  update: [];
}

export class SnapshotCache extends EventEmitter<SnapshotCacheEvents> {
  private byZone = new Map<string, XdsSnapshot>();
  private fallback: XdsSnapshot | null = null;
  /** Increases with each set(): streams compare it to know they are behind. */
  generation = 0;

  /** Replaces every snapshot at once (they were built from one mesh version, so they agree). */
  set(snapshots: readonly { zone: string; snapshot: XdsSnapshot }[]): void {
    const byZone = new Map<string, XdsSnapshot>();
    for (const s of snapshots) {
      const prev = this.byZone.get(s.zone);
      if (prev !== undefined) s.snapshot.diffFrom(prev);
      byZone.set(s.zone, s.snapshot);
    }
    this.byZone = byZone;
    this.fallback = byZone.get('') ?? snapshots[0]?.snapshot ?? null;
    this.generation++;
    this.emit('update');
  }

  /** The snapshot for a node in `zone` (the zone-less one when the mesh has no endpoint there). */
  snapshotFor(zone: string): XdsSnapshot | null {
    return this.byZone.get(zone) ?? this.fallback;
  }

  get zones(): string[] {
    return [...this.byZone.keys()];
  }
}
