// Linkerd-style retry budget: retries in any window (10 s by default, in 50 slots) may be at most
// `ratio` of the requests that arrived in it, with a floor of minPerSecond x window so that quiet
// services can still retry. During a full outage the upstream therefore sees at most (1 + ratio)
// times the offered rate, however many retries each request would be allowed. Injected clock times.

import type { RetryBudgetSettings } from '../config/snapshot';

// Finer slots make the window slide more smoothly (a window not aligned with the slots overshoots
// the ratio by at most one slot's worth).
const SLOTS = 50;

export class RetryBudget {
  private readonly slotMs: number;
  private readonly requests = new Float64Array(SLOTS);
  private readonly retries = new Float64Array(SLOTS);
  /** Absolute slot number (time / slotMs) of the newest slot. */
  private head = -Infinity;
  private sumRequests = 0;
  private sumRetries = 0;
  private readonly floor: number;

  constructor(private readonly s: RetryBudgetSettings) {
    this.slotMs = Math.max(1, s.windowMs / SLOTS);
    this.floor = (s.minPerSecond * s.windowMs) / 1000;
  }

  /** Counts one request (first attempts only). */
  deposit(nowMs: number): void {
    this.advance(nowMs);
    this.requests[this.head % SLOTS]!++;
    this.sumRequests++;
  }

  /** Takes one retry from the budget; false when it is spent. */
  withdraw(nowMs: number): boolean {
    this.advance(nowMs);
    if (this.sumRetries + 1 > Math.max(this.floor, this.s.ratio * this.sumRequests)) return false;
    this.retries[this.head % SLOTS]!++;
    this.sumRetries++;
    return true;
  }

  /** Retries still allowed in the current window (for tests and metrics). */
  remaining(nowMs: number): number {
    this.advance(nowMs);
    return Math.max(0, Math.floor(Math.max(this.floor, this.s.ratio * this.sumRequests) - this.sumRetries));
  }

  private advance(nowMs: number): void {
    const slot = Math.floor(nowMs / this.slotMs);
    if (slot <= this.head) return;
    if (slot - this.head >= SLOTS) {
      this.requests.fill(0);
      this.retries.fill(0);
      this.sumRequests = this.sumRetries = 0;
    } else {
      for (let k = this.head + 1; k <= slot; k++) {
        const i = k % SLOTS;
        this.sumRequests -= this.requests[i]!;
        this.sumRetries -= this.retries[i]!;
        this.requests[i] = 0;
        this.retries[i] = 0;
      }
    }
    this.head = slot;
  }
}

/** Exponential backoff with full jitter: uniform in [0, min(max, base x 2^retry)). `rand` in [0, 1). */
export function retryBackoffMs(retry: number, baseMs: number, maxMs: number, rand: number): number {
  return rand * Math.min(maxMs, baseMs * 2 ** Math.min(retry, 30));
}
