// Small closed-loop request runner for integration tests: n requests over `concurrency` keep-alive
// connections, tallying statuses and the x-zone / x-upstream headers of the answers.

import * as http from 'node:http';

export interface LoadTally {
  statuses: Map<number, number>;
  byZone: Map<string, number>;
  byUpstream: Map<string, number>;
  /** Requests that got no response (reset, refused, timeout). */
  errors: number;
  /** Bodies of non-2xx responses, for assertion messages. */
  failures: string[];
}

export interface LoadOptions {
  concurrency?: number;
  method?: string;
  path?: string;
  body?: Buffer | string;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

export async function runRequests(port: number, n: number, o: LoadOptions = {}): Promise<LoadTally> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency ?? 1 });
  const t: LoadTally = { statuses: new Map(), byZone: new Map(), byUpstream: new Map(), errors: 0, failures: [] };
  let next = 0;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const req = http.request(
        { host: '127.0.0.1', port, path: o.path ?? '/', method: o.method ?? 'GET', agent, headers: o.headers, timeout: o.timeoutMs ?? 10_000 },
        (res) => {
          let body = '';
          res.setEncoding('latin1');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            t.statuses.set(status, (t.statuses.get(status) ?? 0) + 1);
            const zone = res.headers['x-zone'];
            const up = res.headers['x-upstream'];
            if (typeof zone === 'string') t.byZone.set(zone, (t.byZone.get(zone) ?? 0) + 1);
            if (typeof up === 'string') t.byUpstream.set(up, (t.byUpstream.get(up) ?? 0) + 1);
            if (status >= 300 && t.failures.length < 5) t.failures.push(`${status} ${res.headers['l5d-proxy-error'] ?? ''} ${body.slice(0, 80)}`);
            resolve();
          });
          res.on('error', () => {
            t.errors++;
            resolve();
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => {
        t.errors++;
        resolve();
      });
      req.end(o.body);
    });
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      await one();
    }
  };
  await Promise.all(Array.from({ length: o.concurrency ?? 1 }, worker));
  agent.destroy();
  return t;
}

export function count(m: Map<string | number, number>, k: string | number): number {
  return m.get(k) ?? 0;
}
