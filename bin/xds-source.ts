// `bowline proxy --bootstrap FILE`: the xDS client as the proxy's config source. Loaded only in this
// mode, so that the file and one-line modes never load gRPC or protobufjs.

import type { ConfigSource } from '../workers/run-proxy';
import { AdsClient } from '../xds/client/ads-client';
import { type Bootstrap, loadBootstrap } from '../xds/client/bootstrap';

type Log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export function xdsSource(file: string, log: Log): { source: ConfigSource; admin: { host: string; port: number } | null } {
  const b = loadBootstrap(file);
  if (b.ads === null) throw new Error(`${file}: dynamic_resources.ads_config is needed (static-only bootstraps are not supported; use --config)`);
  if (b.ignored.length > 0) log('info', 'bootstrap fields ignored (they do not change traffic)', { fields: b.ignored });
  return xdsSourceFor(b, log);
}

/** The config source of a parsed bootstrap (the demo builds one in code). */
export function xdsSourceFor(b: Bootstrap, log: Log): { source: ConfigSource; admin: { host: string; port: number } | null } {
  const client = new AdsClient(b, { log });
  const source: ConfigSource = {
    first: () => {
      log('info', 'fetching config over ADS', { server: `${b.ads!.host}:${b.ads!.port}`, delta: b.ads!.delta, node: b.node.id, zone: b.node.zone });
      return client.start();
    },
    onSnapshot: (cb) => client.on('snapshot', cb),
    onInvalid: (cb) => client.on('invalid', cb),
    stop: () => client.stop(),
    describe: () => ({ ads: b.ads, node: b.node, responses: client.counts, secrets: client.describeSecrets() }),
  };
  return { source, admin: b.admin };
}
