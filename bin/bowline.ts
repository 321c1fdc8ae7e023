#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=1
// The `bowline` command: parses arguments and hands over to the pieces that do the work.
// The interpreter line keeps memory lean, each setting measured under load (perf/README.md): a 1 MB
// young generation semi-space (about 3 MB less peak RSS, no throughput change) and at most two malloc
// arenas (about 0.5-1 MB less).

import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { isUpstreamProtocol, oneLineSnapshot } from '../workers/config/one-line';
import { parseSocketAddress } from '../engine/config/file/socket-address';
import { log, runProxy, type RunningProxy } from '../workers/run-proxy';

const USAGE = `bowline: a reliability-first service mesh proxy

Usage:
  bowline proxy --config FILE [options]
  bowline proxy --bootstrap FILE [options]
  bowline proxy --listen HOST:PORT --to HOST:PORT[@ZONE] [--to ...] [options]
  bowline control --config MESH_FILE [options]
  bowline inject FILE|- [options]
  bowline demo

Options:
  --config FILE        YAML config (listeners, services, routes); reloaded when it changes
  --bootstrap FILE     Envoy-style bootstrap (YAML/JSON): node, admin, static resources and an
                       ADS server; config then comes over xDS (state of the world, or delta)
  --identity-token F   with --bootstrap: get a workload certificate from the control plane with
                       the token in F (re-read at each renewal); /ready waits for it
  --listen HOST:PORT   one-line mode: listen here ...
  --to HOST:PORT[@Z]   ... and forward to this upstream (repeatable; @ZONE tags its zone)
  --zone ZONE          this proxy's zone (default: $BOWLINE_ZONE; with --bootstrap, when the
                       bootstrap's node has no locality.zone); with zones on the endpoints,
                       traffic stays in it and spills over only under load (HAZL)
  --balancer KIND      p2c-ewma (default: P2C over peak-EWMA latency), least-request or
                       round-robin (one-line mode)
  --upstream-protocol P
                       http1, h2c (HTTP/2 with prior knowledge) or auto (default: the HTTP
                       version the client spoke) to the --to upstreams (one-line mode)
  --mcp                one-line mode: inspect all HTTP traffic that is MCP (Streamable HTTP
                       JSON-RPC): per-tool, per-resource and per-prompt golden signals
  --workers N          engine worker threads (default: one per core, ${availableParallelism()} here)
  --admin HOST:PORT    admin listener for /metrics /ready /live /config_dump (default 127.0.0.1:4191)
  --drain-grace-ms MS  on SIGTERM, how long in-flight requests may take (default 10000)
  --opaque-ports P,... ports whose traffic is opaque TCP, never detected (default:
                       $BOWLINE_OPAQUE_PORTS), added to the config's opaquePorts; for redirected
                       connections the port is the original destination's
  -h, --help           this text

Control plane:
  bowline control --config MESH_FILE [--listen HOST:PORT] [--admin HOST:PORT] [--build-threads N]
                  [--ca-dir DIR [--generate-ca] [--trust-domain D] [--leaf-ttl-s S]
                   (--token-secret FILE | --kubernetes-tokens [--token-audience AUD])]
                  [--tls-cert FILE --tls-key FILE]
      xDS v3 server (ADS state-of-the-world and delta, per-type services) for Bowline proxies,
      Envoy and gRPC proxyless clients. MESH_FILE uses the --config language and is watched.
      Defaults: listen 127.0.0.1:18000, admin 127.0.0.1:9901 (/metrics /ready /live /config_dump).
      With --ca-dir it also issues workload certificates (SPIFFE IDs in trust domain D, default
      cluster.local) to proxies that prove their identity with a token (Kubernetes tokens: for
      audience AUD, "bowline" for injected proxies; default the API server's).
      The directory is watched: an issuer replaced there signs the next certificates.
      With --tls-cert/--tls-key it serves xDS and the Identity service over TLS (PEM files,
      re-read when they change); proxies name the trust bundle in their bootstrap's xDS cluster
      (transport_socket: UpstreamTlsContext with validation_context.trusted_ca, and sni).
  bowline ca (rotate-issuer | rotate-anchor | retire-anchors | show) --ca-dir DIR
      rotate-issuer: a new issuer signed by the anchor (leaves under the old one stay valid);
      rotate-anchor: a new anchor and issuer, the bundle keeps the old anchor until
      retire-anchors (run it once every leaf under the old anchor has been renewed)
  bowline token --secret FILE --service-account SA [--namespace NS] [--ttl-s S]
      prints a signed workload token (local use) for --token-secret

Sidecar:
  bowline init [--proxy-uid UID] [--inbound-port 4143] [--outbound-port 4140]
               [--skip-inbound-ports 4190,4191] [--skip-outbound-ports P,...]
               [--skip-outbound-cidrs CIDR,...] | --remove | --show
      iptables rules (nat table, chains BOWLINE_INBOUND and BOWLINE_OUTBOUND) in this network
      namespace: inbound TCP to the proxy's inbound port, outbound TCP to its outbound port, except
      the proxy's own UID, loopback and skipped ports and networks. Idempotent; --remove undoes it.
      The proxy's listeners take them with originalDst: true.
  bowline inject FILE|- [--image IMAGE] [--native-sidecar] [--proxy-workers N]
                 [--proxy-cpu-request Q] [--proxy-cpu-limit Q] [--proxy-memory-request Q]
                 [--proxy-memory-limit Q]
      Kubernetes manifests (a file, or - for stdin) to stdout with the proxy added to every
      Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob and Pod (also inside a List):
      the bowline-init and bowline-proxy containers (image IMAGE, default
      ghcr.io/bowline-mesh/bowline:VERSION). Injecting again replaces them. Pod annotations:
      bowline.io/inject: disabled (left alone), bowline.io/skip-inbound-ports,
      bowline.io/skip-outbound-ports, bowline.io/opaque-ports (comma lists of ports).
      --native-sidecar runs the proxy as a Kubernetes sidecar (an init container that keeps
      running; Kubernetes 1.29+), as Jobs and CronJobs always do. Proxy resources default to
      requests cpu 100m, memory 128Mi and a 256Mi memory limit ("" drops a limit).
`;

function fail(msg: string): never {
  process.stderr.write(`bowline: ${msg}\n\n${USAGE}`);
  process.exit(2);
}

function handleSignals(p: RunningProxy, cleanup: () => void = () => {}): void {
  let signalled = false;
  const onSignal = (sig: string): void => {
    if (signalled) {
      log('warn', `second ${sig}: exiting now`);
      process.exit(1);
    }
    signalled = true;
    log('info', `${sig}: draining`, {});
    void p.stop().then(() => {
      cleanup();
      log('info', 'stopped');
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

function addr(flag: string, v: string, minPort = 1): { host: string; port: number } {
  try {
    return parseSocketAddress(v, minPort);
  } catch (e) {
    return fail(`${flag}: ${(e as Error).message}`);
  }
}

async function proxy(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      bootstrap: { type: 'string' },
      'identity-token': { type: 'string' },
      listen: { type: 'string' },
      to: { type: 'string', multiple: true },
      zone: { type: 'string' },
      balancer: { type: 'string', default: 'p2c-ewma' },
      'upstream-protocol': { type: 'string' },
      mcp: { type: 'boolean' },
      workers: { type: 'string' },
      admin: { type: 'string' },
      'drain-grace-ms': { type: 'string', default: '10000' },
      'opaque-ports': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const workers = values.workers === undefined ? availableParallelism() : Number(values.workers);
  if (!Number.isInteger(workers) || workers < 1) fail(`--workers must be a whole number >= 1, got "${values.workers}"`);
  const grace = Number(values['drain-grace-ms']);
  if (!Number.isFinite(grace) || grace < 0) fail('--drain-grace-ms must be a number >= 0');
  let admin = addr('--admin', values.admin ?? '127.0.0.1:4191', 0);
  let snapshot;
  let source;
  if (values['upstream-protocol'] !== undefined && (values.config !== undefined || values.bootstrap !== undefined)) {
    fail('--upstream-protocol is for the one-line mode (--listen/--to); a config file sets "protocol" per service');
  }
  if (values.mcp === true && (values.config !== undefined || values.bootstrap !== undefined)) {
    fail('--mcp is for the one-line mode (--listen/--to); a config file marks routes with "mcp: true" or sets mcp.inspectAll');
  }
  if (values.bootstrap !== undefined) {
    if (values.config !== undefined || values.listen !== undefined || values.to !== undefined) fail('--bootstrap cannot be combined with --config or --listen/--to');
    // Loaded only in this mode: gRPC and protobufjs stay out of the file and one-line modes.
    const { xdsSource } = await import('./xds-source');
    const x = xdsSource(values.bootstrap, log, values['identity-token'], values.zone ?? process.env['BOWLINE_ZONE']);
    source = x.source;
    if (values.admin === undefined && x.admin !== null) admin = x.admin;
  } else if (values.config !== undefined) {
    if (values.listen !== undefined || values.to !== undefined) fail('--config cannot be combined with --listen/--to');
  } else {
    if (values.listen === undefined || values.to === undefined) fail('give --config FILE, --bootstrap FILE, or --listen and --to');
    const to = values.to.map((t) => {
      const at = t.lastIndexOf('@');
      return at > 0 ? { address: addr('--to', t.slice(0, at)), zone: t.slice(at + 1) } : { address: addr('--to', t), zone: '' };
    });
    const balancer = values.balancer;
    if (balancer !== 'p2c-ewma' && balancer !== 'round-robin' && balancer !== 'least-request') {
      fail(`--balancer must be p2c-ewma, least-request or round-robin, got "${balancer}"`);
    }
    const upstreamProtocol = values['upstream-protocol'] ?? 'auto';
    if (!isUpstreamProtocol(upstreamProtocol)) fail(`--upstream-protocol must be http1, h2c or auto, got "${upstreamProtocol}"`);
    snapshot = oneLineSnapshot({ listen: addr('--listen', values.listen, 0), to, zone: values.zone ?? process.env['BOWLINE_ZONE'] ?? '', balancer, upstreamProtocol, mcp: values.mcp === true });
  }
  // Ports whose traffic is opaque TCP whatever it looks like (`bowline inject` passes a pod's
  // bowline.io/opaque-ports annotation as BOWLINE_OPAQUE_PORTS), added to the config's own.
  const opaqueText = values['opaque-ports'] ?? process.env['BOWLINE_OPAQUE_PORTS'] ?? '';
  const opaquePorts = opaqueText.split(',').map((x) => x.trim()).filter((x) => x !== '').map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 1 || n > 65535) fail(`--opaque-ports (or BOWLINE_OPAQUE_PORTS): "${x}" is not a port`);
    return n;
  });
  try {
    const p = await runProxy({
      configFile: values.config,
      snapshot,
      source,
      workers,
      admin,
      drainGraceMs: grace,
      opaquePorts,
      testHooks: process.env.BOWLINE_TEST_HOOKS === '1',
    });
    handleSignals(p);
  } catch (e) {
    if ((e as Error).name === 'ConfigError') process.stderr.write(`bowline: invalid config:\n${(e as Error).message}\n`);
    else process.stderr.write(`bowline: ${(e as Error).message}\n`);
    process.exit(1);
  }
}

async function inject(argv: string[]): Promise<void> {
  const options = {
    image: { type: 'string' },
    'native-sidecar': { type: 'boolean', default: false },
    'proxy-workers': { type: 'string' },
    'proxy-cpu-request': { type: 'string' },
    'proxy-cpu-limit': { type: 'string' },
    'proxy-memory-request': { type: 'string' },
    'proxy-memory-limit': { type: 'string' },
  } as const;
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options, strict: true });
  } catch (e) {
    fail((e as Error).message);
  }
  const { values: v, positionals } = parsed;
  if (positionals.length !== 1) fail('inject needs one FILE, or - for stdin');
  const [{ readFileSync }, { join }, { defaultInjectOptions, isQuantity }, { describeReport, injectManifests }] = await Promise.all([
    import('node:fs'),
    import('node:path'),
    import('../workers/inject/sidecar'),
    import('../workers/inject/inject'),
  ]);
  const { version } = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  const o = defaultInjectOptions(version);
  if (v.image !== undefined) o.image = v.image;
  o.nativeSidecar = v['native-sidecar'];
  if (v['proxy-workers'] !== undefined) {
    o.proxyWorkers = Number(v['proxy-workers']);
    if (!Number.isInteger(o.proxyWorkers) || o.proxyWorkers < 1) fail(`--proxy-workers must be a whole number >= 1, got "${v['proxy-workers']}"`);
  }
  const quantities = [
    ['proxy-cpu-request', 'cpuRequest', false],
    ['proxy-cpu-limit', 'cpuLimit', true],
    ['proxy-memory-request', 'memoryRequest', false],
    ['proxy-memory-limit', 'memoryLimit', true],
  ] as const;
  for (const [flag, key, optional] of quantities) {
    const q = v[flag];
    if (q === undefined) continue;
    if (!(isQuantity(q) || (optional && q === ''))) fail(`--${flag} must be a Kubernetes quantity (e.g. 100m, 128Mi)${optional ? ' or ""' : ''}, got "${q}"`);
    o.resources[key] = q;
  }
  const file = positionals[0]!;
  let text: string;
  try {
    if (file === '-') {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      text = Buffer.concat(chunks).toString('utf8');
    } else {
      text = readFileSync(file, 'utf8');
    }
  } catch (e) {
    process.stderr.write(`bowline inject: ${(e as Error).message}\n`);
    process.exit(1);
  }
  try {
    const { output, reports } = injectManifests(text, o);
    process.stdout.write(output);
    for (const r of reports) process.stderr.write(`${describeReport(r)}\n`);
  } catch (e) {
    process.stderr.write(`bowline inject: ${file === '-' ? 'stdin' : file}: ${(e as Error).message}\n`);
    process.exit(1);
  }
}

async function demo(): Promise<void> {
  // Loaded only for the demo: its upstreams use node:http, its control plane gRPC.
  const { DEMO_CONFIG, DEMO_MCP_PORT, DEMO_UPSTREAMS, DEMO_XDS, startDemoControlPlane, startDemoMcpServer, startDemoUpstreams } = await import('./demo');
  const servers = await startDemoUpstreams();
  const mcpServer = await startDemoMcpServer();
  if (mcpServer !== null) servers.push(mcpServer);
  const control = await startDemoControlPlane(log);
  const { source } = await import('./xds-source').then((m) => m.xdsSourceFor(control.bootstrap, log, control.identityTokenFile));
  const p = await runProxy({ source, workers: Math.min(2, availableParallelism()), admin: { host: '127.0.0.1', port: 4191 }, drainGraceMs: 5000 });
  handleSignals(p, () => {
    servers.forEach((s) => s.close());
    void control.stop();
  });
  process.stdout.write(
    `\nBowline demo is running: upstreams ${DEMO_UPSTREAMS.map((u) => `${u.name}@${u.zone}:${u.port}`).join(', ')};\n` +
      `the control plane serves ${DEMO_CONFIG} over xDS on 127.0.0.1:${DEMO_XDS.port}, and the proxy takes its config from it (delta ADS).\n` +
      `  curl -s http://127.0.0.1:4140/            # web: kept in this proxy's zone-a (HAZL), P2C over peak-EWMA\n` +
      `  curl -s http://127.0.0.1:4140/api/users   # api route: over mutual TLS through the inbound listener (4143)\n` +
      `  curl -s http://127.0.0.1:4143/api/users   # straight to the inbound listener, no identity: 403 (policy)\n` +
      (mcpServer === null
        ? `  (no MCP demo: @modelcontextprotocol/sdk is not installed; \`npm ci\` installs it)\n`
        : `  # MCP (the SDK's server on :${DEMO_MCP_PORT}, stateless): tools/list shows only the tools the policy grants;\n` +
          `  # calling delete_repo gets JSON-RPC error -32003 and never reaches the server; mcp_* metrics per tool\n` +
          `  curl -s http://127.0.0.1:4140/mcp -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \\\n` +
          `       -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'\n` +
          `  curl -s http://127.0.0.1:4140/mcp -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \\\n` +
          `       -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_repo","arguments":{"name":"prod"}}}'\n`) +
      `  curl -s http://127.0.0.1:4191/metrics     # proxy: golden signals, zone_requests_total, retries, ejections\n` +
      `  curl -s http://127.0.0.1:4191/config_dump # proxy: config in force (from xDS)\n` +
      `  curl -s http://127.0.0.1:${DEMO_XDS.adminPort}/metrics     # control plane: streams, pushes, ACKs, NACKs\n` +
      `Ctrl-C drains and stops.\n`,
  );
}

async function main(): Promise<void> {
  const [cmd, ...rest] = process.argv.slice(2);
  switch (cmd) {
    case 'proxy':
      return proxy(rest);
    case 'demo':
      return demo();
    case 'token': {
      // A signed workload token for local use (the control plane's --token-secret verifies it).
      const { parseArgs: pa } = await import('node:util');
      const { values: v } = pa({ args: rest, options: { secret: { type: 'string' }, namespace: { type: 'string', default: 'default' }, 'service-account': { type: 'string' }, 'ttl-s': { type: 'string', default: '86400' } } });
      if (v.secret === undefined || v['service-account'] === undefined) fail('token needs --secret FILE and --service-account NAME');
      const { readFileSync } = await import('node:fs');
      const { signToken } = await import('../xds/server/ca/token-verifier');
      process.stdout.write(`${signToken(readFileSync(v.secret), { namespace: v.namespace, serviceAccount: v['service-account'] }, Number(v['ttl-s']))}\n`);
      return;
    }
    case 'ca': {
      // CA maintenance on the files a running `bowline control --ca-dir` watches: it picks them up.
      const { parseArgs: pa } = await import('node:util');
      const [action, ...args] = rest;
      const { values: v } = pa({ args, options: { 'ca-dir': { type: 'string' }, 'trust-domain': { type: 'string', default: 'cluster.local' } } });
      if (v['ca-dir'] === undefined || !['rotate-issuer', 'rotate-anchor', 'retire-anchors', 'show'].includes(action ?? '')) fail('ca needs an action (rotate-issuer, rotate-anchor, retire-anchors, show) and --ca-dir DIR');
      const { CertificateAuthority } = await import('../xds/server/ca/authority');
      try {
        const ca = await CertificateAuthority.open({ dir: v['ca-dir'], trustDomain: v['trust-domain'] });
        if (action === 'rotate-issuer') await ca.rotateIssuer();
        else if (action === 'rotate-anchor') await ca.rotateAnchor();
        else if (action === 'retire-anchors') ca.retireOldAnchors();
        process.stdout.write(`${JSON.stringify(ca.describe(), null, 2)}\n`);
      } catch (e) {
        process.stderr.write(`bowline ca ${action}: ${(e as Error).message}\n`);
        process.exit(1);
      }
      return;
    }
    case 'init': {
      // Transparent interception in this network namespace (a pod's init container runs it as root).
      const { parseArgs: pa } = await import('node:util');
      const { values: v } = pa({
        args: rest,
        options: {
          'inbound-port': { type: 'string' },
          'outbound-port': { type: 'string' },
          'proxy-uid': { type: 'string' },
          'skip-inbound-ports': { type: 'string' },
          'skip-outbound-ports': { type: 'string' },
          'skip-outbound-cidrs': { type: 'string' },
          remove: { type: 'boolean', default: false },
          show: { type: 'boolean', default: false },
        },
      });
      const ic = await import('../workers/interception');
      const num = (flag: string, x: string | undefined, dflt: number | undefined, max: number): number | undefined => {
        if (x === undefined) return dflt;
        const n = Number(x);
        if (!Number.isInteger(n) || n < 0 || n > max) fail(`--${flag} must be an integer from 0 to ${max}, got "${x}"`);
        return n;
      };
      const list = (flag: string, x: string | undefined, dflt: number[]): number[] => (x === undefined ? dflt : x.split(',').filter((p) => p !== '').map((p) => num(flag, p.trim(), 0, 65535)!));
      const cidrs = v['skip-outbound-cidrs'] === undefined ? [] : v['skip-outbound-cidrs'].split(',').map((c) => c.trim()).filter((c) => c !== '');
      for (const c of cidrs) if (!/^[0-9a-fA-F.:]+(\/\d{1,3})?$/.test(c)) fail(`--skip-outbound-cidrs: "${c}" is not an address or CIDR`);
      try {
        if (v.remove) ic.removeInterception();
        else if (!v.show) {
          const d = ic.DEFAULT_INTERCEPTION;
          const uid = num('proxy-uid', v['proxy-uid'], undefined, 2 ** 31 - 1);
          if (uid === undefined) log('warn', 'bowline init without --proxy-uid: the proxy\'s own connections are redirected back to it; it refuses them as loops, but it cannot reach anything outside');
          ic.applyInterception({
            inboundPort: num('inbound-port', v['inbound-port'], d.inboundPort, 65535)!,
            outboundPort: num('outbound-port', v['outbound-port'], d.outboundPort, 65535)!,
            ...(uid !== undefined ? { proxyUid: uid } : {}),
            skipInboundPorts: list('skip-inbound-ports', v['skip-inbound-ports'], d.skipInboundPorts),
            skipOutboundPorts: list('skip-outbound-ports', v['skip-outbound-ports'], d.skipOutboundPorts),
            skipOutboundCidrs: cidrs,
          });
        }
        process.stdout.write(`${ic.listInterception()}\n`);
      } catch (e) {
        process.stderr.write(`bowline init: ${(e as Error).message}\n`);
        process.exit(1);
      }
      return;
    }
    case 'inject':
      return inject(rest);
    case 'control': {
      // Loaded only for this command: gRPC and protobufjs stay out of the proxy.
      const { control } = await import('./control');
      return control(rest, fail);
    }
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return;
    default:
      fail(`unknown command "${cmd}"`);
  }
}

main().catch((e: Error) => {
  process.stderr.write(`bowline: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
