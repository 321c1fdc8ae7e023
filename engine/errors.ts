// Stable error codes for everything the proxy refuses or fails at, and the one table that maps each
// to the HTTP status of its local reply. Codes are also the `l5d-proxy-error` header value and the
// `error` metric label, so they never change once published.

export const enum ErrorCode {
  None = 0,
  // 400: the client sent a malformed message (RFC 9112).
  BadRequestLine,
  BadVersion,
  BareLf,
  BareCr,
  BadHeaderName,
  BadHeaderValue,
  WhitespaceBeforeColon,
  ObsFold,
  MissingHost,
  DuplicateHost,
  BadContentLength,
  DuplicateContentLength,
  ContentLengthWithTransferEncoding,
  BadTransferEncoding,
  BadChunkSize,
  BadChunkExtension,
  BadChunkFraming,
  BadTrailer,
  // 505
  VersionNotSupported,
  // 431
  HeadTooLarge,
  TooManyHeaders,
  // 408
  HeadTimeout,
  // 502/503/504: the upstream side failed.
  UpstreamConnectFailed,
  UpstreamReset,
  UpstreamBadResponse,
  UpstreamHeadTooLarge,
  NoEndpoints,
  NoRoute,
  ConnectTimeout,
  ResponseTimeout,
  RequestTimeout,
  Draining,
  /** The service's balancer queue is full. */
  LoadShed,
  /** A request waited in the balancer queue past the fail-fast timeout. */
  FailFast,
  /** An exchange saw no bytes either way for the idle timeout. */
  IdleTimeout,
  /** A meshed endpoint needs mutual TLS and this proxy has no identity (yet). */
  NoIdentity,
  /** The authorization policy denies this client. */
  Unauthorized,
}

interface ErrorInfo {
  status: number;
  reason: string;
  /** The value of the l5d-proxy-error response header and the metric label. */
  name: string;
}

const TABLE: ErrorInfo[] = [];
function def(code: ErrorCode, status: number, name: string, reason: string): void {
  TABLE[code] = { status, name, reason };
}
def(ErrorCode.None, 500, 'none', 'Internal Server Error');
def(ErrorCode.BadRequestLine, 400, 'bad-request-line', 'Bad Request');
def(ErrorCode.BadVersion, 400, 'bad-version', 'Bad Request');
def(ErrorCode.BareLf, 400, 'bare-lf', 'Bad Request');
def(ErrorCode.BareCr, 400, 'bare-cr', 'Bad Request');
def(ErrorCode.BadHeaderName, 400, 'bad-header-name', 'Bad Request');
def(ErrorCode.BadHeaderValue, 400, 'bad-header-value', 'Bad Request');
def(ErrorCode.WhitespaceBeforeColon, 400, 'whitespace-before-colon', 'Bad Request');
def(ErrorCode.ObsFold, 400, 'obs-fold', 'Bad Request');
def(ErrorCode.MissingHost, 400, 'missing-host', 'Bad Request');
def(ErrorCode.DuplicateHost, 400, 'duplicate-host', 'Bad Request');
def(ErrorCode.BadContentLength, 400, 'bad-content-length', 'Bad Request');
def(ErrorCode.DuplicateContentLength, 400, 'duplicate-content-length', 'Bad Request');
def(ErrorCode.ContentLengthWithTransferEncoding, 400, 'content-length-with-transfer-encoding', 'Bad Request');
def(ErrorCode.BadTransferEncoding, 400, 'bad-transfer-encoding', 'Bad Request');
def(ErrorCode.BadChunkSize, 400, 'bad-chunk-size', 'Bad Request');
def(ErrorCode.BadChunkExtension, 400, 'bad-chunk-extension', 'Bad Request');
def(ErrorCode.BadChunkFraming, 400, 'bad-chunk-framing', 'Bad Request');
def(ErrorCode.BadTrailer, 400, 'bad-trailer', 'Bad Request');
def(ErrorCode.VersionNotSupported, 505, 'version-not-supported', 'HTTP Version Not Supported');
def(ErrorCode.HeadTooLarge, 431, 'head-too-large', 'Request Header Fields Too Large');
def(ErrorCode.TooManyHeaders, 431, 'too-many-headers', 'Request Header Fields Too Large');
def(ErrorCode.HeadTimeout, 408, 'head-timeout', 'Request Timeout');
def(ErrorCode.UpstreamConnectFailed, 502, 'connect-failed', 'Bad Gateway');
def(ErrorCode.UpstreamReset, 502, 'upstream-reset', 'Bad Gateway');
def(ErrorCode.UpstreamBadResponse, 502, 'bad-upstream-response', 'Bad Gateway');
def(ErrorCode.UpstreamHeadTooLarge, 502, 'upstream-head-too-large', 'Bad Gateway');
def(ErrorCode.NoEndpoints, 503, 'no-endpoints', 'Service Unavailable');
def(ErrorCode.NoRoute, 404, 'no-route', 'Not Found');
def(ErrorCode.ConnectTimeout, 504, 'connect-timeout', 'Gateway Timeout');
def(ErrorCode.ResponseTimeout, 504, 'response-timeout', 'Gateway Timeout');
def(ErrorCode.RequestTimeout, 504, 'request-timeout', 'Gateway Timeout');
def(ErrorCode.Draining, 503, 'draining', 'Service Unavailable');
def(ErrorCode.LoadShed, 503, 'load-shed', 'Service Unavailable');
def(ErrorCode.FailFast, 504, 'fail-fast', 'Gateway Timeout');
def(ErrorCode.IdleTimeout, 504, 'idle-timeout', 'Gateway Timeout');
def(ErrorCode.NoIdentity, 502, 'no-identity', 'Bad Gateway');
def(ErrorCode.Unauthorized, 403, 'unauthorized', 'Forbidden');

export function errorInfo(code: ErrorCode): ErrorInfo {
  return TABLE[code] ?? TABLE[ErrorCode.None];
}

const replyCache = new Map<string, Buffer>();

/**
 * The bytes of a local reply. Cached per (code, close) since the set is small; the body names the
 * cause in one line so that curl users see it without -v.
 */
export function localReply(code: ErrorCode, close: boolean): Buffer {
  const key = `${code}|${close ? 1 : 0}`;
  let b = replyCache.get(key);
  if (b === undefined) {
    const info = errorInfo(code);
    const body = `${info.reason}: ${info.name}\n`;
    b = Buffer.from(
      `HTTP/1.1 ${info.status} ${info.reason}\r\n` +
        `content-type: text/plain\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\n` +
        `l5d-proxy-error: ${info.name}\r\n` +
        (close ? 'connection: close\r\n' : '') +
        `\r\n${body}`,
      'latin1',
    );
    replyCache.set(key, b);
  }
  return b;
}

/**
 * The gRPC status of each local reply that a gRPC client gets instead of a bare HTTP status:
 * PERMISSION_DENIED for a policy, UNIMPLEMENTED for no route, DEADLINE_EXCEEDED when a deadline of
 * the request passed, RESOURCE_EXHAUSTED for a malformed or oversized request; UNAVAILABLE (14, which
 * clients may retry) for everything else: no endpoint, a failed connection, load shedding, draining.
 */
const GRPC_STATUS: Partial<Record<ErrorCode, number>> = {
  [ErrorCode.Unauthorized]: 7,
  [ErrorCode.NoRoute]: 12,
  [ErrorCode.RequestTimeout]: 4,
  [ErrorCode.ResponseTimeout]: 4,
  [ErrorCode.IdleTimeout]: 4,
  [ErrorCode.HeadTooLarge]: 8,
  [ErrorCode.TooManyHeaders]: 8,
};

export function grpcStatusFor(code: ErrorCode): number {
  return GRPC_STATUS[code] ?? 14;
}

/**
 * A local reply for a gRPC request: 200 with the status in the headers (trailers-only), as gRPC
 * clients expect (a 403 would read as UNKNOWN). Codes without a gRPC mapping get UNAVAILABLE (14).
 */
export function grpcLocalReply(code: ErrorCode, close: boolean): Buffer {
  const key = `g${code}|${close ? 1 : 0}`;
  let b = replyCache.get(key);
  if (b === undefined) {
    const info = errorInfo(code);
    b = Buffer.from(
      `HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ngrpc-status: ${grpcStatusFor(code)}\r\ngrpc-message: ${info.name}\r\n` +
        `l5d-proxy-error: ${info.name}\r\ncontent-length: 0\r\n${close ? 'connection: close\r\n' : ''}\r\n`,
      'latin1',
    );
    replyCache.set(key, b);
  }
  return b;
}
