// `bowline proxy --bootstrap FILE`: the xDS client as the proxy's config source. Loaded only in this
// mode, so that the file and one-line modes never load gRPC or protobufjs.

import type { EngineSnapshot } from '../engine/config/snapshot';
import type { ConfigSource } from '../workers/run-proxy';
import { AdsClient } from '../xds/client/ads-client';
import { type Bootstrap, loadBootstrap } from '../xds/client/bootstrap';
import { IdentityClient } from '../xds/client/identity-client';

type Log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

/**
 * The config source of a bootstrap file. `zone` stands in for a node without locality.zone: a
 * bootstrap shared by a namespace's pods cannot name each one's zone, their environment can.
 */
export function xdsSource(file: string, log: Log, identityTokenFile?: string, zone?: string): { source: ConfigSource; admin: { host: string; port: number } | null } {
  const b = loadBootstrap(file);
  if (b.node.zone === '' && zone !== undefined) b.node.zone = zone;
  if (b.ads === null) throw new Error(`${file}: dynamic_resources.ads_config is needed (static-only bootstraps are not supported; use --config)`);
  if (b.ignored.length > 0) log('info', 'bootstrap fields ignored (they do not change traffic)', { fields: b.ignored });
  return xdsSourceFor(b, log, identityTokenFile);
}

/** The config source of a parsed bootstrap (the demo builds one in code), with a workload identity when a token is given. */
export function xdsSourceFor(b: Bootstrap, log: Log, identityTokenFile?: string): { source: ConfigSource; admin: { host: string; port: number } | null } {
  const host = b.ads!.host.includes(':') ? `[${b.ads!.host}]` : b.ads!.host;
  const identity = identityTokenFile === undefined ? null : new IdentityClient({ server: `${host}:${b.ads!.port}`, tokenFile: identityTokenFile, log, ...(b.ads!.tls === undefined ? {} : { tls: b.ads!.tls }) });
  if (identity !== null) void identity.start();
  const client = new AdsClient(b, { log });
  // The identity travels in the snapshot the engine gets: a renewed certificate re-applies the last
  // config with it (new connections use it; open ones finish on the old one, still valid).
  let last: EngineSnapshot | null = null;
  let seq = 0;
  /** The identity generation of the last snapshot handed out (-1: none yet). */
  let handedSeq = -1;
  const withIdentity = (s: EngineSnapshot): EngineSnapshot => {
    last = s;
    handedSeq = seq;
    const id = identity?.current;
    const out: EngineSnapshot = { ...s, version: `${s.version}+id${seq}` };
    if (id !== undefined && id !== null) out.identity = { spiffeId: id.spiffeId, certChainPem: id.certChainPem, keyPem: id.keyPem, trustBundlePem: id.trustBundlePem };
    return out;
  };
  const listeners: ((s: EngineSnapshot) => void)[] = [];
  identity?.on('identity', () => {
    seq++;
    if (last !== null) for (const cb of listeners) cb(withIdentity(last));
  });
  const source: ConfigSource = {
    first: async () => {
      log('info', 'fetching config over ADS', { server: `${b.ads!.host}:${b.ads!.port}`, delta: b.ads!.delta, node: b.node.id, zone: b.node.zone });
      return withIdentity(await client.start());
    },
    onSnapshot: (cb) => {
      listeners.push(cb);
      client.on('snapshot', (s) => cb(withIdentity(s)));
      // A certificate that arrived after the first snapshot was handed out but before anyone
      // listened (while the workers started) goes out now, not at the next renewal a day later.
      if (last !== null && handedSeq !== seq) cb(withIdentity(last));
    },
    onInvalid: (cb) => client.on('invalid', cb),
    stop: () => {
      client.stop();
      identity?.stop();
    },
    // Not ready without an identity when one was asked for: peers would refuse this proxy.
    ready: () => identity === null || (identity.current !== null && handedSeq === seq),
    describe: () => ({
      ads: b.ads,
      node: b.node,
      responses: client.counts,
      secrets: client.describeSecrets(),
      identity: identity === null ? null : identity.current === null ? 'pending' : { spiffeId: identity.current.spiffeId, validUntil: new Date(identity.current.notAfterMs).toISOString(), renewals: identity.counts },
    }),
  };
  return { source, admin: b.admin };
}
