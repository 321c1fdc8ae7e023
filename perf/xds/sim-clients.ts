// Simulated ADS clients for the control-plane scale benchmark (run as a child process by scale.ts).
// Each client has its own gRPC connection and one ADS stream (delta or state-of-the-world), subscribes
// like a sidecar (every cluster and listener, every cluster's endpoints, the route configuration),
// and ACKs every response. It does not decode resources: it reads a response's type and nonce from
// the top-level fields and looks for a marker in the bytes, as a proxy on its own machine would spend
// its own CPU, not ours. Talks to its parent in JSON lines on stdout; reads commands on stdin.

import * as readline from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import { ADS_SERVICE, serviceDefinition } from '../../xds/common/grpc-services';
import { CDS_TYPE, EDS_TYPE, LDS_TYPE, RDS_TYPE } from '../../xds/common/type-urls';

interface Options {
  target: string;
  clients: number;
  delta: boolean;
  services: number;
  routeConfig: string;
}

const o = JSON.parse(process.argv[2]!) as Options;

/** Top-level type_url (4) and nonce (5) of a (Delta)DiscoveryResponse, skipping everything else. */
function envelope(buf: Buffer): { type: string; nonce: string } {
  const r = protobuf.Reader.create(buf);
  let type = '';
  let nonce = '';
  while (r.pos < r.len) {
    const tag = r.uint32();
    const field = tag >>> 3;
    if (field === 4) type = r.string();
    else if (field === 5) nonce = r.string();
    else r.skipType(tag & 7);
  }
  return { type, nonce };
}

const def = serviceDefinition(ADS_SERVICE);
// Responses stay raw bytes: the client parses only the envelope.
for (const m of Object.values(def)) (m as { responseDeserialize: (b: Buffer) => unknown }).responseDeserialize = (b: Buffer) => b;
const Client = grpc.makeGenericClientConstructor(def, 'ADS');

const names = Array.from({ length: o.services }, (_, i) => `svc-${i}`);
let marker: Buffer | null = null;
let markSentAt = 0;
const arrivals: number[] = [];
let synced = 0;

function startClient(id: number): void {
  // A connection of its own, as separate proxies have.
  const c = new Client(o.target, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': 256 * 1024 * 1024 });
  const method = o.delta ? 'DeltaAggregatedResources' : 'StreamAggregatedResources';
  const stream = (c as unknown as Record<string, () => grpc.ClientDuplexStream<unknown, Buffer>>)[method]!.call(c);
  const seen = new Set<string>();
  let counted = false;
  let gotMarker = false;
  const node = { id: `sim-${id}`, cluster: 'sim', locality: { zone: `z${id % 3}` }, user_agent_name: 'sim' };
  const sub = (type: string, list: string[]): void => {
    if (o.delta) stream.write({ node, type_url: type, resource_names_subscribe: list });
    else stream.write({ node, type_url: type, resource_names: list });
  };
  stream.on('data', (buf: Buffer) => {
    const { type, nonce } = envelope(buf);
    if (marker !== null && !gotMarker && type === EDS_TYPE && buf.includes(marker)) {
      gotMarker = true;
      arrivals.push(Date.now() - markSentAt);
      if (arrivals.length === o.clients) report();
    }
    if (o.delta) stream.write({ type_url: type, response_nonce: nonce });
    else stream.write({ type_url: type, response_nonce: nonce, resource_names: type === EDS_TYPE ? names : type === RDS_TYPE ? [o.routeConfig] : [] });
    seen.add(type);
    if (!counted && seen.size === 4) {
      counted = true;
      synced++;
      if (synced === o.clients) process.stdout.write(`${JSON.stringify({ event: 'synced' })}\n`);
    }
  });
  stream.on('error', (e: Error) => process.stderr.write(`client ${id}: ${e.message}\n`));
  sub(CDS_TYPE, o.delta ? ['*'] : []);
  sub(EDS_TYPE, names);
  sub(LDS_TYPE, o.delta ? ['*'] : []);
  sub(RDS_TYPE, [o.routeConfig]);
}

function report(): void {
  process.stdout.write(`${JSON.stringify({ event: 'arrivals', arrivals })}\n`);
}

// Connect in batches, so that start-up does not turn into a thundering herd of handshakes.
let started = 0;
const batch = (): void => {
  for (let k = 0; k < 50 && started < o.clients; k++) startClient(started++);
  if (started < o.clients) setTimeout(batch, 20);
};
batch();

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = JSON.parse(line) as { marker?: string; sentAt?: number; report?: boolean };
  if (cmd.marker !== undefined) {
    marker = Buffer.from(cmd.marker, 'latin1');
    markSentAt = cmd.sentAt ?? Date.now();
    arrivals.length = 0;
  }
  if (cmd.report === true) report();
});
