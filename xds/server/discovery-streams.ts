// One client's discovery stream, state-of-the-world or delta, over ADS or a per-type service: it
// tracks per type what the client subscribed to, what was sent under which nonce, and what was ACKed
// or NACKed, and pushes what changed when the snapshot does. Rules of the xDS protocol kept here:
// a request with a stale nonce is ignored; a NACKed version is held, not resent in a loop; an empty
// list after explicit names unsubscribes (only a first empty request to LDS/CDS is a wildcard);
// types go out in make-before-break order (clusters, endpoints, listeners, routes).

import * as grpc from '@grpc/grpc-js';
import { preEncode } from '../common/grpc-services';
import { CDS_TYPE, isResourceType, LDS_TYPE, type ResourceType, SDS_TYPE, shortType, TYPE_ORDER } from '../common/type-urls';
import { SdsSecretError, type WorkloadSecret, type WorkloadSecrets } from './ca/sds-secrets';
import type { ControlMetrics } from './control-metrics';
import type { PushGate } from './push-gate';
import type { NodeInfo, SnapshotCache } from './snapshot-cache';
import type { EncodedResource, XdsSnapshot } from './xds-snapshot';

const DISCOVERY_RESPONSE = 'envoy.service.discovery.v3.DiscoveryResponse';
const DELTA_DISCOVERY_RESPONSE = 'envoy.service.discovery.v3.DeltaDiscoveryResponse';

export interface StreamContext {
  cache: SnapshotCache;
  gate: PushGate;
  metrics: ControlMetrics;
  log: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
  /** Unique nonces across streams. */
  nextNonce(): string;
  /** Workload certificates over SDS (with a CA); without, SDS serves what the snapshots hold. */
  secrets?: WorkloadSecrets;
}

interface RequestCommon {
  node?: { id?: string; cluster?: string; locality?: { zone?: string }; user_agent_name?: string };
  type_url?: string;
  response_nonce?: string;
  error_detail?: { code?: number; message?: string };
}

/**
 * Encoded responses shared by every stream that needs the same bytes, nonce included: a nonce only
 * has to tell a stream's responses apart, so streams may share one. With a thousand clients, one
 * change is encoded once and the same Buffer is written to every stream (no copy per client).
 */
const encodedCache = new WeakMap<XdsSnapshot, Map<string, { bytes: Buffer; nonce: string }>>();

function cached(snapshot: XdsSnapshot, key: string, nextNonce: () => string, encode: (nonce: string) => Buffer): { bytes: Buffer; nonce: string } {
  let m = encodedCache.get(snapshot);
  if (m === undefined) encodedCache.set(snapshot, (m = new Map()));
  let e = m.get(key);
  if (e === undefined) {
    const nonce = nextNonce();
    m.set(key, (e = { bytes: encode(nonce), nonce }));
  }
  return e;
}

abstract class DiscoveryStream {
  protected node: NodeInfo | null = null;
  private closed = false;
  private readonly onUpdate = (): void => this.pushAll();
  /** This client's workload secrets (SDS with a CA), once its token was checked. */
  private secret: WorkloadSecret | null = null;
  private secretState: 'none' | 'pending' | 'ready' | 'refused' = 'none';
  private readonly onSecretUpdate = (): void => {
    if (!this.closed) this.push(SDS_TYPE);
  };
  protected readonly kind: 'sotw' | 'delta';

  constructor(
    protected readonly call: grpc.ServerDuplexStream<unknown, unknown>,
    protected readonly ctx: StreamContext,
    /** The type of a per-type service; null for ADS. */
    protected readonly fixedType: ResourceType | null,
    kind: 'sotw' | 'delta',
  ) {
    this.kind = kind;
    call.on('data', (req: RequestCommon) => {
      try {
        this.onRequest(req);
      } catch (e) {
        ctx.log('warn', 'bad discovery request', { error: (e as Error).message });
        call.destroy(e as Error);
      }
    });
    const close = (): void => this.close();
    call.on('end', () => {
      close();
      call.end();
    });
    call.on('error', close);
    call.on('cancelled', close);
    call.on('close', close);
    ctx.cache.on('update', this.onUpdate);
  }

  protected abstract onTypeRequest(type: ResourceType, req: RequestCommon): void;
  protected abstract push(type: ResourceType): void;
  /** Sends the type's current state as a first answer would (after the secrets became ready). */
  protected abstract refresh(type: ResourceType): void;
  protected abstract subscribedTypes(): Iterable<ResourceType>;

  private onRequest(req: RequestCommon): void {
    if (this.node === null) {
      const n = req.node ?? {};
      this.node = { id: n.id ?? '', cluster: n.cluster ?? '', zone: n.locality?.zone ?? '', userAgent: n.user_agent_name ?? '' };
      this.ctx.metrics.streamOpened(this.kind, this.node.userAgent);
    }
    const type = req.type_url !== undefined && req.type_url !== '' ? req.type_url : this.fixedType;
    if (type === null || !isResourceType(type) || (this.fixedType !== null && type !== this.fixedType)) {
      this.ctx.log('warn', 'discovery request for an unsupported type', { type, node: this.node.id });
      return;
    }
    if (type === SDS_TYPE && this.ctx.secrets !== undefined && this.secretState === 'none') this.acquireSecret(this.ctx.secrets);
    this.onTypeRequest(type, req);
  }

  /** The snapshot a type is served from: the node's zone's, or for SDS (with a CA) its identity's secrets. */
  protected snapshot(type: ResourceType): XdsSnapshot | null {
    if (type === SDS_TYPE && this.ctx.secrets !== undefined) return this.secret?.snapshot ?? null;
    return this.ctx.cache.snapshotFor(this.node?.zone ?? '');
  }

  /** Checks the stream's token and gets its identity's secrets; SDS is answered once they are ready. */
  private acquireSecret(secrets: WorkloadSecrets): void {
    this.secretState = 'pending';
    const auth = this.call.metadata.get('authorization')[0];
    secrets.acquire(typeof auth === 'string' ? auth : auth?.toString()).then(
      (s) => {
        if (this.closed) {
          secrets.release(s);
          return;
        }
        this.secret = s;
        this.secretState = 'ready';
        s.on('update', this.onSecretUpdate);
        this.refresh(SDS_TYPE);
      },
      (e: Error) => {
        this.secretState = 'refused';
        if (this.closed) return;
        // A stream for SDS alone ends with the reason; on ADS the other types keep being served.
        if (this.fixedType === SDS_TYPE) {
          const code = e instanceof SdsSecretError && !e.unauthenticated ? grpc.status.UNAVAILABLE : grpc.status.UNAUTHENTICATED;
          this.call.emit('error', { code, details: `no workload certificate: ${e.message}` });
        }
      },
    );
  }

  /** A new snapshot: every subscribed type in make-before-break order. */
  private pushAll(): void {
    if (this.closed) return;
    const subscribed = new Set(this.subscribedTypes());
    for (const t of TYPE_ORDER) if (subscribed.has(t)) this.push(t);
  }

  /** The same response with a new nonce (appended: a later field of the same number wins). */
  protected reencode(message: string, bytes: Buffer): { bytes: Buffer; nonce: string } {
    const nonce = this.ctx.nextNonce();
    return { bytes: Buffer.concat([bytes, preEncode(message, { nonce })]), nonce };
  }

  protected send(bytes: Buffer, type: ResourceType): void {
    if (this.closed) return;
    this.ctx.metrics.pushed(shortType(type));
    this.ctx.gate.write(this.call, bytes);
  }

  /** Records an ACK or NACK of the response `nonce` of `type`; false when the nonce is stale. */
  protected settle(type: ResourceType, req: RequestCommon, sentNonce: string, sentAtMs: number): 'ack' | 'nack' | 'stale' | 'none' {
    const nonce = req.response_nonce ?? '';
    if (nonce === '') return 'none';
    if (nonce !== sentNonce) return 'stale';
    if (req.error_detail !== undefined && req.error_detail !== null && (req.error_detail.message ?? '') !== '') {
      const reason = req.error_detail.message ?? '';
      this.ctx.metrics.nacked(shortType(type), reason);
      this.ctx.log('warn', 'client rejected a response (NACK); holding that version', { node: this.node?.id, type: shortType(type), reason });
      return 'nack';
    }
    this.ctx.metrics.acked(shortType(type), performance.now() - sentAtMs);
    return 'ack';
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.ctx.cache.off('update', this.onUpdate);
    this.ctx.gate.forget(this.call);
    if (this.secret !== null) {
      this.secret.off('update', this.onSecretUpdate);
      this.ctx.secrets?.release(this.secret);
      this.secret = null;
    }
    if (this.node !== null) this.ctx.metrics.streamClosed(this.kind, this.node.userAgent);
  }
}

// ------------------------------------------------------------------ state of the world

interface SotwState {
  names: Set<string>;
  wildcard: boolean;
  /** The client never named a resource: its empty first request made it a (legacy) wildcard. */
  legacyWildcard: boolean;
  /** What was last sent: type version + subscription. */
  sentKey: string;
  nonce: string;
  sentAtMs: number;
  /** A sentKey the client rejected: not sent again. */
  nackedKey: string;
  /** The subscription as a key (kept: sorting a thousand names per push would cost more than the push). */
  subKey: string;
}

export class SotwStream extends DiscoveryStream {
  private readonly types = new Map<ResourceType, SotwState>();

  constructor(call: grpc.ServerDuplexStream<unknown, unknown>, ctx: StreamContext, fixedType: ResourceType | null = null) {
    super(call, ctx, fixedType, 'sotw');
  }

  protected subscribedTypes(): Iterable<ResourceType> {
    return this.types.keys();
  }

  protected onTypeRequest(type: ResourceType, req: RequestCommon & { resource_names?: string[]; version_info?: string }): void {
    let st = this.types.get(type);
    const names = req.resource_names ?? [];
    const first = st === undefined;
    if (st === undefined) {
      const legacy = names.length === 0 && (type === LDS_TYPE || type === CDS_TYPE);
      st = { names: new Set(), wildcard: legacy, legacyWildcard: legacy, sentKey: '', nonce: '', sentAtMs: 0, nackedKey: '', subKey: '' };
      this.types.set(type, st);
    }
    if (!first) {
      // (A first request may carry a nonce of an earlier stream: it is a new subscription here.)
      const verdict = this.settle(type, req, st.nonce, st.sentAtMs);
      if (verdict === 'stale') return; // superseded by a newer response: the client will answer that one
      if (verdict === 'nack') st.nackedKey = st.sentKey;
    }
    // The subscription this request states.
    if (names.length > 0) st.legacyWildcard = false;
    const wildcard = st.legacyWildcard || names.includes('*');
    // The snapshot's own strings where they exist: a thousand streams share them.
    const snap0 = this.snapshot(type);
    const set = new Set(names.filter((n) => n !== '*').map((n) => snap0?.get(type, n)?.name ?? n));
    const changed = wildcard !== st.wildcard || set.size !== st.names.size || [...set].some((n) => !st.names.has(n));
    st.wildcard = wildcard;
    st.names = set;
    if (first || changed) {
      st.subKey = `${wildcard ? '*' : ''}|${[...set].sort().join(',')}`;
      this.push(type, true);
    }
  }

  protected refresh(type: ResourceType): void {
    this.push(type, true);
  }

  protected push(type: ResourceType, force = false): void {
    const st = this.types.get(type);
    const snap = this.snapshot(type);
    if (st === undefined || snap === null) return;
    const version = snap.typeVersions.get(type) ?? '';
    const subKey = st.subKey;
    const key = `${version}|${subKey}`;
    if (!force && (key === st.sentKey || key === st.nackedKey)) return;
    if (!st.wildcard && st.names.size === 0 && !force) return;
    const { bytes, nonce } = cached(snap, `sotw|${type}|${subKey}`, this.ctx.nextNonce, (n) =>
      preEncode(DISCOVERY_RESPONSE, { version_info: version, type_url: type, resources: snap.select(type, st.wildcard, st.names).map(toAny), nonce: n }),
    );
    // A response identical to the last one on this stream would reuse its nonce: answer with a fresh one.
    const fresh = nonce === st.nonce ? this.reencode(DISCOVERY_RESPONSE, bytes) : null;
    st.sentKey = key;
    st.nonce = fresh?.nonce ?? nonce;
    st.sentAtMs = performance.now();
    this.send(fresh?.bytes ?? bytes, type);
  }
}

function toAny(r: EncodedResource): { type_url: string; value: Buffer } {
  return { type_url: r.typeUrl, value: r.value };
}

// ------------------------------------------------------------------ delta

interface DeltaState {
  /** Names subscribed, as the snapshot's own strings where they exist (shared by every stream). */
  subscribed: Set<string>;
  wildcard: boolean;
  /**
   * The snapshot whose resources (for this subscription) the client holds, as of the last push: the
   * client's holdings are implied, not stored, so that a thousand streams do not each keep a map of
   * a thousand versions. A NACKed push counts as held too (it is not resent until it changes).
   */
  synced: XdsSnapshot | null;
  /** Only before the first push: the versions a reconnecting client says it has. */
  initial: Map<string, string> | null;
  /** Names subscribed that do not exist and were already reported removed. */
  reportedMissing: Set<string>;
  nonce: string;
  sentAtMs: number;
  /**
   * A response went out for this type: until then even an empty one is sent, so that a client
   * subscribed to a type the mesh has none of (no services: no CDS) learns it and stops waiting.
   */
  answered: boolean;
}

export class DeltaStream extends DiscoveryStream {
  private readonly types = new Map<ResourceType, DeltaState>();

  constructor(call: grpc.ServerDuplexStream<unknown, unknown>, ctx: StreamContext, fixedType: ResourceType | null = null) {
    super(call, ctx, fixedType, 'delta');
  }

  protected subscribedTypes(): Iterable<ResourceType> {
    return this.types.keys();
  }

  protected onTypeRequest(
    type: ResourceType,
    req: RequestCommon & { resource_names_subscribe?: string[]; resource_names_unsubscribe?: string[]; initial_resource_versions?: Record<string, string> },
  ): void {
    let st = this.types.get(type);
    const sub = req.resource_names_subscribe ?? [];
    const unsub = req.resource_names_unsubscribe ?? [];
    if (st === undefined) {
      const initial = new Map(Object.entries(req.initial_resource_versions ?? {}));
      st = { subscribed: new Set(), wildcard: sub.length === 0 && (type === LDS_TYPE || type === CDS_TYPE), synced: null, initial, reportedMissing: new Set(), nonce: '', sentAtMs: 0, answered: false };
      this.types.set(type, st);
    } else {
      const verdict = this.settle(type, req, st.nonce, st.sentAtMs);
      if (verdict === 'stale') return;
    }
    if (sub.length === 0 && unsub.length === 0) {
      if (st.synced === null) this.push(type, st.initial ?? new Map());
      return;
    }
    // A subscription change: what the client holds now, minus what it drops, against the new subscription.
    const had = this.holdings(type, st);
    const snap = this.snapshot(type);
    for (const n of sub) {
      if (n === '*') st.wildcard = true;
      else {
        st.subscribed.add(snap?.get(type, n)?.name ?? n);
        st.reportedMissing.delete(n);
      }
    }
    for (const n of unsub) {
      if (n === '*') st.wildcard = false;
      st.subscribed.delete(n);
      had.delete(n);
    }
    this.push(type, had);
  }

  /** name -> version the client holds, materialised (only on subscription changes and slow paths). */
  private holdings(type: ResourceType, st: DeltaState): Map<string, string> {
    if (st.synced === null) return new Map(st.initial ?? []);
    return new Map(st.synced.select(type, st.wildcard, st.subscribed).map((r) => [r.name, r.version]));
  }

  protected refresh(type: ResourceType): void {
    this.push(type);
  }

  protected push(type: ResourceType, had?: Map<string, string>): void {
    const st = this.types.get(type);
    const snap = this.snapshot(type);
    if (st === undefined || snap === null) return;
    if (had === undefined) {
      if (st.synced === snap) return;
      if (st.synced !== null && st.synced.id === snap.prevId) {
        // In sync with the snapshot this one replaced: only its changes can matter (a thousand
        // streams, one changed resource: O(changes) each, not O(resources)).
        const diff = snap.diffs.get(type)!;
        const prev = st.synced;
        const mine = (s: XdsSnapshot, n: string): boolean => st.subscribed.has(n) || (st.wildcard && s.inWildcard(type, n));
        const changed = diff.changed.filter((n) => mine(snap, n)).map((n) => snap.get(type, n)!);
        const removed = diff.removed.filter((n) => mine(prev, n));
        st.synced = snap;
        this.sendDelta(type, st, snap, changed, removed);
        return;
      }
      had = this.holdings(type, st);
    }
    const want = snap.select(type, st.wildcard, st.subscribed);
    const wanted = new Set(want.map((r) => r.name));
    const changed = want.filter((r) => had.get(r.name) !== r.version);
    const removed: string[] = [];
    for (const name of had.keys()) if (!wanted.has(name)) removed.push(name);
    // Named resources that do not exist are reported removed once, so that the client stops waiting.
    for (const name of st.subscribed) {
      if (!wanted.has(name) && !had.has(name) && !st.reportedMissing.has(name)) {
        removed.push(name);
        st.reportedMissing.add(name);
      }
    }
    st.synced = snap;
    st.initial = null;
    this.sendDelta(type, st, snap, changed, removed);
  }

  private sendDelta(type: ResourceType, st: DeltaState, snap: XdsSnapshot, changed: EncodedResource[], removed: string[]): void {
    if (changed.length === 0 && removed.length === 0 && st.answered) return;
    st.answered = true;
    const key = `delta|${type}|${changed.map((r) => `${r.name}@${r.version}`).join(',')}|${removed.join(',')}`;
    const { bytes, nonce } = cached(snap, key, this.ctx.nextNonce, (n) =>
      preEncode(DELTA_DISCOVERY_RESPONSE, {
        system_version_info: snap.meshVersion,
        type_url: type,
        resources: changed.map((r) => ({ name: r.name, version: r.version, resource: toAny(r) })),
        removed_resources: removed,
        nonce: n,
      }),
    );
    const fresh = nonce === st.nonce ? this.reencode(DELTA_DISCOVERY_RESPONSE, bytes) : null;
    st.nonce = fresh?.nonce ?? nonce;
    st.sentAtMs = performance.now();
    this.send(fresh?.bytes ?? bytes, type);
  }
}
