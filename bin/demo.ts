// `bowline demo`: starts demo upstreams in two zones on loopback, the control plane on the embedded
// mesh (demo.yaml), and the proxy in front of the upstreams with its config fed over xDS; then prints
// where to look.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { startAdminServer } from '../workers/admin-server';
import type { Bootstrap } from '../xds/client/bootstrap';
import { ControlPlane } from '../xds/server/control-plane';
import { FileMeshSource } from '../xds/server/mesh-source';

export interface DemoUpstream {
  name: string;
  zone: string;
  port: number;
}

export const DEMO_UPSTREAMS: DemoUpstream[] = [
  { name: 'web-1', zone: 'zone-a', port: 18181 },
  { name: 'web-2', zone: 'zone-a', port: 18182 },
  { name: 'web-3', zone: 'zone-b', port: 18183 },
  { name: 'api-1', zone: 'zone-b', port: 18184 },
];

export const DEMO_CONFIG = path.join(__dirname, 'demo.yaml');

/** Where the demo's control plane serves xDS and its admin port. */
export const DEMO_XDS = { port: 18000, adminPort: 9901 };

type Log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

/**
 * The control plane on demo.yaml with a certificate authority (generated for this run in a temporary
 * directory, with a random token secret), the bootstrap a demo proxy in zone-a uses to reach it, and
 * the token file that proves the proxy's identity (spiffe://cluster.local/ns/demo/sa/demo).
 */
export async function startDemoControlPlane(log: Log): Promise<{ bootstrap: Bootstrap; identityTokenFile: string; stop(): Promise<void> }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bowline-demo-'));
  const secret = randomBytes(32);
  const { CertificateAuthority } = await import('../xds/server/ca/authority');
  const { SignedTokenVerifier, signToken } = await import('../xds/server/ca/token-verifier');
  // Quiet: the generated CA's "local use" warning is what a demo is.
  const ca = await CertificateAuthority.open({ dir: path.join(dir, 'ca'), trustDomain: 'cluster.local', generate: true });
  const identityTokenFile = path.join(dir, 'demo.token');
  writeFileSync(identityTokenFile, signToken(secret, { namespace: 'demo', serviceAccount: 'demo' }, 7 * 24 * 3600), { mode: 0o600 });
  const cp = new ControlPlane({ source: new FileMeshSource(DEMO_CONFIG), listen: `127.0.0.1:${DEMO_XDS.port}`, buildThreads: 1, log, identity: { ca, verifier: new SignedTokenVerifier(secret) } });
  await cp.start();
  const admin = await startAdminServer('127.0.0.1', DEMO_XDS.adminPort, {
    metrics: () => Promise.resolve(cp.metrics.render()),
    ready: () => cp.cache.generation > 0,
    configDump: () => cp.configDump(),
  });
  return {
    bootstrap: {
      node: { id: 'demo-proxy', cluster: 'demo', zone: 'zone-a' },
      admin: null,
      ads: { host: '127.0.0.1', port: cp.port, delta: true },
      static: { listeners: [], clusters: [] },
      ignored: [],
    },
    identityTokenFile,
    stop: async () => {
      admin.close();
      await cp.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Where the demo's MCP server listens (behind the proxy's /mcp route). */
export const DEMO_MCP_PORT = 18185;

/**
 * The demo's MCP server: the official SDK's McpServer over Streamable HTTP, stateless with JSON
 * answers, so that one curl makes one call. Tools search_docs, get_weather and delete_repo (the
 * mesh's MCP policy lets callers see and call only the first two). Null when the SDK is not
 * installed (it is a development dependency: `npm ci` installs it, a production image does not).
 */
export async function startDemoMcpServer(): Promise<http.Server | null> {
  let sdk: { McpServer: typeof import('@modelcontextprotocol/sdk/server/mcp.js').McpServer; Transport: typeof import('@modelcontextprotocol/sdk/server/streamableHttp.js').StreamableHTTPServerTransport; z: typeof import('zod').z };
  try {
    sdk = {
      McpServer: (await import('@modelcontextprotocol/sdk/server/mcp.js')).McpServer,
      Transport: (await import('@modelcontextprotocol/sdk/server/streamableHttp.js')).StreamableHTTPServerTransport,
      z: (await import('zod')).z,
    };
  } catch {
    return null;
  }
  const { McpServer, Transport, z } = sdk;
  const server = http.createServer((req, res) => {
    const mcp = new McpServer({ name: 'bowline-demo-tools', version: '1.0.0' });
    const text = (t: string): { content: { type: 'text'; text: string }[] } => ({ content: [{ type: 'text', text: t }] });
    mcp.registerTool('search_docs', { description: 'Searches the docs', inputSchema: { query: z.string() } }, ({ query }) => text(`3 pages match "${query}"`));
    mcp.registerTool('get_weather', { description: 'Weather for a city', inputSchema: { city: z.string() } }, ({ city }) => text(`${city}: 21°C, clear`));
    mcp.registerTool('delete_repo', { description: 'Deletes a repository', inputSchema: { name: z.string() } }, ({ name }) => text(`deleted ${name}`));
    const transport = new Transport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => {
      void transport.close();
      void mcp.close();
    });
    void mcp.connect(transport).then(() => transport.handleRequest(req, res));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new Error(`demo MCP server cannot listen on 127.0.0.1:${DEMO_MCP_PORT}: ${e.message}`)));
    server.listen(DEMO_MCP_PORT, '127.0.0.1', () => resolve());
  });
  return server;
}

/** Starts the demo upstreams; each answers with its name, zone and the request it saw. */
export async function startDemoUpstreams(): Promise<http.Server[]> {
  return Promise.all(
    DEMO_UPSTREAMS.map(
      (u) =>
        new Promise<http.Server>((resolve, reject) => {
          const s = http.createServer((req, res) => {
            req.resume();
            req.on('end', () => {
              // Who called, when the call came through mesh TLS (the proxy sets l5d-client-id).
              const clientId = req.headers['l5d-client-id'];
              const body = JSON.stringify({ upstream: u.name, zone: u.zone, method: req.method, url: req.url, ...(clientId === undefined ? {} : { clientId }) }) + '\n';
              res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': u.name });
              res.end(body);
            });
          });
          s.keepAliveTimeout = 120_000;
          s.once('error', (e) => reject(new Error(`demo upstream ${u.name} cannot listen on 127.0.0.1:${u.port}: ${e.message}`)));
          s.listen(u.port, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
}
