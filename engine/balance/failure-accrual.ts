// Failure accrual (circuit breaking) for one endpoint: counts failures in a row (or a windowed
// success rate), ejects with exponential backoff and jitter, and lets a single probe request test
// recovery once the backoff has passed. The balancer owns the decisions that need the whole service
// (the panic threshold); this file only keeps per-endpoint state. Times come from an injected clock.

import type { FailureAccrualSettings } from '../config/snapshot';

export const enum Health {
  /** In rotation. */
  Ready = 0,
  /** Out of rotation until untilMs. */
  Ejected = 1,
  /** Backoff over: the next request goes to it alone, and its outcome decides. */
  Probing = 2,
}

export class EndpointHealth {
  state = Health.Ready;
  /** Failures in a row since the last success. */
  consecutive = 0;
  /** Ejections in a row without a successful probe (the backoff exponent). */
  ejections = 0;
  /** When an ejection ends (clock ms). */
  untilMs = 0;
  /** A probe request is out; no other request goes to this endpoint meanwhile. */
  probeInFlight = false;
  /** success-rate mode: the last outcomes (1 = success), a ring. */
  private ring: Uint8Array | null = null;
  private ringPos = 0;
  private ringCount = 0;
  private ringOk = 0;

  /** Records a success. Returns true when a probe succeeded (the endpoint is back). */
  success(s: FailureAccrualSettings): boolean {
    this.consecutive = 0;
    if (s.mode === 'success-rate') this.push(s, 1);
    if (this.state === Health.Probing) {
      this.state = Health.Ready;
      this.probeInFlight = false;
      this.ejections = 0;
      this.clearWindow();
      return true;
    }
    return false;
  }

  /** Records a failure. Returns true when the endpoint should now be ejected (or re-ejected after a failed probe). */
  failure(s: FailureAccrualSettings): boolean {
    this.consecutive++;
    if (this.state === Health.Probing) return true;
    if (this.state !== Health.Ready) return false;
    switch (s.mode) {
      case 'consecutive':
        return this.consecutive >= s.consecutiveFailures;
      case 'success-rate':
        this.push(s, 0);
        return this.ringCount >= s.successRateMinRequests && this.ringOk / this.ringCount < s.successRateThreshold;
      default:
        return false;
    }
  }

  /** Takes the endpoint out until now + backoff. `rand` is uniform in [0, 1). */
  eject(s: FailureAccrualSettings, nowMs: number, rand: number): void {
    this.state = Health.Ejected;
    this.probeInFlight = false;
    this.untilMs = nowMs + ejectionBackoffMs(s, this.ejections, rand);
    this.ejections++;
    this.consecutive = 0;
    this.clearWindow();
  }

  /** A request that ended without an outcome (the client left): a probe in flight may be retried. */
  cancelled(): void {
    this.probeInFlight = false;
  }

  private push(s: FailureAccrualSettings, ok: 0 | 1): void {
    let ring = this.ring;
    if (ring === null || ring.length !== s.successRateWindow) {
      ring = this.ring = new Uint8Array(Math.max(1, s.successRateWindow));
      this.ringPos = this.ringCount = this.ringOk = 0;
    }
    if (this.ringCount === ring.length) this.ringOk -= ring[this.ringPos]!;
    else this.ringCount++;
    ring[this.ringPos] = ok;
    this.ringOk += ok;
    this.ringPos = this.ringPos + 1 === ring.length ? 0 : this.ringPos + 1;
  }

  private clearWindow(): void {
    this.ringPos = this.ringCount = this.ringOk = 0;
  }
}

/**
 * The n-th ejection in a row (from 0) lasts min x 2^n, capped at max, plus up to `jitter` of that at
 * random (so that proxies that saw the same failure do not all probe at once), never beyond max.
 */
export function ejectionBackoffMs(s: FailureAccrualSettings, n: number, rand: number): number {
  const base = Math.min(s.maxBackoffMs, s.minBackoffMs * 2 ** Math.min(n, 30));
  return Math.min(s.maxBackoffMs, base * (1 + s.jitter * rand));
}
