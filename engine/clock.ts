// Injected time source, so that timeouts and (later) balancing are testable with a fake clock.

export interface Clock {
  /** Monotonic milliseconds (fractional). */
  now(): number;
}

export const systemClock: Clock = { now: () => performance.now() };
