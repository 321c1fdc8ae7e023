// Config files of the mTLS benchmark's two topologies, written into the run's directory:
//   A: wrk -> Bowline client side (outbound, service with `identity:`) -> mTLS 1.3 -> Bowline server side (inbound) -> nginx
//   B: wrk -> HAProxy client side (server ... ssl crt) -> mTLS 1.3 -> HAProxy server side (bind ... ssl verify required) -> nginx
// Both use the same certificates (perf/mtls/certs.ts) and the same upstream. The reference topology
// (node:tls relay pair, perf/mtls/node-relay.ts) takes its ports from here too; it has no config file.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Ports {
  upstream: number;
  bowlineClient: number;
  bowlineServer: number;
  bowlineClientAdmin: number;
  bowlineServerAdmin: number;
  haproxyClient: number;
  haproxyServer: number;
  relayClient: number;
  relayServer: number;
}

export const PORTS: Ports = {
  upstream: 18600,
  bowlineClient: 18610,
  bowlineServer: 18611,
  bowlineClientAdmin: 18612,
  bowlineServerAdmin: 18613,
  haproxyClient: 18620,
  haproxyServer: 18621,
  relayClient: 18630,
  relayServer: 18631,
};

export interface ConfigFiles {
  upstream: string;
  bowlineClient: string;
  bowlineServer: string;
  haproxyClient: string;
  haproxyServer: string;
}

/** `certs` holds {web,api}.{crt,key,pem} and bundle.crt; `serverId` is the server side's SPIFFE ID. */
export function writeConfigs(out: string, certs: string, serverId: string, p: Ports = PORTS, meshProtocol = ''): ConfigFiles {
  const conf = join(out, 'conf');
  const tmp = join(out, 'tmp');
  mkdirSync(conf, { recursive: true });
  mkdirSync(tmp, { recursive: true });
  const c = (f: string): string => join(certs, f);
  const files: ConfigFiles = {
    upstream: join(conf, 'upstream-nginx.conf'),
    bowlineClient: join(conf, 'bowline-client.yaml'),
    bowlineServer: join(conf, 'bowline-server.yaml'),
    haproxyClient: join(conf, 'haproxy-client.cfg'),
    haproxyServer: join(conf, 'haproxy-server.cfg'),
  };

  // The upstream: what peers.sh uses (one nginx worker, 200 with the 2-byte body "ok", keep-alive).
  writeFileSync(
    files.upstream,
    `# upstream: 1 worker, fixed 2-byte body, keep-alive, no logging
worker_processes 1;
daemon off;
pid ${join(tmp, 'upstream.pid')};
error_log ${join(out, 'logs', 'upstream-error.log')} warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${tmp}/body; proxy_temp_path ${tmp}/proxy; fastcgi_temp_path ${tmp}/fcgi; uwsgi_temp_path ${tmp}/uwsgi; scgi_temp_path ${tmp}/scgi;
  default_type text/plain;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:${p.upstream} backlog=4096;
    location / { return 200 'ok'; }
  }
}
`,
  );

  // Bowline: the identities as `proxy.identity` PEM files, as in test/integration/mesh-tls.test.ts.
  writeFileSync(
    files.bowlineServer,
    `# Bowline server side: inbound listener; a TLS ClientHello is terminated (TLS 1.3, client certificate from the anchors required)
proxy:
  identity: { certificateChainFile: ${c('api.crt')}, privateKeyFile: ${c('api.key')}, trustBundleFile: ${c('bundle.crt')} }
listeners: [{ name: in, address: 127.0.0.1:${p.bowlineServer}, direction: inbound, defaultService: app }]
services: [{ name: app, endpoints: [{ address: 127.0.0.1:${p.upstream} }] }]
`,
  );
  writeFileSync(
    files.bowlineClient,
    `# Bowline client side: plaintext in; the service is meshed (identity:), so it is reached over TLS 1.3 with the exact SPIFFE ID checked
proxy:
  identity: { certificateChainFile: ${c('web.crt')}, privateKeyFile: ${c('web.key')}, trustBundleFile: ${c('bundle.crt')} }
listeners: [{ name: out, address: 127.0.0.1:${p.bowlineClient}, defaultService: api }]
services:
  - name: api
    identity: ${serverId}
    endpoints: [{ address: 127.0.0.1:${p.bowlineServer} }]
${meshProtocol === '' ? '' : `    protocol: ${meshProtocol}\n`}`,
  );

  // HAProxy: one process per side (two sidecars), nbthread 1 each; the same keep-alive settings as peers.sh.
  const haGlobal = (role: 'client' | 'server'): string => `# HAProxy ${role} side: nbthread 1, HTTP mode, keep-alive both sides, idle server connections shared
global
  nbthread 1
  maxconn 8000
  pidfile ${join(tmp, `haproxy-${role}.pid`)}
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  option http-keep-alive
  http-reuse always
`;
  writeFileSync(
    files.haproxyServer,
    `${haGlobal('server')}frontend mesh_in
  bind 127.0.0.1:${p.haproxyServer} ssl crt ${c('api.pem')} ca-file ${c('bundle.crt')} verify required ssl-min-ver TLSv1.3
  default_backend app
backend app
  server up1 127.0.0.1:${p.upstream}
`,
  );
  // HAProxy checks the server's chain against the anchors; it has no check of a URI SAN (verifyhost
  // matches DNS names and the CN), so unlike Bowline it does not compare the SPIFFE ID.
  writeFileSync(
    files.haproxyClient,
    `${haGlobal('client')}frontend plain_out
  bind 127.0.0.1:${p.haproxyClient}
  default_backend api
backend api
  server api 127.0.0.1:${p.haproxyServer} ssl crt ${c('web.pem')} ca-file ${c('bundle.crt')} verify required ssl-min-ver TLSv1.3
`,
  );
  return files;
}
