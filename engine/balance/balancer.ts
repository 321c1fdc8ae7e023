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

/**
 * Shared by the balancers of one engine: bumped whenever an endpoint's health changes, so that every
 * balancer that did not make the change (the one a reload replaced, another service with the same
 * endpoint) re-reads the endpoints before its next pick. Health lives on the endpoints.
 */
export class HealthEpoch {
  n = 0;
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
  /** The engine's (default: one of its own). */
  epoch?: HealthEpoch;
}

export class Balancer {
  private ready: Endpoint[] = [];
  /** The epoch this balancer's view (ready, ejected, probeDue, nextWakeMs) was built at. */
  private seen = -1;
  /** Earliest end of an ejection (clock ms). */
  private nextWakeMs = Infinity;
  /** Endpoints whose backoff is over and that wait for their probe request. */
  private probeDue: Endpoint[] = [];
  private ejectedCount = 0;
  private readonly maxEjected: number;
  private readonly zones: ZoneLocality | null;
  private readonly penaltyStatuses: Set<number>;
  private readonly epoch: HealthEpoch;
  /** Whether the last pick was a probe (the exchange reports that back when it is cancelled). */
  lastPickWasProbe = false;

  constructor(
    readonly endpoints: readonly Endpoint[],
    private readonly o: BalancerOptions,
  ) {
    // Panic threshold: never eject past the share, and never the last endpoint.
    this.maxEjected = Math.min(endpoints.length - 1, Math.floor((endpoints.length * o.accrual.maxEjectionPercent) / 100));
    const zoned = o.zone !== '' && o.zoneLocality.enabled && endpoints.some((e) => e.zone === o.zone);
    this.zones = zoned ? new ZoneLocality(o.zone, o.zoneLocality) : null;
    this.penaltyStatuses = new Set(o.penalty.enabled ? o.penalty.statuses : []);
    this.epoch = o.epoch ?? new HealthEpoch();
  }

  /**
   * pick() for a retry: another endpoint than `previous` (the one that just failed) when the service
   * has others, unless the pick is a recovery probe. lastPickWasProbe tells which it was.
   */
  pickAvoiding(previous: Endpoint | null): Endpoint | null {
    const e = this.pick();
    if (e !== null && e === previous && this.endpoints.length > 1 && !this.lastPickWasProbe) return this.pick() ?? e;
    return e;
  }

  /** The endpoint for the next request, or null when the service has none. */
  pick(): Endpoint | null {
    const all = this.endpoints;
    this.lastPickWasProbe = false;
    if (all.length <= 1) return all.length === 0 ? null : all[0]!;
    if (this.seen !== this.epoch.n) this.resync();
    const now = this.o.clock.now();
    if (now >= this.nextWakeMs) this.wake(now);
    while (this.probeDue.length > 0) {
      // Recovery is tested with one real request at a time.
      const e = this.probeDue.pop()!;
      const h = e.health!;
      if (h.state !== Health.Probing || h.probeInFlight) continue; // changed since it was queued
      h.probeInFlight = true;
      this.lastPickWasProbe = true;
      return e;
    }
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
    // Retry-After: 0 asks for nothing beyond the round trip itself.
    return retryAfterSec >= 0 ? Math.min(p.maxLatencyMs, retryAfterSec * 1000) : p.latencyMs;
  }

  /** True when this status is worth a penalty (the exchange then looks for Retry-After). */
  penalizes(status: number): boolean {
    return this.penaltyStatuses.size > 0 && this.penaltyStatuses.has(status);
  }

  /** The verdict of one request on one endpoint; `probe`: the request was that endpoint's probe (lastPickWasProbe). */
  outcome(e: Endpoint, o: Outcome, probe = false): void {
    if (this.endpoints.length <= 1) return;
    const s = this.o.accrual;
    if (s.mode === 'off' && e.health === null) return;
    if (this.seen !== this.epoch.n) this.resync();
    const h = e.health ?? (e.health = new EndpointHealth());
    if (o === Outcome.Cancelled) {
      // A probe whose client left tells nothing: the next pick probes again.
      if (probe && h.state === Health.Probing && h.probeInFlight) {
        h.cancelled();
        this.changed();
      }
      return;
    }
    if (o === Outcome.Success) {
      if (h.success(s)) {
        this.changed();
        this.o.events?.restored(e);
      }
      return;
    }
    if (!h.failure(s) && !(o === Outcome.ConnectFailure && h.state === Health.Ready && s.mode !== 'off')) return;
    // A failed probe (or a late failure while probing) sends it out again, for longer; a ready
    // endpoint goes out unless the panic threshold keeps it in rotation.
    if (h.state === Health.Ready && this.ejectedCount >= this.maxEjected) return;
    if (h.state === Health.Ejected) return;
    h.eject(s, this.o.clock.now(), this.o.rng());
    this.changed();
    this.o.events?.ejected(e);
  }

  /** Ready endpoints now (for metrics). */
  get readyCount(): number {
    if (this.seen !== this.epoch.n) this.resync();
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
    let woke = false;
    for (const e of this.endpoints) {
      const h = e.health;
      if (h !== null && h.state === Health.Ejected && h.untilMs <= now) {
        h.state = Health.Probing;
        woke = true;
      }
    }
    if (woke) this.changed();
    this.resync();
  }

  /** Some endpoint's health changed: every balancer of the engine re-reads before its next pick. */
  private changed(): void {
    this.epoch.n++;
  }

  /** Rebuilds this balancer's view from the endpoints' health. */
  private resync(): void {
    this.seen = this.epoch.n;
    const ready: Endpoint[] = [];
    const due: Endpoint[] = [];
    let ejected = 0;
    let wake = Infinity;
    for (const e of this.endpoints) {
      const h = e.health;
      if (h === null || h.state === Health.Ready) {
        ready.push(e);
        continue;
      }
      ejected++;
      if (h.state === Health.Ejected) wake = Math.min(wake, h.untilMs);
      else if (!h.probeInFlight) due.push(e);
    }
    this.ready = ready;
    this.probeDue = due;
    this.ejectedCount = ejected;
    this.nextWakeMs = wake;
    this.zones?.setReady(ready);
  }
}
