// Config files for integration tests: a temp directory per test, YAML built from a small shape, and
// atomic replacement (write a temp file, rename over) the way deploy tools and editors do it.

import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestListener {
  name: string;
  /** Default 127.0.0.1:0. */
  address?: string;
  routes: string[];
}

export interface TestService {
  name: string;
  /** Upstream ports on 127.0.0.1; [] gives a service with no endpoints. */
  ports: number[];
}

export interface TestRoute {
  name: string;
  backend: string;
  /** Path prefix; default: every request. */
  pathPrefix?: string;
}

export function configYaml(c: { listeners: TestListener[]; services: TestService[]; routes: TestRoute[] }): string {
  const out: string[] = ['listeners:'];
  for (const l of c.listeners) {
    out.push(`  - name: ${l.name}`, `    address: ${l.address ?? '127.0.0.1:0'}`, `    routes: [${l.routes.join(', ')}]`);
  }
  out.push('services:');
  for (const s of c.services) {
    out.push(`  - name: ${s.name}`);
    if (s.ports.length === 0) out.push('    endpoints: []');
    else {
      out.push('    endpoints:');
      for (const p of s.ports) out.push(`      - address: 127.0.0.1:${p}`);
    }
  }
  out.push('routes:');
  for (const r of c.routes) {
    out.push(`  - name: ${r.name}`);
    if (r.pathPrefix !== undefined) out.push(`    matches: [{ path: { type: PathPrefix, value: "${r.pathPrefix}" } }]`);
    out.push(`    backendRefs: [{ name: ${r.backend} }]`);
  }
  return out.join('\n') + '\n';
}

export class TempConfig {
  readonly dir = mkdtempSync(join(tmpdir(), 'bowline-it-'));
  readonly file = join(this.dir, 'bowline.yaml');
  private n = 0;

  constructor(text: string) {
    writeFileSync(this.file, text);
  }

  /** Replaces the file atomically: readers see the old or the new content, never a partial one. */
  replace(text: string): void {
    const tmp = join(this.dir, `.bowline.yaml.${++this.n}.tmp`);
    writeFileSync(tmp, text);
    renameSync(tmp, this.file);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
