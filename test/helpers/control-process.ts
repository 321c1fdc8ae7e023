// Starts `bowline control` as a real child process for integration tests and reads its ports.

import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { sleep } from './admin-probe';
import { BOWLINE_BIN } from './proxy-process';

export interface Control {
  child: ChildProcess;
  port: number;
  adminPort: number;
  out: () => string;
  stop(): Promise<void>;
}

export async function startControl(meshFile: string, port = 0, extraArgs: string[] = []): Promise<Control> {
  const child = spawn(process.execPath, [BOWLINE_BIN, 'control', '--config', meshFile, '--listen', `127.0.0.1:${port}`, '--admin', '127.0.0.1:0', '--build-threads', '1', ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 15_000;
  for (;;) {
    const m = /xds on [^:]+:(\d+), admin on [^:]+:(\d+)/.exec(out);
    if (m) {
      return {
        child,
        port: Number(m[1]),
        adminPort: Number(m[2]),
        out: () => out,
        stop: async () => {
          if (child.exitCode === null) child.kill('SIGTERM');
          await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
        },
      };
    }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`bowline control did not start:\n${out}`);
    await sleep(25);
  }
}


/**
 * Writes the Envoy bootstrap of a proxy fed by the control plane on 127.0.0.1:`port` (delta ADS),
 * optionally over TLS (trust bundle file and name to check), and returns its path.
 */
export function writeBootstrap(file: string, port: number, opts: { zone?: string; tls?: { caFile: string; sni: string } } = {}): string {
  const tls =
    opts.tls === undefined
      ? ''
      : `      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          sni: ${opts.tls.sni}
          common_tls_context: { validation_context: { trusted_ca: { filename: "${opts.tls.caFile}" } } }
`;
  writeFileSync(
    file,
    `node: { id: web-1, cluster: web${opts.zone === undefined ? '' : `, locality: { zone: ${opts.zone} }`} }
dynamic_resources:
  ads_config: { api_type: DELTA_GRPC, grpc_services: [{ envoy_grpc: { cluster_name: xds } }] }
static_resources:
  clusters:
    - name: xds
      type: STATIC
      load_assignment: { cluster_name: xds, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${port} } } } }] }] }
${tls}`,
  );
  return file;
}
