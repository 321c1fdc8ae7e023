// What the proxy reads of gRPC on HTTP/2: the deadline a client set (grpc-timeout), whether a request
// is gRPC, and which grpc-status codes mean the server failed (for balancing) rather than the call.

const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/**
 * grpc-timeout in milliseconds (gRPC over HTTP/2: 1-8 ASCII digits and a unit H M S m u n), or -1
 * when absent or malformed (a malformed one is ignored, as grpc-go does). Sub-millisecond deadlines
 * round up to 1 ms so that they still expire rather than meaning "none".
 */
export function parseGrpcTimeout(v: string | string[] | undefined): number {
  if (typeof v !== 'string') return -1;
  const n = v.length;
  if (n < 2 || n > 9) return -1;
  const unit = TIMEOUT_UNIT_MS[v[n - 1]!];
  if (unit === undefined) return -1;
  let x = 0;
  for (let i = 0; i < n - 1; i++) {
    const c = v.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    x = x * 10 + c;
  }
  return Math.max(1, Math.ceil(x * unit));
}

export function isGrpc(contentType: string | string[] | undefined): boolean {
  return typeof contentType === 'string' && contentType.startsWith('application/grpc');
}

/** The grpc-status of a header or trailer block, or -1 when it has none (or not a number). */
export function grpcStatusOf(block: Record<string, unknown> | null | undefined): number {
  if (block === null || block === undefined) return -1;
  const v = block['grpc-status'];
  if (typeof v !== 'string' || v.length === 0 || v.length > 2) return -1;
  const n = Number(v);
  return Number.isInteger(n) ? n : -1;
}

/**
 * Codes that say the server (not the call) failed, for failure accrual: UNKNOWN, DEADLINE_EXCEEDED,
 * INTERNAL, UNAVAILABLE, DATA_LOSS, the gRPC counterparts of a 5xx (as Envoy's outlier detection maps them).
 */
export function grpcServerFailure(code: number): boolean {
  return code === 2 || code === 4 || code === 13 || code === 14 || code === 15;
}

/** Codes answered like a 503/429 for the balancer's penalty: UNAVAILABLE, RESOURCE_EXHAUSTED. */
export function grpcShed(code: number): boolean {
  return code === 14 || code === 8;
}
