// `bowline demo`: starts demo upstreams in two zones on loopback and the proxy in front of them on
// the embedded config (demo.yaml), then prints where to look.

import * as http from 'node:http';
import * as path from 'node:path';

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

/** Starts the demo upstreams; each answers with its name, zone and the request it saw. */
export async function startDemoUpstreams(): Promise<http.Server[]> {
  return Promise.all(
    DEMO_UPSTREAMS.map(
      (u) =>
        new Promise<http.Server>((resolve, reject) => {
          const s = http.createServer((req, res) => {
            req.resume();
            req.on('end', () => {
              const body = JSON.stringify({ upstream: u.name, zone: u.zone, method: req.method, url: req.url }) + '\n';
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
