// Power of two choices over peak-EWMA cost (Linkerd's balancer): pick two distinct endpoints at
// random and take the cheaper, where cost = latency estimate x (requests in flight + 1). Clock and
// randomness are injected so that tests are deterministic. The exchange feeds the round-trip time
// to the first response byte back through observe().

import type { Clock } from '../clock';
import type { Endpoint } from '../pool/endpoint';
import { DEFAULT_RTT_MS, DEFAULT_TAU_MS, PeakEwma } from './peak-ewma';
import type { Picker } from './picker';

export interface P2cOptions {
  clock: Clock;
  /** Uniform in [0, 1). */
  rng: () => number;
  tauMs?: number;
  initialRttMs?: number;
}

export class P2cPeakEwmaPicker implements Picker {
  constructor(
    private readonly endpoints: readonly Endpoint[],
    private readonly o: P2cOptions,
  ) {}

  /** Cost of an endpoint now: its latency estimate times (in-flight + 1). */
  cost(e: Endpoint): number {
    return this.stateOf(e).estimateMs(this.o.clock.now()) * (e.inFlight + 1);
  }

  /** Feeds a round-trip time (ms, to the first response byte) into the endpoint's estimate. */
  observe(e: Endpoint, rttMs: number): void {
    this.stateOf(e).observe(rttMs, this.o.clock.now());
  }

  pick(): Endpoint | null {
    const eps = this.endpoints;
    const n = eps.length;
    if (n === 0) return null;
    if (n === 1) return eps[0];
    const i = Math.floor(this.o.rng() * n);
    let j = Math.floor(this.o.rng() * (n - 1));
    if (j >= i) j++; // two distinct endpoints
    const a = eps[i];
    const b = eps[j];
    return this.cost(b) < this.cost(a) ? b : a;
  }

  private stateOf(e: Endpoint): PeakEwma {
    let s = e.ewma;
    if (s === null) {
      s = new PeakEwma(this.o.clock.now(), this.o.tauMs ?? DEFAULT_TAU_MS, this.o.initialRttMs ?? DEFAULT_RTT_MS);
      e.ewma = s;
    }
    return s;
  }
}
