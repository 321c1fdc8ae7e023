// Watches the CA's directory so that an issuer (or trust bundle) replaced there is picked up by the
// running control plane: `bowline ca rotate-issuer`, cert-manager or an operator writes the files,
// the next certificates are signed by the new issuer, and nothing restarts. fs.watch on the
// directory, debounced, with stat polling as a fallback where watch events are missed.

import { type FSWatcher, statSync, watch } from 'node:fs';
import { join } from 'node:path';
import type { CertificateAuthority } from './authority';

const FILES = ['anchor.crt', 'issuer.crt', 'issuer.key', 'trust-bundle.crt'];

export class CaWatcher {
  private watcher: FSWatcher | null = null;
  private poll: NodeJS.Timeout | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private stamp = '';
  private lastError = '';
  private running: Promise<void> = Promise.resolve();

  constructor(
    private readonly ca: CertificateAuthority,
    private readonly dir: string,
    private readonly log: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void,
    private readonly o: { pollMs?: number; debounceMs?: number } = {},
  ) {}

  start(): void {
    this.stamp = this.currentStamp();
    try {
      this.watcher = watch(this.dir, (_e, name) => {
        if (name === null || FILES.includes(name.toString())) this.schedule();
      });
      this.watcher.on('error', () => {});
    } catch {
      // Polling alone.
    }
    this.poll = setInterval(() => {
      if (this.currentStamp() !== this.stamp) this.schedule();
    }, this.o.pollMs ?? 2000);
    this.poll.unref();
  }

  stop(): void {
    this.watcher?.close();
    if (this.poll !== null) clearInterval(this.poll);
    if (this.debounce !== null) clearTimeout(this.debounce);
  }

  /** Reloads now (also what a change triggers); resolves when done. */
  reload(): Promise<void> {
    this.running = this.running.then(async () => {
      this.stamp = this.currentStamp();
      try {
        const what = await this.ca.reload();
        this.lastError = '';
        if (what === 'bundle') this.log('info', 'CA trust bundle reloaded', { dir: this.dir });
      } catch (e) {
        // Half-written files are the common case: said once, retried at the next change or poll.
        const msg = (e as Error).message;
        if (msg !== this.lastError) this.log('warn', 'CA files changed but cannot be used (yet); the CA in force stays', { error: msg });
        this.lastError = msg;
        this.stamp = '';
      }
    });
    return this.running;
  }

  private schedule(): void {
    if (this.debounce !== null) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = null;
      void this.reload();
    }, this.o.debounceMs ?? 200);
  }

  private currentStamp(): string {
    return FILES.map((f) => {
      try {
        const st = statSync(join(this.dir, f));
        return `${st.mtimeMs}:${st.size}:${st.ino}`;
      } catch {
        return '-';
      }
    }).join('|');
  }
}
