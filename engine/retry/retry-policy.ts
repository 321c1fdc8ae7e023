// A retry policy compiled for the hot path: which failures may be retried, for which requests, how
// often, and the budget shared by all requests under the policy (one per route, or per service).

import { GRPC_RETRY_CODES, type GrpcRetryCondition, type RetryPolicy } from '../config/snapshot';
import type { Counter } from '../metrics/registry';
import { RetryBudget, retryBackoffMs } from './retry-budget';

export interface RetryCounters {
  retries: Counter;
  budgetExhausted: Counter;
  limitExceeded: Counter;
}

export const enum RetryOn {
  Status5xx = 1,
  GatewayError = 2,
  ConnectFailure = 4,
  Reset = 8,
  StatusCodes = 16,
  /** gRPC conditions: a grpc-status in the response headers (a trailers-only answer). */
  GrpcCodes = 32,
}

/** How an attempt failed before a usable response, as far as retries care. */
export const enum AttemptFailure {
  /** Refused, unreachable, connect timeout: the request never reached the upstream. */
  Connect = 0,
  /** The connection broke before the response head. */
  Reset,
  /** The per-attempt response deadline passed (a gateway timeout). */
  ResponseTimeout,
  /** The upstream sent something that is not HTTP (a bad gateway). */
  BadResponse,
}

export class CompiledRetry {
  readonly mask: number;
  readonly maxRetries: number;
  readonly maxBodyBytes: number;
  readonly nonIdempotent: boolean;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  readonly budget: RetryBudget;
  private readonly statusCodes: Set<number>;
  /** Bit n set: grpc-status n is retried. */
  private readonly grpcCodes: number;

  constructor(
    p: RetryPolicy,
    readonly counters: RetryCounters,
  ) {
    let mask = 0;
    let grpc = 0;
    for (const c of p.on) {
      const g = GRPC_RETRY_CODES[c as GrpcRetryCondition];
      if (g !== undefined) {
        grpc |= 1 << g;
        mask |= RetryOn.GrpcCodes;
        continue;
      }
      if (c === '5xx') mask |= RetryOn.Status5xx;
      else if (c === 'gateway-error') mask |= RetryOn.GatewayError;
      else if (c === 'connect-failure') mask |= RetryOn.ConnectFailure;
      else if (c === 'reset') mask |= RetryOn.Reset;
      else mask |= RetryOn.StatusCodes;
    }
    this.mask = mask;
    this.grpcCodes = grpc;
    this.maxRetries = p.maxRetries;
    this.maxBodyBytes = p.maxBodyBytes;
    this.nonIdempotent = p.nonIdempotent;
    this.backoffBaseMs = p.backoffBaseMs;
    this.backoffMaxMs = p.backoffMaxMs;
    this.statusCodes = new Set(p.statusCodes);
    this.budget = new RetryBudget(p.budget);
  }

  /** Whether a response with this status may be retried (before anything of it reached the client). */
  retriesStatus(status: number): boolean {
    const m = this.mask;
    if (m === RetryOn.ConnectFailure) return false; // the default policy: fast path
    if ((m & RetryOn.Status5xx) !== 0 && status >= 500 && status <= 599) return true;
    if ((m & RetryOn.GatewayError) !== 0 && (status === 502 || status === 503 || status === 504)) return true;
    return (m & RetryOn.StatusCodes) !== 0 && this.statusCodes.has(status);
  }

  /** Whether a gRPC answer with this grpc-status in its headers (trailers-only) may be retried. */
  retriesGrpc(grpcStatus: number): boolean {
    return grpcStatus > 0 && grpcStatus < 31 && (this.grpcCodes & (1 << grpcStatus)) !== 0;
  }

  /**
   * Whether a failed attempt may be retried. As in Envoy, 5xx and gateway-error cover attempts that
   * got no response at all (the proxy answers those with 502 or 504 itself), reset covers a broken
   * connection and a per-attempt timeout, and listed status codes match the local answer's status.
   */
  retriesFailure(f: AttemptFailure): boolean {
    const m = this.mask;
    if ((m & (RetryOn.Status5xx | RetryOn.GatewayError)) !== 0) return true;
    switch (f) {
      case AttemptFailure.Connect:
        if ((m & RetryOn.ConnectFailure) !== 0) return true;
        break;
      case AttemptFailure.Reset:
      case AttemptFailure.ResponseTimeout:
        if ((m & RetryOn.Reset) !== 0) return true;
        break;
      default:
        break;
    }
    return (m & RetryOn.StatusCodes) !== 0 && this.statusCodes.has(f === AttemptFailure.ResponseTimeout ? 504 : 502);
  }

  /**
   * The backoff before retry number `done + 1` of a request, or -1 when it may not happen: past
   * maxRetries, past the request's deadline (0: none), or beyond the budget. Spends from the budget
   * and counts when it returns a delay; `rand` is uniform [0, 1) for the jitter.
   */
  nextDelay(done: number, deadlineMs: number, nowMs: number, rand: number): number {
    if (done >= this.maxRetries) {
      this.counters.limitExceeded.value++;
      return -1;
    }
    const delay = retryBackoffMs(done, this.backoffBaseMs, this.backoffMaxMs, rand);
    if (deadlineMs !== 0 && nowMs + delay >= deadlineMs) return -1;
    if (!this.budget.withdraw(nowMs)) {
      this.counters.budgetExhausted.value++;
      return -1;
    }
    this.counters.retries.value++;
    return delay;
  }

  /** Whether failures after the request was sent may be retried for this method (connect failures always may). */
  mayResend(idempotent: boolean): boolean {
    return idempotent || this.nonIdempotent;
  }
}
