// The snapshot of the one-line mode: `bowline proxy --listen HOST:PORT --to HOST:PORT [...]`:
// one HTTP-detecting listener whose every request (and any opaque stream) goes to one service.

import {
  type BalancerKind,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_DETECT_TIMEOUT_MS,
  DEFAULT_HTTP_SETTINGS,
  DEFAULT_MCP_SETTINGS,
  DEFAULT_POOL_SETTINGS,
  type EngineSnapshot,
  type SocketAddress,
  type UpstreamProtocol,
} from '../../engine/config/snapshot';

export interface OneLineOptions {
  listen: SocketAddress;
  /** Upstream endpoints, each with an optional zone. */
  to: { address: SocketAddress; zone: string }[];
  zone?: string;
  version?: string;
  balancer?: BalancerKind;
  /** How requests go to the endpoints (default 'auto': the version the client spoke). */
  upstreamProtocol?: UpstreamProtocol;
  /** Inspect all HTTP traffic that is MCP (per-tool metrics without a config file). */
  mcp?: boolean;
}

/** Whether a --upstream-protocol value is one the engine knows. */
export function isUpstreamProtocol(v: string): v is UpstreamProtocol {
  return v === 'http1' || v === 'h2c' || v === 'auto';
}

export function oneLineSnapshot(o: OneLineOptions): EngineSnapshot {
  return {
    version: o.version ?? 'cli-1',
    zone: o.zone ?? '',
    opaquePorts: [],
    http: { ...DEFAULT_HTTP_SETTINGS },
    listeners: [
      {
        name: 'proxy',
        address: o.listen,
        direction: 'outbound',
        protocol: 'detect',
        routes: ['default'],
        defaultService: 'upstream',
        detectTimeoutMs: DEFAULT_DETECT_TIMEOUT_MS,
      },
    ],
    services: [
      {
        name: 'upstream',
        endpoints: o.to.map((t) => ({ address: t.address, zone: t.zone, weight: 1 })),
        pool: { ...DEFAULT_POOL_SETTINGS },
        connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
        balancer: o.balancer,
        protocol: o.upstreamProtocol ?? 'auto',
      },
    ],
    routes: [{ name: 'default', hostnames: [], matches: [], backends: [{ service: 'upstream', weight: 1 }], requestTimeoutMs: 0 }],
    ...(o.mcp === true ? { mcp: { ...DEFAULT_MCP_SETTINGS, inspectAll: true, policies: [] } } : {}),
  };
}
