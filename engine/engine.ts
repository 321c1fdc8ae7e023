// The data plane of one thread: compiles snapshots into listener runtimes, route tables and
// endpoint pools, takes accepted sockets through detection to the HTTP/1 or TCP handlers, sweeps
// timeouts, drains gracefully and reports its metrics. It does not listen or know where config
// came from: the worker layer hands it sockets and snapshots.

import type * as net from 'node:net';
import { Balancer, type BalancerEvents, HealthEpoch } from './balance/balancer';
import { LeastRequestPicker } from './balance/least-request';
import { P2cPeakEwmaPicker } from './balance/p2c';
import { type Picker, RoundRobinPicker } from './balance/picker';
import { RequestQueue } from './balance/request-queue';
import { type Clock, systemClock } from './clock';
import { Cluster } from './cluster';
import {
  type BalancerKind,
  DEFAULT_BALANCER,
  DEFAULT_MCP_SETTINGS,
  DEFAULT_FAILURE_ACCRUAL,
  DEFAULT_FAILURE_PENALTY,
  DEFAULT_QUEUE,
  DEFAULT_RETRY_POLICY,
  DEFAULT_TIMEOUTS,
  DEFAULT_ZONE_LOCALITY,
  DEFAULT_ZONE_TRANSFER_USD_PER_GB,
  type EngineSnapshot,
  type RetryPolicy,
  type ServiceSnapshot,
  DEFAULT_POOL_SETTINGS,
} from './config/snapshot';
import type { ListenerRuntime, ProxyContext, TrackedConnection } from './context';
import { Detected, detectProtocol, DETECT_MAX_BYTES } from './detect';
import { Http1Downstream } from './http1/downstream';
import type { H2Downstream } from './http2/h2-downstream';
import { Inbound, markConsumesWrites } from './io/inbound';
import { MetricsRegistry, type Sample, type TcpStats, type WorkerMetricsSnapshot } from './metrics/registry';
import { ZoneTraffic } from './metrics/zone-traffic';
import { CompiledRetry } from './retry/retry-policy';
import { Authorizer, type Decision } from './policy/authorizer';
import type { McpInspector } from './mcp/inspector';
import { RateLimitedLog } from './rate-limited-log';
import { Endpoint, endpointKey } from './pool/endpoint';
import { CompiledRoute, RouteTable } from './router/route-table';
import { TcpForward } from './tcp/tcp-forward';
import type { MeshTls } from './tls/mesh-tls';

const enum LoopCheck {
  Ok = 0,
  Refused,
  /** Not known yet: check again after this turn of the event loop. */
  Later,
}

/** The backend label of connections passed straight to their original destination. */
export const ORIGINAL_DST_BACKEND = 'original-dst';
const DEFAULT_CONNECT_TIMEOUT_MS = 1000;

export interface EngineOptions {
  workerId?: number;
  clock?: Clock;
  /** How often timeouts are checked; timeouts fire up to this late. */
  sweepIntervalMs?: number;
  /** Called when the number of open client connections changes (for accept balancing). */
  onClientCountChange?: (open: number) => void;
  /**
   * Local ports of this proxy's upstream connections, one byte per port, shared by the workers of a
   * process (a SharedArrayBuffer): a redirected connection from one of them is a loop.
   */
  ownPorts?: Uint8Array;
  /** Uniform [0, 1) randomness for balancing (default Math.random). */
  rng?: () => number;
  /** Where internal errors are reported (default: stderr, at most one line per second). */
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

export class Engine implements ProxyContext {
  readonly clock: Clock;
  readonly rng: () => number;
  readonly metrics = new MetricsRegistry();
  generation = 0;
  draining = false;
  private version = '';
  private readonly workerId: number;
  private listeners = new Map<string, ListenerRuntime>();
  private endpoints = new Map<string, Endpoint>();
  private clusters = new Map<string, Cluster>();
  meshTls: MeshTls | null = null;
  mcp: McpInspector | null = null;
  private readonly healthEpoch = new HealthEpoch();
  /** Balancer queues by service name: they survive reloads with their waiters. */
  private queues = new Map<string, RequestQueue>();
  private readonly tracked = new Set<TrackedConnection>();
  private readonly clients = new Map<net.Socket, TcpStats>();
  /** Sockets still in protocol detection (nothing tracks them yet), by listener name. */
  private readonly detecting = new Map<net.Socket, string>();
  private readonly sweeper: NodeJS.Timeout;
  private elu = performance.eventLoopUtilization();
  private readonly onClientCountChange: ((open: number) => void) | undefined;
  private readonly log: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
  /** Denials and audited requests: clients cause them, so they are rate-limited. */
  private readonly authzLog: RateLimitedLog;
  private lastErrorLogMs = 0;
  private readonly ownPorts: Uint8Array;
  /** Some listener takes redirected connections: upstream sockets' ports are recorded for loop checks. */
  private interception = false;
  private opaquePorts = new Set<number>();

  constructor(opts: EngineOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.rng = opts.rng ?? Math.random;
    this.workerId = opts.workerId ?? 0;
    this.onClientCountChange = opts.onClientCountChange;
    this.ownPorts = opts.ownPorts ?? new Uint8Array(65536);
    this.log = opts.log ?? ((level, msg, fields) => process.stderr.write(`${level}: ${msg}${fields === undefined ? '' : ` ${JSON.stringify(fields)}`}\n`));
    this.authzLog = new RateLimitedLog(this.log, 'authorization decisions');
    this.sweeper = setInterval(() => this.sweep(), opts.sweepIntervalMs ?? 100);
    this.sweeper.unref();
  }

  get configVersion(): string {
    return this.version;
  }

  get openClientConnections(): number {
    return this.clients.size;
  }

  listener(name: string): ListenerRuntime | undefined {
    return this.listeners.get(name);
  }

  track(c: TrackedConnection): void {
    this.tracked.add(c);
  }

  untrack(c: TrackedConnection): void {
    this.tracked.delete(c);
  }

  internalError(where: string, e: unknown): void {
    this.metrics.countInternalError(where);
    const now = Date.now();
    if (now - this.lastErrorLogMs >= 1000) {
      this.lastErrorLogMs = now;
      this.log('error', `internal error in ${where} (connection closed): ${(e as Error)?.stack ?? String(e)}`);
    }
  }

  authzDecision(kind: 'http' | 'tcp', d: Decision, identity: string | null, address: string, target: string): void {
    const labels: Record<string, string> = { srv_name: d.server, authz_name: d.policy };
    if (identity !== null) labels['client_id'] = identity;
    if (d.allowed && !d.audited) {
      this.metrics.counter(kind === 'http' ? 'inbound_http_authz_allow_total' : 'inbound_tcp_authz_allow_total', labels).value++;
      return;
    }
    labels['mode'] = d.audited ? 'audit' : 'enforce';
    this.metrics.counter(kind === 'http' ? 'inbound_http_authz_deny_total' : 'inbound_tcp_authz_deny_total', labels).value++;
    this.authzLog.info(d.audited ? 'authorization audit: would deny, allowed' : 'authorization denied', {
      protocol: kind,
      target,
      client: address,
      clientId: identity,
      server: d.server === '' ? null : d.server,
      policy: d.policy === '' ? null : d.policy,
    });
  }

  /** Compiles and swaps in a snapshot (assumed validated). Open connections pick it up per request. */
  apply(s: EngineSnapshot): void {
    const endpoints = new Map<string, Endpoint>();
    const clusters = new Map<string, Cluster>();
    if (s.identity === undefined) this.meshTls = null;
    else if (this.meshTls === null || !this.meshTls.sameAs(s.identity)) {
      // Loaded only with an identity: node:tls costs memory a plaintext proxy does not spend.
      const { MeshTls: Mesh } = require('./tls/mesh-tls') as typeof import('./tls/mesh-tls');
      this.meshTls = new Mesh(s.identity);
    }
    for (const svc of s.services) clusters.set(svc.name, this.buildCluster(svc, s, endpoints));
    // Original-destination routing: an address belongs to the service that lists it as an endpoint.
    const byAddress = new Map<string, Cluster>();
    for (const c of clusters.values()) for (const ep of c.endpoints) if (!byAddress.has(ep.key)) byAddress.set(ep.key, c);
    this.clustersByAddress = byAddress;
    for (const c of this.passthrough.values()) for (const ep of c.endpoints) {
      ep.live = false;
      ep.closeIdle();
    }
    this.passthrough.clear();
    for (const [key, ep] of this.endpoints) {
      if (!endpoints.has(key)) {
        ep.live = false;
        ep.closeIdle();
      }
    }
    const routes = new Map(s.routes.map((r) => [r.name, r]));
    const listeners = new Map<string, ListenerRuntime>();
    const compiledRoutes = new Map<string, CompiledRoute>();
    let authorizer: Authorizer | null = null;
    if (s.policy !== undefined) {
      const services = new Map(s.services.map((x) => [x.name, x]));
      const appPorts = new Map<string, number[]>();
      for (const l of s.listeners) {
        const svc = l.direction === 'inbound' && l.defaultService !== undefined ? services.get(l.defaultService) : undefined;
        if (svc !== undefined) appPorts.set(l.name, [...new Set(svc.endpoints.map((e) => e.address.port))]);
      }
      authorizer = new Authorizer(s.policy, s.routes, appPorts);
    }
    for (const l of s.listeners) {
      const table = new RouteTable(
        l.routes.map((n) => {
          let c = compiledRoutes.get(n);
          if (c === undefined) {
            const r = routes.get(n)!;
            // A route's retry budget is shared by every listener that uses the route.
            c = new CompiledRoute(r, clusters, r.retry === undefined ? null : this.compileRetry(r.retry, r.name, ''));
            compiledRoutes.set(n, c);
          }
          return c;
        }),
      );
      listeners.set(l.name, {
        name: l.name,
        direction: l.direction,
        snapshot: l,
        table,
        defaultCluster: l.defaultService !== undefined ? clusters.get(l.defaultService) ?? null : null,
        opaque: l.protocol === 'opaque' || s.opaquePorts.includes(l.address.port),
        http: s.http,
        srcTcp: this.metrics.tcpStats(l.direction, 'src'),
        dstTcp: this.metrics.tcpStats(l.direction, 'dst'),
        authorizer: l.direction === 'inbound' ? authorizer : null,
      });
    }
    // MCP inspection: where routes are marked or the settings ask for it (the one-line --mcp).
    const mcpServers = new Set((s.policy?.servers ?? []).filter((x) => x.mcp === true).map((x) => x.name));
    if (s.mcp !== undefined || s.routes.some((r) => r.mcp === true) || s.listeners.some((l) => l.mcp === true) || mcpServers.size > 0) {
      const { McpInspector } = require('./mcp/inspector') as typeof import('./mcp/inspector');
      this.mcp = new McpInspector(s.mcp ?? DEFAULT_MCP_SETTINGS, s.routes.map((r) => r.name), this.metrics, this.log, () => this.clock.now(), mcpServers);
    } else {
      this.mcp = null;
    }
    for (const name of this.queues.keys()) if (!clusters.has(name) && this.queues.get(name)!.inFlight === 0 && this.queues.get(name)!.waiting === 0) this.queues.delete(name);
    this.endpoints = endpoints;
    this.clusters = clusters;
    this.lastSnapshot = s;
    this.interception = s.listeners.some((l) => l.originalDst === true);
    this.opaquePorts = new Set(s.opaquePorts);
    this.listeners = listeners;
    this.version = s.version;
    this.generation++;
    // Connections of removed listeners finish their current exchange and close.
    for (const c of this.tracked) {
      if (c.listenerName !== undefined && !listeners.has(c.listenerName)) c.drain();
    }
    for (const [sock, name] of this.detecting) if (!listeners.has(name)) sock.destroy();
  }

  /** A service as this worker runs it; endpoints are shared through `endpoints` (and kept across reloads). */
  private buildCluster(svc: ServiceSnapshot, s: EngineSnapshot, endpoints: Map<string, Endpoint>): Cluster {
    const eps: Endpoint[] = [];
    for (const e of svc.endpoints) {
      const key = endpointKey(e.address.host, e.address.port);
      let ep = endpoints.get(key) ?? this.endpoints.get(key);
      if (ep === undefined) ep = new Endpoint(e.address.host, e.address.port, e.zone, e.weight, svc.pool);
      ep.zone = e.zone;
      ep.weight = e.weight;
      ep.pool = svc.pool;
      ep.live = true;
      if ((ep.identity ?? undefined) !== e.identity) {
        // Plaintext and mesh TLS connections do not mix in one pool.
        ep.closeIdle();
        ep.identity = e.identity ?? null;
      }
      ep.traffic = this.zoneTraffic(s.zone, e.zone, s.zoneTransferUsdPerGb ?? DEFAULT_ZONE_TRANSFER_USD_PER_GB);
      endpoints.set(key, ep);
      eps.push(ep);
    }
    const balancer = new Balancer(eps, {
      picker: this.createPicker(svc.balancer ?? DEFAULT_BALANCER),
      clock: this.clock,
      rng: this.rng,
      accrual: svc.failureAccrual ?? DEFAULT_FAILURE_ACCRUAL,
      penalty: svc.failurePenalty ?? DEFAULT_FAILURE_PENALTY,
      zone: s.zone,
      zoneLocality: svc.zoneLocality ?? DEFAULT_ZONE_LOCALITY,
      events: this.balancerEvents(svc.name),
      epoch: this.healthEpoch,
    });
    const queueSettings = svc.queue ?? DEFAULT_QUEUE;
    let queue = this.queues.get(svc.name);
    if (queue === undefined) this.queues.set(svc.name, (queue = new RequestQueue(queueSettings)));
    else queue.update(queueSettings);
    const m = this.metrics;
    return new Cluster(
      svc.name,
      eps,
      balancer,
      queue,
      svc.connectTimeoutMs,
      this.compileRetry(svc.retry ?? DEFAULT_RETRY_POLICY, '', svc.name),
      svc.timeouts ?? DEFAULT_TIMEOUTS,
      {
        shed: m.counter('balancer_queue_shed_total', { backend: svc.name }),
        failFast: m.counter('balancer_queue_failfast_total', { backend: svc.name }),
      },
      svc,
    );
  }

  ownSocket(s: net.Socket): void {
    if (!this.interception) return;
    const ports = this.ownPorts;
    s.once('connect', () => {
      const p = s.localPort;
      if (p === undefined) return;
      ports[p] = 1;
      s.once('close', () => {
        ports[p] = 0;
      });
    });
  }

  private clustersByAddress = new Map<string, Cluster>();
  /** Clusters of original destinations no service owns (passed straight through), by address; bounded. */
  private readonly passthrough = new Map<string, Cluster>();
  private lastSnapshot: EngineSnapshot | null = null;

  /**
   * Where a connection's traffic goes when no route says: the listener's default service, or, for a
   * connection redirected to this proxy (iptables, `bowline init`), its original destination: the
   * service that lists that address as an endpoint, else the address itself (outbound), or the app's
   * port on localhost (inbound).
   */
  clusterFor(lr: ListenerRuntime, originalDst: readonly [string, number] | null): Cluster | null {
    if (originalDst === null) return lr.defaultCluster;
    const [host, port] = lr.direction === 'inbound' ? ['127.0.0.1', originalDst[1]] : originalDst;
    const key = endpointKey(host, port);
    const owned = this.clustersByAddress.get(key);
    if (owned !== undefined) return owned;
    let c = this.passthrough.get(key);
    if (c === undefined && this.lastSnapshot !== null) {
      if (this.passthrough.size >= 1024) this.passthrough.clear();
      const svc: ServiceSnapshot = {
        name: ORIGINAL_DST_BACKEND,
        endpoints: [{ address: { host, port }, zone: '', weight: 1 }],
        pool: DEFAULT_POOL_SETTINGS,
        connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
      };
      c = this.buildCluster(svc, this.lastSnapshot, new Map());
      this.passthrough.set(key, c);
    }
    return c ?? lr.defaultCluster;
  }

  private readonly zoneTraffics = new Map<string, ZoneTraffic>();

  private zoneTraffic(src: string, dst: string, usdPerGb: number): ZoneTraffic {
    const key = `${src}\u0000${dst}\u0000${usdPerGb}`;
    let t = this.zoneTraffics.get(key);
    if (t === undefined) this.zoneTraffics.set(key, (t = new ZoneTraffic(this.metrics, src, dst, usdPerGb)));
    return t;
  }

  private createPicker(kind: BalancerKind): Picker {
    switch (kind) {
      case 'round-robin':
        return new RoundRobinPicker();
      case 'least-request':
        return new LeastRequestPicker(this.rng);
      default:
        return new P2cPeakEwmaPicker({ rng: this.rng });
    }
  }

  private balancerEvents(service: string): BalancerEvents {
    const ejections = this.metrics.counter('balancer_ejections_total', { backend: service });
    const restorations = this.metrics.counter('balancer_restorations_total', { backend: service });
    return {
      ejected: () => ejections.value++,
      restored: () => restorations.value++,
    };
  }

  private compileRetry(p: RetryPolicy, route: string, backend: string): CompiledRetry {
    const labels = { route, backend };
    const m = this.metrics;
    return new CompiledRetry(p, {
      retries: m.counter('retry_requests_total', labels),
      budgetExhausted: m.counter('retry_budget_exhausted_total', labels),
      limitExceeded: m.counter('retry_limit_exceeded_total', labels),
    });
  }

  /** Takes an accepted client socket of the named listener (and its original destination, as above). */
  handleConnection(listenerName: string, accepted: net.Socket, originalDst: [string, number] | null = null): void {
    const lr = this.listeners.get(listenerName);
    if (lr === undefined || this.draining) {
      accepted.destroy();
      return;
    }
    const inbound = Inbound.adopt(accepted, true);
    inbound.originalDst = originalDst;
    this.serve(listenerName, lr, inbound);
  }

  /**
   * Takes an accepted handle of the named listener (see Inbound.acceptHandles), with the original
   * destination the kernel recorded for it when it was redirected here (SO_ORIGINAL_DST; null: none).
   */
  handleAcceptedHandle(listenerName: string, handle: unknown, originalDst: [string, number] | null = null): void {
    const inbound = Inbound.fromHandle(handle, true);
    inbound.originalDst = originalDst;
    const lr = this.listeners.get(listenerName);
    if (lr === undefined || this.draining) {
      inbound.socket.destroy();
      return;
    }
    this.serve(listenerName, lr, inbound);
  }

  private serve(listenerName: string, lr: ListenerRuntime, inbound: Inbound, checked = false): void {
    const socket = inbound.socket;
    if (inbound.originalDst !== null && !checked) {
      const v = this.checkOriginalDst(lr, inbound, false);
      if (v === LoopCheck.Refused) return;
      if (v === LoopCheck.Later) {
        // A client on this host whose port is not (yet) known as ours: our own connect may complete in
        // the same turn of the event loop as this accept. Decided after the turn, reads held meanwhile.
        inbound.pause();
        setImmediate(() => {
          if (socket.destroyed || this.checkOriginalDst(lr, inbound, true) === LoopCheck.Refused) return;
          inbound.resume();
          this.serve(listenerName, lr, inbound, true);
        });
        return;
      }
    }
    const t = lr.srcTcp;
    t.opened++;
    t.open++;
    this.clients.set(socket, t);
    this.onClientCountChange?.(this.clients.size);
    // The close label names the socket error (ECONNRESET, EPIPE, ...), as Linkerd's errno label does.
    let errno = '';
    socket.once('error', (e: NodeJS.ErrnoException) => {
      errno = e.code ?? 'error';
    });
    socket.once('close', (hadError: boolean) => {
      // The connection may have moved to its client's series (labelClient) since.
      const t = this.clients.get(socket) ?? lr.srcTcp;
      t.open--;
      t.closed++;
      t.readBytes += socket.bytesRead;
      t.writeBytes += socket.bytesWritten;
      if (hadError || errno !== '') {
        const k = errno || 'error';
        t.closeErrors.set(k, (t.closeErrors.get(k) ?? 0) + 1);
      }
      this.clients.delete(socket);
      this.onClientCountChange?.(this.clients.size);
    });
    socket.setNoDelay(true);
    // A redirected connection to an opaque port is opaque whatever listener took it.
    const od = inbound.originalDst;
    if (od !== null && !lr.opaque && this.opaquePorts.has(od[1])) lr = { ...lr, opaque: true };
    if (lr.opaque && (lr.direction !== 'inbound' || this.meshTls === null)) {
      new TcpForward(this, inbound, lr, this.clusterFor(lr, inbound.originalDst), null);
    } else if (lr.snapshot.protocol === 'http1') {
      new Http1Downstream(this, inbound, lr, listenerName).start(null);
    } else {
      this.detect(listenerName, lr, inbound);
    }
  }

  /**
   * A redirected connection: not redirected after all when its original destination is the socket's
   * own address (it was dialled directly); a loop when its client is this proxy itself (the proxy's
   * own traffic redirected back to it, when the UID exclusion of the interception rules is missing):
   * refused and counted, never forwarded again.
   */
  private checkOriginalDst(lr: ListenerRuntime, inbound: Inbound, final: boolean): LoopCheck {
    const socket = inbound.socket;
    const od = inbound.originalDst!;
    if (od[1] === socket.localPort && od[0] === socket.localAddress) {
      inbound.originalDst = null;
      return LoopCheck.Ok;
    }
    const port = socket.remotePort;
    if (port !== undefined && isLocalAddress(socket.remoteAddress)) {
      if (this.ownPorts[port] !== 0) {
        this.metrics.counter('original_dst_loops_total', { direction: lr.direction }).value++;
        this.log('warn', 'connection from this proxy redirected back to it (is the proxy UID excluded from the interception rules?): refused', { listener: lr.name, originalDst: `${od[0]}:${od[1]}` });
        socket.destroy();
        return LoopCheck.Refused;
      }
      if (!final) return LoopCheck.Later;
    }
    if (!lr.snapshot.originalDst) inbound.originalDst = null;
    return LoopCheck.Ok;
  }

  /** An accepted connection whose client proved a mesh identity: its TCP series is labelled with it from now on. */
  private labelClient(socket: net.Socket, lr: ListenerRuntime, identity: string): void {
    const from = this.clients.get(socket);
    if (from === undefined) return;
    const to = this.metrics.tcpStats(lr.direction, 'src', identity);
    from.opened--;
    from.open--;
    to.opened++;
    to.open++;
    this.clients.set(socket, to);
  }

  private detect(listenerName: string, lr: ListenerRuntime, inbound: Inbound): void {
    const socket = inbound.socket;
    let seen: Buffer | null = null;
    this.detecting.set(socket, listenerName);
    const decide = (kind: Detected, ended = false): void => {
      this.detecting.delete(socket);
      inbound.sink = () => {};
      socket.removeListener('timeout', onTimeout);
      socket.removeListener('error', onError);
      socket.removeListener('end', onEnd);
      socket.setTimeout(0);
      // Opaque inbound ports still terminate mesh TLS (the only reason they were detected).
      if (kind === Detected.Http1 && !lr.opaque) {
        new Http1Downstream(this, inbound, lr, listenerName).start(seen, ended);
      } else if (kind === Detected.Http2 && !lr.opaque && !ended) {
        new (h2Downstream())(this, inbound, lr, listenerName, null, seen);
      } else if (kind === Detected.Tls && this.meshTls !== null && !ended && seen !== null) {
        this.terminateMeshTls(listenerName, lr, inbound, seen);
      } else {
        // TLS without a mesh identity is forwarded opaquely.
        new TcpForward(this, inbound, lr, this.clusterFor(lr, inbound.originalDst), seen, ended);
      }
    };
    // A client that closes before deciding: nothing sent means nothing to forward (a health check,
    // or wrk's connect probe); otherwise what it sent is handled as it was going to be.
    const onEnd = (): void => {
      if (seen === null) {
        this.detecting.delete(socket);
        socket.destroy();
      } else {
        decide(detectProtocol(seen) === Detected.Http1 ? Detected.Http1 : Detected.Opaque, true);
      }
    };
    const onData = (chunk: Buffer): void => {
      try {
        const data = seen === null ? chunk : Buffer.concat([seen, chunk]);
        const kind = detectProtocol(data);
        // Bytes kept for the next read are copied out of the socket's read buffer.
        if (kind === Detected.NeedMore && data.length < DETECT_MAX_BYTES) {
          seen = inbound.retain(data);
          return;
        }
        seen = data;
        decide(kind === Detected.NeedMore ? Detected.Opaque : kind);
      } catch (e) {
        this.internalError('detect', e);
        socket.destroy();
      }
    };
    const onTimeout = (): void => decide(seen !== null && detectProtocol(seen) === Detected.Http1 ? Detected.Http1 : Detected.Opaque);
    const onError = (): void => {
      this.detecting.delete(socket);
      socket.destroy();
    };
    socket.on('end', onEnd);
    inbound.sink = onData;
    socket.on('error', onError);
    socket.on('timeout', onTimeout);
    socket.setTimeout(lr.snapshot.detectTimeoutMs);
  }

  /**
   * Mesh TLS inbound: the ClientHello already read goes back to the socket, TLS 1.3 is terminated with
   * this proxy's identity, and the client must present a certificate from the mesh's anchors. The
   * plaintext inside is detected again (HTTP/1 or opaque TCP) and served knowing the peer's identity.
   */
  private terminateMeshTls(listenerName: string, lr: ListenerRuntime, inbound: Inbound, seen: Buffer): void {
    const raw = inbound.socket;
    const mesh = this.meshTls!;
    inbound.sink = () => {};
    raw.unshift(seen);
    const handshakeFailed = this.metrics.counter('tls_handshakes_total', { direction: lr.direction, result: 'failed' });
    const timer = setTimeout(() => {
      mesh.forget(raw);
      raw.destroy();
    }, lr.snapshot.detectTimeoutMs);
    let settled = false;
    raw.once('close', () => {
      clearTimeout(timer);
      mesh.forget(raw);
      // tls.Server drops a client whose certificate does not verify without a word: count it here.
      if (!settled) handshakeFailed.value++;
    });
    mesh.accept(raw, (err, t) => {
      settled = true;
      clearTimeout(timer);
      if (err !== null || t === null) {
        // No client certificate, another CA's, an expired one, not TLS 1.3: refused.
        handshakeFailed.value++;
        raw.destroy();
        return;
      }
      this.metrics.counter('tls_handshakes_total', { direction: lr.direction, result: 'ok' }).value++;
      const { socketPeerIdentity } = require('./tls/mesh-tls') as typeof import('./tls/mesh-tls');
      const peer = socketPeerIdentity(t);
      if (peer !== null) this.labelClient(raw, lr, peer);
      const inner = Inbound.adoptReading(t);
      inner.originalDst = inbound.originalDst;
      markConsumesWrites(inner.socket);
      if (t.alpnProtocol === 'h2' && !lr.opaque) {
        // A peer proxy (or an HTTP/2 client) chose HTTP/2 by ALPN: multiplexed streams from here.
        new (h2Downstream())(this, inner, lr, listenerName, peer, null);
        return;
      }
      // The plaintext's first bytes decide, as they would on a plain connection.
      let first: Buffer | null = null;
      let decided = false;
      const decideInner = (ended: boolean): void => {
        decided = true;
        clearTimeout(innerTimer);
        inner.sink = () => {};
        const kind = first === null ? Detected.Opaque : detectProtocol(first);
        if (kind === Detected.Http1 && !lr.opaque) new Http1Downstream(this, inner, lr, listenerName, peer).start(first, ended);
        else if (kind === Detected.Http2 && !lr.opaque && !ended) new (h2Downstream())(this, inner, lr, listenerName, peer, first);
        else new TcpForward(this, inner, lr, this.clusterFor(lr, inner.originalDst), first, ended, peer);
      };
      // An opaque port forwards at once; elsewhere a protocol where the server speaks first is
      // forwarded opaquely once the client has been silent for the detection timeout.
      const innerTimer = setTimeout(() => {
        if (!decided) decideInner(false);
      }, lr.opaque ? 0 : lr.snapshot.detectTimeoutMs);
      t.once('close', () => clearTimeout(innerTimer));
      inner.sink = (chunk: Buffer) => {
        first = first === null ? Buffer.from(chunk) : Buffer.concat([first, chunk]);
        const kind = detectProtocol(first);
        if (kind === Detected.NeedMore && first.length < DETECT_MAX_BYTES) return;
        decideInner(false);
      };
      t.once('end', () => {
        if (decided) return;
        if (first !== null) decideInner(true);
        else {
          // Closed right after the handshake, nothing sent: nothing to forward (as on plaintext).
          decided = true;
          clearTimeout(innerTimer);
          t.destroy();
        }
      });
    });
  }

  private sweep(): void {
    const now = this.clock.now();
    for (const c of this.tracked) c.sweep(now);
    for (const ep of this.endpoints.values()) ep.sweepIdle(now);
    for (const c of this.passthrough.values()) for (const ep of c.endpoints) ep.sweepIdle(now);
    for (const q of this.queues.values()) if (q.waiting > 0) q.sweep(now);
  }

  /** Balancer state as gauges, read at snapshot time. */
  private balancerGauges(): Sample[] {
    const out: Sample[] = [];
    for (const c of this.clusters.values()) {
      const b = c.balancer;
      const labels = { backend: c.name };
      out.push({ name: 'balancer_endpoints', labels: { ...labels, state: 'ready' }, value: b.readyCount });
      out.push({ name: 'balancer_endpoints', labels: { ...labels, state: 'ejected' }, value: c.endpoints.length - b.readyCount });
      out.push({ name: 'balancer_queue_waiting', labels, value: c.queue.waiting });
      const spill = b.spillZones;
      if (spill !== null) {
        out.push({ name: 'balancer_zones_spilled', labels, value: spill.length });
        out.push({ name: 'balancer_zone_load', labels, value: b.zoneLoad });
      }
    }
    return out;
  }

  metricsSnapshot(): WorkerMetricsSnapshot {
    const e = performance.eventLoopUtilization(this.elu);
    this.elu = performance.eventLoopUtilization();
    return this.metrics.snapshot(this.workerId, e.utilization, this.clients.size, this.version, {
      addOpenBytes: (add) => {
        for (const [sock, t] of this.clients) add(t, sock.bytesRead, sock.bytesWritten);
        for (const c of this.tracked) c.openBytes(add);
      },
    }, this.balancerGauges());
  }

  /**
   * Stops taking new requests: idle keep-alive connections close now, busy ones after their current
   * exchange; whatever is still open after graceMs is closed hard. Resolves when all are closed.
   */
  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    for (const c of this.tracked) c.drain();
    // Connections that have not sent a byte yet are idle: close them like idle keep-alive ones.
    for (const sock of this.detecting.keys()) sock.destroy();
    this.detecting.clear();
    const deadline = Date.now() + graceMs;
    while (this.clients.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const c of this.tracked) c.destroy();
    for (const sock of this.clients.keys()) sock.destroy();
    this.close();
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const ep of this.endpoints.values()) ep.closeIdle();
  }
}

function isLocalAddress(a: string | undefined): boolean {
  return a !== undefined && (a.startsWith('127.') || a === '::1' || a.startsWith('::ffff:127.') || localAddresses().has(a));
}

let local: { at: number; set: Set<string> } | null = null;

/** This host's interface addresses (refreshed every 10 s): a loop's client may use the pod's own IP. */
function localAddresses(): Set<string> {
  const now = Date.now();
  if (local === null || now - local.at > 10_000) {
    const set = new Set<string>();
    for (const list of Object.values((require('node:os') as typeof import('node:os')).networkInterfaces())) for (const i of list ?? []) set.add(i.address);
    local = { at: now, set };
  }
  return local.set;
}

/** HTTP/2 is loaded on its first connection: node:http2 costs memory a proxy of HTTP/1 alone does not spend. */
function h2Downstream(): typeof H2Downstream {
  return (require('./http2/h2-downstream') as typeof import('./http2/h2-downstream')).H2Downstream;
}
