// Typed reads of a running proxy's admin port for integration tests: metrics text, per-worker
// gauges, and /config_dump.

import { admin, parseMetrics, type ProxyProcess } from './proxy-process';

export interface ConfigDump {
  version: string;
  workers: { index: number; running: boolean; ackedVersion: string; restarts: number }[];
  listeners?: { name: string; host: string; port: number }[];
}

export async function scrape(p: ProxyProcess): Promise<string> {
  const r = await admin(p, '/metrics');
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}: ${r.body}`);
  return r.body;
}

export async function configDump(p: ProxyProcess): Promise<ConfigDump> {
  const r = await admin(p, '/config_dump');
  if (r.status !== 200) throw new Error(`/config_dump answered ${r.status}`);
  return JSON.parse(r.body) as ConfigDump;
}

/** worker_open_connections by worker index. */
export function workerConnections(text: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const s of parseMetrics(text)) if (s.name === 'worker_open_connections') out.set(Number(s.labels.worker), s.value);
  return out;
}

/** The value of `config_info`'s version label (the config in force). */
export function configInfoVersion(text: string): string | undefined {
  return parseMetrics(text).find((s) => s.name === 'config_info')?.labels.version;
}

/** True when /config_dump shows every worker running and acknowledging `version`. */
export function allAcked(d: ConfigDump, version: string, workers: number): boolean {
  return d.version === version && d.workers.length === workers && d.workers.every((w) => w.running && w.ackedVersion === version);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
