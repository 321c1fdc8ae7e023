// HAZL: keeps a service's traffic in the proxy's own zone and spills to other zones only while the
// local zone is stressed. Load is requests in flight per ready endpoint of the zones in use, averaged
// over a short window; above the high watermark one more zone joins, below the low watermark the
// last one leaves (hysteresis: no flapping). Failing endpoints are not ready, so they raise the load
// of their zone's survivors; a zone with no ready endpoint is never used, and with none in the local
// zone every other zone is. Per worker, like the balancer that owns it.

import type { ZoneLocalitySettings } from '../config/snapshot';
import type { Endpoint } from '../pool/endpoint';

export class ZoneLocality {
  /** levels[k]: the ready endpoints of the local zone and the first k other zones. */
  private levels: Endpoint[][] = [[]];
  /** Ready endpoints of all other zones (used when the local zone has none). */
  private others: Endpoint[] = [];
  /** Other zones in use (0 = local only). */
  spill = 0;
  private load = 0;
  private lastSampleMs = -Infinity;
  private lastChangeMs = -Infinity;
  /** The zones in the order they are added. */
  private otherZones: string[] = [];

  constructor(
    readonly localZone: string,
    private readonly s: ZoneLocalitySettings,
  ) {}

  /** Regroups after the set of ready endpoints changed (ejection, recovery, reload). */
  setReady(ready: readonly Endpoint[]): void {
    const local: Endpoint[] = [];
    const byZone = new Map<string, Endpoint[]>();
    for (const e of ready) {
      if (e.zone === this.localZone) local.push(e);
      else {
        let g = byZone.get(e.zone);
        if (g === undefined) byZone.set(e.zone, (g = []));
        g.push(e);
      }
    }
    // Zones join in name order, so that every proxy of a zone spills the same way.
    this.otherZones = [...byZone.keys()].sort();
    const levels = [local];
    for (const z of this.otherZones) levels.push([...levels[levels.length - 1]!, ...byZone.get(z)!]);
    this.levels = levels;
    this.others = levels[levels.length - 1]!.slice(local.length);
    if (this.spill > levels.length - 1) this.spill = levels.length - 1;
  }

  /** The endpoints to balance over now. Empty only when no endpoint is ready at all. */
  candidates(nowMs: number): Endpoint[] {
    const levels = this.levels;
    if (levels[0]!.length === 0) return this.others;
    if (levels.length > 1 && nowMs - this.lastSampleMs >= this.s.loadWindowMs / 16) this.sample(nowMs);
    return levels[this.spill]!;
  }

  /** Zones in use beside the local one (for metrics). */
  get activeZones(): readonly string[] {
    return this.levels[0]!.length === 0 ? this.otherZones : this.otherZones.slice(0, this.spill);
  }

  /** The averaged load (requests in flight per ready endpoint in use). */
  get averageLoad(): number {
    return this.load;
  }

  private sample(nowMs: number): void {
    const set = this.levels[this.spill]!;
    let inFlight = 0;
    for (let i = 0; i < set.length; i++) inFlight += set[i]!.inFlight;
    const instant = inFlight / set.length;
    const dt = nowMs - this.lastSampleMs;
    const w = Number.isFinite(dt) ? 1 - Math.exp(-dt / this.s.loadWindowMs) : 1;
    this.load += (instant - this.load) * w;
    this.lastSampleMs = nowMs;
    if (nowMs - this.lastChangeMs < this.s.loadWindowMs) return;
    // As many steps as the load says (a surge may need two zones at once, a calm returns home at
    // once), then a window's wait before the next change.
    const top = this.levels.length - 1;
    while (this.load > this.s.highLoad && this.spill < top) this.change(this.spill + 1, nowMs);
    while (this.load < this.s.lowLoad && this.spill > 0 && this.rescaled(this.spill - 1) < this.s.highLoad) this.change(this.spill - 1, nowMs);
  }

  /** The load if the same requests spread over the endpoints of `spill` instead. */
  private rescaled(spill: number): number {
    return (this.load * this.levels[this.spill]!.length) / this.levels[spill]!.length;
  }

  private change(spill: number, nowMs: number): void {
    // The same requests now spread over a different number of endpoints.
    this.load = this.rescaled(spill);
    this.spill = spill;
    this.lastChangeMs = nowMs;
  }
}
