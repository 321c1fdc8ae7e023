// Peak-EWMA latency estimate of one endpoint, with Linkerd's semantics: a slower sample replaces the
// estimate at once (react to trouble fast), a faster one is averaged in with weight 1 - e^(-dt/tau)
// (recover slowly), and the estimate decays toward zero while no sample arrives, so that an endpoint
// that was slow long ago gets tried again. Times come from the caller (an injected Clock).

export const DEFAULT_TAU_MS = 10_000;
export const DEFAULT_RTT_MS = 30;

export class PeakEwma {
  private rttMs: number;
  private lastMs: number;

  constructor(
    nowMs: number,
    private readonly tauMs = DEFAULT_TAU_MS,
    initialRttMs = DEFAULT_RTT_MS,
  ) {
    this.rttMs = initialRttMs;
    this.lastMs = nowMs;
  }

  /** The estimate at `nowMs`, decayed since the last update. */
  estimateMs(nowMs: number): number {
    const dt = nowMs - this.lastMs;
    return dt <= 0 ? this.rttMs : this.rttMs * Math.exp(-dt / this.tauMs);
  }

  /** Records a round-trip time (request sent to first response byte). */
  observe(sampleMs: number, nowMs: number): void {
    const current = this.estimateMs(nowMs);
    if (sampleMs > current) {
      this.rttMs = sampleMs;
    } else {
      const w = 1 - Math.exp(-Math.max(0, nowMs - this.lastMs) / this.tauMs);
      this.rttMs = current * (1 - w) + sampleMs * w;
    }
    this.lastMs = nowMs;
  }
}
