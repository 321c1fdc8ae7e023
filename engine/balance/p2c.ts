// Power of two choices over peak-EWMA cost (Linkerd's balancer): pick two distinct candidates at
// random and take the cheaper, where cost = latency estimate x (requests in flight + 1). The
// estimate lives on the endpoint (it survives reloads); the exchange feeds the round-trip time to
// the first response byte back through observe(). Randomness comes from the caller, time too.

import type { Endpoint } from '../pool/endpoint';
import { DEFAULT_RTT_MS, DEFAULT_TAU_MS, PeakEwma } from './peak-ewma';
import type { Picker } from './picker';

export interface P2cOptions {
  /** Uniform in [0, 1). */
  rng: () => number;
  tauMs?: number;
  initialRttMs?: number;
}

export class P2cPeakEwmaPicker implements Picker {
  private readonly tauMs: number;
  private readonly initialRttMs: number;

  constructor(private readonly o: P2cOptions) {
    this.tauMs = o.tauMs ?? DEFAULT_TAU_MS;
    this.initialRttMs = o.initialRttMs ?? DEFAULT_RTT_MS;
  }

  /** Cost of an endpoint at `nowMs`: its latency estimate times (in flight + 1). */
  cost(e: Endpoint, nowMs: number): number {
    return this.stateOf(e, nowMs).estimateMs(nowMs) * (e.inFlight + 1);
  }

  /** Feeds a round-trip time (ms) into the endpoint's estimate. */
  observe(e: Endpoint, rttMs: number, nowMs: number): void {
    this.stateOf(e, nowMs).observe(rttMs, nowMs);
  }

  pick(candidates: readonly Endpoint[], nowMs: number): Endpoint {
    const n = candidates.length;
    if (n === 1) return candidates[0]!;
    const i = Math.floor(this.o.rng() * n);
    let j = Math.floor(this.o.rng() * (n - 1));
    if (j >= i) j++; // two distinct candidates
    const a = candidates[i]!;
    const b = candidates[j]!;
    return this.cost(b, nowMs) < this.cost(a, nowMs) ? b : a;
  }

  private stateOf(e: Endpoint, nowMs: number): PeakEwma {
    let s = e.ewma;
    if (s === null) {
      s = new PeakEwma(nowMs, this.tauMs, this.initialRttMs);
      e.ewma = s;
    }
    return s;
  }
}
