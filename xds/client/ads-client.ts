// The proxy's ADS client: one gRPC stream (state-of-the-world or delta) to the control plane named by
// the bootstrap. It subscribes to every listener and cluster, then to the route configurations and
// load assignments they name; validates each response as a whole and ACKs it (or NACKs it with the
// reasons, keeping the last good resources); and emits a new EngineSnapshot whenever the resources
// make a consistent one (make-before-break: a listener waits for its routes, a cluster for its
// endpoints, up to the initial fetch timeout). A lost stream is retried with backoff; the config in
// force keeps serving meanwhile. Runs on the main thread; the engine never sees any of this.

import { controlPlaneChannel } from './control-channel';
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type { EngineSnapshot } from '../../engine/config/snapshot';
import { ADS_SERVICE, serviceDefinition } from '../common/grpc-services';
import { unpackAny } from '../common/protos';
import { CDS_TYPE, EDS_TYPE, LDS_TYPE, RDS_TYPE, type ResourceType, SDS_TYPE, shortType } from '../common/type-urls';
import type { Bootstrap } from './bootstrap';
import type * as E from './envoy-types';
import { describeSecret, type Secret, secretNames, validateSecret } from './secrets';
import { translateXds, validateCluster, validateListener, validateLoadAssignment, validateRouteConfiguration } from './translate';

export interface AdsClientEvents {
  snapshot: [EngineSnapshot];
  /** A response was NACKed (the reasons); the last good config stays. */
  invalid: [Error];
}

export interface AdsClientOptions {
  /** Wait this long for the resources a listener or cluster names before going on without them. */
  initialFetchTimeoutMs?: number;
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
  /** Reconnect backoff bounds. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
}

interface TypeState {
  /** SotW: the version of the last accepted response; delta: unused. */
  version: string;
  nonce: string;
  /** Names subscribed (RDS, EDS); LDS and CDS are wildcard. */
  names: Set<string>;
  /** Delta: resource versions the client holds. */
  versions: Map<string, string>;
}

type Duplex = grpc.ClientDuplexStream<unknown, unknown>;

const WILDCARD_TYPES: readonly ResourceType[] = [CDS_TYPE, LDS_TYPE];

export class AdsClient extends EventEmitter<AdsClientEvents> {
  private readonly client: grpc.Client;
  private stream: Duplex | null = null;
  private stopped = false;
  private readonly lds = new Map<string, E.Listener>();
  private readonly routes = new Map<string, E.RouteConfiguration>();
  private readonly clusters = new Map<string, E.Cluster>();
  private readonly endpoints = new Map<string, E.ClusterLoadAssignment>();
  /** Certificates and trust bundles the transport sockets name (held for mesh TLS). */
  private readonly secrets = new Map<string, Secret>();
  private readonly state = new Map<ResourceType, TypeState>();
  private lastJson = '';
  /** Types that have had a first accepted response: the first snapshot waits for listeners and clusters. */
  private readonly received = new Set<ResourceType>();
  private versionSeq = 0;
  /** Armed while a snapshot waits for resources it names: when it fires, the snapshot goes without them. */
  private waitTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private backoffMs: number;
  private firstResolve: ((s: EngineSnapshot) => void) | null = null;
  private readonly log: NonNullable<AdsClientOptions['log']>;
  private readonly timeoutMs: number;
  /** The secrets held, as the config dump shows them (subjects and expiry, no keys). */
  describeSecrets(): Record<string, unknown>[] {
    return [...this.secrets.values()].map(describeSecret);
  }

  /** Responses accepted and rejected, for metrics and tests. */
  readonly counts = { acks: 0, nacks: 0, reconnects: 0 };

  constructor(
    private readonly bootstrap: Bootstrap,
    private readonly o: AdsClientOptions = {},
  ) {
    super();
    const ads = bootstrap.ads;
    if (ads === null) throw new Error('the bootstrap names no ADS server (dynamic_resources.ads_config)');
    this.log = o.log ?? ((level, msg, f) => process.stderr.write(`${level}: ${msg}${f ? ` ${JSON.stringify(f)}` : ''}\n`));
    this.timeoutMs = o.initialFetchTimeoutMs ?? 15_000;
    this.backoffMs = o.backoffMinMs ?? 500;
    const host = ads.host.includes(':') ? `[${ads.host}]` : ads.host;
    const Client = grpc.makeGenericClientConstructor(serviceDefinition(ADS_SERVICE), 'AggregatedDiscoveryService');
    const channel = controlPlaneChannel(ads.tls);
    this.client = new Client(`${host}:${ads.port}`, channel.credentials, { 'grpc.max_receive_message_length': 256 * 1024 * 1024, ...channel.options });
    for (const c of bootstrap.static.clusters) if (c.name !== undefined) this.clusters.set(c.name, c);
    for (const l of bootstrap.static.listeners) if (l.name !== undefined) this.lds.set(l.name, l);
    for (const t of [CDS_TYPE, EDS_TYPE, LDS_TYPE, RDS_TYPE, SDS_TYPE]) this.state.set(t, { version: '', nonce: '', names: new Set(), versions: new Map() });
  }

  /** Connects and resolves with the first consistent snapshot (it keeps updating afterwards). */
  start(): Promise<EngineSnapshot> {
    const first = new Promise<EngineSnapshot>((resolve) => (this.firstResolve = resolve));
    this.connect();
    return first;
  }

  stop(): void {
    this.stopped = true;
    if (this.waitTimer !== null) clearTimeout(this.waitTimer);
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.stream?.cancel();
    this.client.close();
  }

  private get delta(): boolean {
    return this.bootstrap.ads!.delta;
  }

  private node(): Record<string, unknown> {
    const n = this.bootstrap.node;
    return { id: n.id, cluster: n.cluster, locality: { zone: n.zone }, user_agent_name: 'bowline', user_agent_version: '0.1.0' };
  }

  // ------------------------------------------------------------------ the stream

  private connect(): void {
    if (this.stopped) return;
    const method = this.delta ? 'DeltaAggregatedResources' : 'StreamAggregatedResources';
    const stream = (this.client as unknown as Record<string, () => Duplex>)[method]!.call(this.client);
    this.stream = stream;
    let sentNode = false;
    const withNode = (req: Record<string, unknown>): Record<string, unknown> => {
      if (sentNode) return req;
      sentNode = true;
      return { ...req, node: this.node() };
    };
    this.write = (req) => stream.write(withNode(req));
    stream.on('data', (res: Record<string, unknown>) => {
      this.backoffMs = this.o.backoffMinMs ?? 500;
      try {
        if (this.delta) this.onDelta(res);
        else this.onSotw(res);
      } catch (e) {
        this.log('error', 'xDS response handling failed', { error: (e as Error).stack ?? String(e) });
      }
    });
    const lost = (why: string): void => {
      if (this.stream !== stream) return;
      this.stream = null;
      if (this.stopped) return;
      this.counts.reconnects++;
      const delay = this.backoffMs * (0.5 + Math.random() / 2);
      this.backoffMs = Math.min(this.backoffMs * 2, this.o.backoffMaxMs ?? 30_000);
      this.log('warn', 'xDS stream lost; the config in force keeps serving', { why, retryInMs: Math.round(delay) });
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.connect();
      }, delay);
    };
    stream.on('error', (e: Error) => lost(e.message));
    stream.on('end', () => lost('the server ended the stream'));
    // (Re)subscribe, in make-before-break order; nonces belong to a stream and start empty.
    for (const t of [CDS_TYPE, EDS_TYPE, LDS_TYPE, RDS_TYPE, SDS_TYPE] as ResourceType[]) {
      const st = this.state.get(t)!;
      st.nonce = '';
      if (WILDCARD_TYPES.includes(t) || st.names.size > 0) this.subscribe(t, true);
    }
  }

  private write: (req: Record<string, unknown>) => void = () => {};

  /** Sends the subscription of `type` (SotW: the full list; delta: the change, or all on a new stream). */
  private subscribe(type: ResourceType, initial = false, added: string[] = [], removed: string[] = []): void {
    const st = this.state.get(type)!;
    const wildcard = WILDCARD_TYPES.includes(type);
    if (this.delta) {
      const req: Record<string, unknown> = { type_url: type };
      if (initial) {
        req['resource_names_subscribe'] = wildcard ? ['*'] : [...st.names];
        if (st.versions.size > 0) req['initial_resource_versions'] = Object.fromEntries(st.versions);
      } else {
        req['resource_names_subscribe'] = added;
        req['resource_names_unsubscribe'] = removed;
      }
      this.write(req);
      return;
    }
    this.write({ type_url: type, version_info: st.version, response_nonce: st.nonce, resource_names: wildcard ? [] : [...st.names] });
  }

  // ------------------------------------------------------------------ responses

  private onSotw(res: Record<string, unknown>): void {
    const type = String(res['type_url'] ?? '') as ResourceType;
    const st = this.state.get(type);
    if (st === undefined) return;
    const nonce = String(res['nonce'] ?? '');
    const decoded = this.decodeAll(type, ((res['resources'] as E.Any[] | undefined) ?? []).map((a) => ({ any: a })));
    if (decoded.problems.length > 0) {
      this.nack(type, nonce, decoded.problems);
      return;
    }
    const map = this.mapOf(type);
    if (WILDCARD_TYPES.includes(type)) {
      // State of the world: what is not listed is gone (static resources from the bootstrap stay).
      for (const name of [...map.keys()]) if (!decoded.items.has(name) && !this.isStatic(type, name)) map.delete(name);
    }
    for (const [name, r] of decoded.items) map.set(name, r);
    st.version = String(res['version_info'] ?? '');
    st.nonce = nonce;
    this.counts.acks++;
    this.received.add(type);
    this.write({ type_url: type, version_info: st.version, response_nonce: nonce, resource_names: WILDCARD_TYPES.includes(type) ? [] : [...st.names] });
    this.afterUpdate();
  }

  private onDelta(res: Record<string, unknown>): void {
    const type = String(res['type_url'] ?? '') as ResourceType;
    const st = this.state.get(type);
    if (st === undefined) return;
    const nonce = String(res['nonce'] ?? '');
    const list = ((res['resources'] as { name?: string; version?: string; resource?: E.Any }[] | undefined) ?? []).filter((r) => r.resource !== undefined);
    const decoded = this.decodeAll(type, list.map((r) => ({ any: r.resource!, name: r.name, version: r.version })));
    if (decoded.problems.length > 0) {
      this.nack(type, nonce, decoded.problems);
      return;
    }
    const map = this.mapOf(type);
    for (const [name, r] of decoded.items) map.set(name, r);
    for (const [name, v] of decoded.versions) st.versions.set(name, v);
    for (const name of (res['removed_resources'] as string[] | undefined) ?? []) {
      if (!this.isStatic(type, name)) map.delete(name);
      st.versions.delete(name);
    }
    st.nonce = nonce;
    this.counts.acks++;
    this.received.add(type);
    this.write({ type_url: type, response_nonce: nonce });
    this.afterUpdate();
  }

  private nack(type: ResourceType, nonce: string, problems: string[]): void {
    const st = this.state.get(type)!;
    this.counts.nacks++;
    const message = problems.slice(0, 10).join('; ') + (problems.length > 10 ? `; ... ${problems.length - 10} more` : '');
    this.log('warn', 'xDS response rejected (NACK); the last good config stays', { type: shortType(type), reasons: problems.slice(0, 10) });
    if (this.delta) this.write({ type_url: type, response_nonce: nonce, error_detail: { code: grpc.status.INVALID_ARGUMENT, message } });
    else this.write({ type_url: type, version_info: st.version, response_nonce: nonce, resource_names: WILDCARD_TYPES.includes(type) ? [] : [...st.names], error_detail: { code: grpc.status.INVALID_ARGUMENT, message } });
    st.nonce = nonce;
    this.emit('invalid', new Error(`${shortType(type)} rejected: ${message}`));
  }

  private decodeAll(type: ResourceType, list: { any: E.Any; name?: string | undefined; version?: string | undefined }[]): { items: Map<string, unknown>; versions: Map<string, string>; problems: string[] } {
    const items = new Map<string, unknown>();
    const versions = new Map<string, string>();
    const problems: string[] = [];
    list.forEach(({ any, name, version }, i) => {
      let msg: Record<string, unknown>;
      try {
        const u = unpackAny(any);
        if (`type.googleapis.com/${u.type}` !== type) throw new Error(`a ${u.type} in a ${shortType(type)} response`);
        msg = u.message;
      } catch (e) {
        problems.push(`resource ${name ?? i}: ${(e as Error).message}`);
        return;
      }
      const n = type === EDS_TYPE ? String(msg['cluster_name'] ?? '') : String(msg['name'] ?? '');
      const p =
        type === LDS_TYPE
          ? validateListener(msg as E.Listener)
          : type === RDS_TYPE
            ? validateRouteConfiguration(msg as E.RouteConfiguration)
            : type === CDS_TYPE
              ? validateCluster(msg as E.Cluster)
              : type === SDS_TYPE
                ? validateSecret(msg as Secret)
                : validateLoadAssignment(msg as E.ClusterLoadAssignment);
      problems.push(...p);
      items.set(name ?? n, msg);
      if (version !== undefined) versions.set(name ?? n, version);
    });
    return { items, versions, problems };
  }

  private mapOf(type: ResourceType): Map<string, unknown> {
    return (type === LDS_TYPE ? this.lds : type === RDS_TYPE ? this.routes : type === CDS_TYPE ? this.clusters : type === SDS_TYPE ? this.secrets : this.endpoints) as Map<string, unknown>;
  }

  private isStatic(type: ResourceType, name: string): boolean {
    const s = this.bootstrap.static;
    return type === CDS_TYPE ? s.clusters.some((c) => c.name === name) : type === LDS_TYPE ? s.listeners.some((l) => l.name === name) : false;
  }

  /** New resources: follow what they name (RDS, EDS), then try for a snapshot. */
  private afterUpdate(): void {
    this.resubscribe(RDS_TYPE, this.routeNames());
    this.resubscribe(EDS_TYPE, this.endpointNames());
    this.resubscribe(SDS_TYPE, secretNames(this.lds.values(), this.clusters.values()));
    this.rebuild();
  }

  private resubscribe(type: ResourceType, want: Set<string>): void {
    const st = this.state.get(type)!;
    const added = [...want].filter((n) => !st.names.has(n));
    const removed = [...st.names].filter((n) => !want.has(n));
    if (added.length === 0 && removed.length === 0) return;
    st.names = want;
    for (const n of removed) {
      this.mapOf(type).delete(n);
      st.versions.delete(n);
    }
    this.subscribe(type, false, added, removed);
  }

  private routeNames(): Set<string> {
    const out = new Set<string>();
    for (const l of this.lds.values()) {
      for (const chain of [...(l.filter_chains ?? []), ...(l.default_filter_chain ? [l.default_filter_chain] : [])]) {
        for (const f of chain.filters ?? []) {
          if (!(f.typed_config?.type_url ?? '').endsWith('.HttpConnectionManager')) continue;
          const hcm = unpackAny(f.typed_config!).message as E.HttpConnectionManager;
          const n = hcm.rds?.route_config_name;
          if (n !== undefined && n !== '') out.add(n);
        }
      }
    }
    return out;
  }

  private endpointNames(): Set<string> {
    const out = new Set<string>();
    for (const c of this.clusters.values()) if (c.type === 'EDS') out.add(c.eds_cluster_config?.service_name || c.name || '');
    return out;
  }

  /**
   * Translates what arrived into a snapshot and emits it when it changed. While something named has
   * not arrived, waits up to the fetch timeout (make-before-break), then goes on without it (missing
   * routes answer 404, missing endpoints 503).
   */
  private rebuild(goOn = false): void {
    const initial = this.firstResolve !== null && !(this.received.has(LDS_TYPE) && this.received.has(CDS_TYPE));
    const t = translateXds(
      { listeners: this.lds, routes: this.routes, clusters: this.clusters, endpoints: this.endpoints },
      { version: 'pending', zone: this.bootstrap.node.zone, allowMissing: goOn },
    );
    if (t.snapshot === null || (initial && !goOn)) {
      if (this.waitTimer === null) {
        this.waitTimer = setTimeout(() => {
          this.waitTimer = null;
          this.rebuild(true);
        }, this.timeoutMs);
      }
      return;
    }
    if (this.waitTimer !== null) {
      clearTimeout(this.waitTimer);
      this.waitTimer = null;
    }
    const json = JSON.stringify({ ...t.snapshot, version: '' });
    if (json === this.lastJson) return;
    this.lastJson = json;
    for (const w of t.warnings) this.log('warn', w);
    if (t.missing.length > 0) this.log('warn', 'going on without resources that have not arrived', { missing: t.missing });
    const snapshot = { ...t.snapshot, version: `xds-${++this.versionSeq}` };
    if (this.firstResolve !== null) {
      const r = this.firstResolve;
      this.firstResolve = null;
      r(snapshot);
      return;
    }
    this.emit('snapshot', snapshot);
  }
}
