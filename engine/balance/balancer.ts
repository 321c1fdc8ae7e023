// A service's balancer, one per worker: keeps the set of ready endpoints (failure accrual takes
// failing ones out, a probe lets them back in, the panic threshold keeps some in), narrows it to the
// zones in use (HAZL), and lets the policy (P2C-EWMA, least-request, round-robin) choose. The
// exchange reports back what happened: the latency to the first byte and the outcome.

import type { Clock } from '../clock';
import type { FailureAccrualSettings, FailurePenaltySettings, ZoneLocalitySettings } from '../config/snapshot';
import type { Endpoint } from '../pool/endpoint';
import { EndpointHealth, Health } from './failure-accrual';
import type { Picker } from './picker';
import { ZoneLocality } from './zone-locality';

export const enum Outcome {
  Success = 0,
  Failure = 1,
  /** The request ended with no verdict on the endpoint (the client left, a local timeout of the whole request). */
  Cancelled = 2,
  /**
   * No connection could be made (refused, unreachable, connect timeout). The endpoint is taken out at
   * once, as Linkerd's balancer does while a connection is in its reconnect backoff: no request should
   * wait for seven such failures.
   */
  ConnectFailure = 3,
}

/** What the engine counts about a balancer (kept outside it: balancers are rebuilt on reload). */
export interface BalancerEvents {
  ejected(e: Endpoint): void;
  restored(e: Endpoint): void;
}

export interface BalancerOptions {
  picker: Picker;
  clock: Clock;
  /** Uniform in [0, 1). */
  rng: () => number;
  accrual: FailureAccrualSettings;
  penalty: FailurePenaltySettings;
  /** The proxy's zone; '' turns zone locality off. */
  zone: string;
  zoneLocality: ZoneLocalitySettings;
  events?: BalancerEvents;
}

export class Balancer {
  private ready: Endpoint[] = [];
  private dirty = true;
  /** Earliest end of an ejection (clock ms). */
  private nextWakeMs = Infinity;
  /** Endpoints whose backoff is over and that wait for their probe request. */
  private probeDue: Endpoint[] = [];
  private ejectedCount = 0;
  private readonly maxEjected: number;
  private readonly zones: ZoneLocality | null;
  private readonly penaltyStatuses: Set<number>;

  constructor(
    readonly endpoints: readonly Endpoint[],
    private readonly o: BalancerOptions,
  ) {
    // Panic threshold: never eject past the share, and never the last endpoint.
    this.maxEjected = Math.min(endpoints.length - 1, Math.floor((endpoints.length * o.accrual.maxEjectionPercent) / 100));
    const zoned = o.zone !== '' && o.zoneLocality.enabled && endpoints.some((e) => e.zone === o.zone);
    this.zones = zoned ? new ZoneLocality(o.zone, o.zoneLocality) : null;
    this.penaltyStatuses = new Set(o.penalty.enabled ? o.penalty.statuses : []);
    // Endpoints keep their health across reloads (it lives on them): count what is already out.
    let wake = Infinity;
    for (const e of endpoints) {
      const h = e.health;
      if (h === null || h.state === Health.Ready) continue;
      this.ejectedCount++;
      if (h.state === Health.Ejected) wake = Math.min(wake, h.untilMs);
      else this.probeDue.push(e);
    }
    this.nextWakeMs = wake;
  }

  /** The endpoint for the next request, or null when the service has none. */
  pick(): Endpoint | null {
    const all = this.endpoints;
    if (all.length <= 1) return all.length === 0 ? null : all[0]!;
    const now = this.o.clock.now();
    if (now >= this.nextWakeMs) this.wake(now);
    if (this.probeDue.length > 0) {
      // Recovery is tested with one real request at a time.
      const e = this.probeDue.pop()!;
      e.health!.probeInFlight = true;
      return e;
    }
    if (this.dirty) this.rebuild();
    const candidates = this.zones === null ? this.ready : this.zones.candidates(now);
    return this.o.picker.pick(candidates.length > 0 ? candidates : all, now);
  }

  /** Latency feedback: request sent to the first response byte. */
  observe(e: Endpoint, rttMs: number): void {
    if (this.endpoints.length > 1 && this.o.picker.observe !== undefined) this.o.picker.observe(e, rttMs, this.o.clock.now());
  }

  /**
   * Whether a response status should be charged as a latency penalty, and how much: the Retry-After
   * (seconds, already parsed; -1 when absent) or the configured penalty.
   */
  penaltyMs(status: number, retryAfterSec: number): number {
    if (!this.penaltyStatuses.has(status)) return 0;
    const p = this.o.penalty;
    return retryAfterSec >= 0 ? Math.min(p.maxLatencyMs, retryAfterSec * 1000) || p.latencyMs : p.latencyMs;
  }

  /** True when this status is worth a penalty (the exchange then looks for Retry-After). */
  penalizes(status: number): boolean {
    return this.penaltyStatuses.size > 0 && this.penaltyStatuses.has(status);
  }

  /** The verdict of one request on one endpoint. */
  outcome(e: Endpoint, o: Outcome): void {
    if (this.endpoints.length <= 1) return;
    const s = this.o.accrual;
    if (s.mode === 'off' && e.health === null) return;
    const h = e.health ?? (e.health = new EndpointHealth());
    if (o === Outcome.Cancelled) {
      if (h.state === Health.Probing && h.probeInFlight) {
        h.cancelled();
        this.probeDue.push(e);
      }
      return;
    }
    if (o === Outcome.Success) {
      if (h.success(s)) {
        this.ejectedCount--;
        this.dirty = true;
        this.o.events?.restored(e);
      }
      return;
    }
    if (!h.failure(s) && !(o === Outcome.ConnectFailure && h.state === Health.Ready && s.mode !== 'off')) return;
    if (h.state === Health.Probing) {
      // The probe failed: out again, for longer.
      h.eject(s, this.o.clock.now(), this.o.rng());
      this.nextWakeMs = Math.min(this.nextWakeMs, h.untilMs);
      this.o.events?.ejected(e);
      return;
    }
    if (this.ejectedCount >= this.maxEjected) return; // panic threshold: it stays in rotation
    h.eject(s, this.o.clock.now(), this.o.rng());
    this.ejectedCount++;
    this.nextWakeMs = Math.min(this.nextWakeMs, h.untilMs);
    this.dirty = true;
    this.o.events?.ejected(e);
  }

  /** Ready endpoints now (for metrics). */
  get readyCount(): number {
    return this.endpoints.length - this.ejectedCount;
  }

  /** Zones in use beside the local one; null without zone locality. */
  get spillZones(): readonly string[] | null {
    return this.zones === null ? null : this.zones.activeZones;
  }

  get zoneLoad(): number {
    return this.zones === null ? 0 : this.zones.averageLoad;
  }

  /** Ejections whose backoff is over become due for their probe. */
  private wake(now: number): void {
    let next = Infinity;
    for (const e of this.endpoints) {
      const h = e.health;
      if (h === null || h.state !== Health.Ejected) continue;
      if (h.untilMs <= now) {
        h.state = Health.Probing;
        this.probeDue.push(e);
      } else if (h.untilMs < next) next = h.untilMs;
    }
    this.nextWakeMs = next;
  }

  private rebuild(): void {
    this.dirty = false;
    const ready: Endpoint[] = [];
    for (const e of this.endpoints) if (e.health === null || e.health.state === Health.Ready) ready.push(e);
    this.ready = ready;
    this.zones?.setReady(ready);
  }
}
