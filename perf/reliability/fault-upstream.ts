// Benchmark upstreams with faults the reliability runner sets while a run is going (latency, injected
// error statuses, outages), each saying who answered in `x-upstream` and `x-zone`.
//
// As a library (same process as the runner):
//   const fleet = await startFaultUpstreams([{ name: 'a', zone: 'zone-a' }, { name: 'b', zone: 'zone-b', port: 18402 }]);
//   fleet.get('a').setFaults({ delayMs: 100 });          // every request waits 100 ms more
//   fleet.get('b').setFaults({ status: 503, errorRate: 0.5, retryAfter: '1' });
//   await fleet.get('b').down(); ...; await fleet.get('b').up();   // refused/reset, then back on the same port
//   await fleet.close();
//
// As a command, for manual runs (keeps serving until SIGTERM/SIGINT; --control reads commands on stdin):
//   node dist/perf/reliability/fault-upstream.js --spec a:zone-a:18401 --spec b:zone-b:0 [--host 127.0.0.1] [--control]

import * as http from 'node:http';
import type * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import * as readline from 'node:readline';
import { parseArgs } from 'node:util';

/** One upstream to start. `port` 0 or absent picks a free port (fixed from then on, see `up()`). */
export interface FaultUpstreamSpec {
  name: string;
  zone: string;
  port?: number;
}

/** Fleet-wide settings; `random` and `now` are injectable so a test can make the faults deterministic. */
export interface FaultFleetOptions {
  /** Address to listen on; 127.0.0.1 by default. */
  host?: string;
  /** Uniform [0, 1) source for errorRate draws; Math.random by default. */
  random?: () => number;
  /** Monotonic clock in ms for the per-second series; performance.now by default. */
  now?: () => number;
}

/** The faults applied to each request a server receives. Read when the request arrives, so a change
 * applies to requests received after it, not to those already waiting out a delay. */
export interface Faults {
  /** Added latency per request in ms (one timer per request, so any number can wait at once). */
  delayMs: number;
  /** Status of the injected error responses, e.g. 503. */
  status: number;
  /** Fraction 0..1 of requests answered with `status` instead of 200, drawn independently per request
   * (not every n-th: a retry sent to the same server must get a fresh chance, as with a real fault). */
  errorRate: number;
  /** Value of the Retry-After header sent with injected errors; null sends none. */
  retryAfter: string | null;
  /**
   * Capacity: at most this many requests are served at once (each taking delayMs), the rest wait in
   * order, as on a server with that many workers. 0 = unlimited. Models an overloaded zone.
   */
  concurrency: number;
}

export const NO_FAULTS: Readonly<Faults> = Object.freeze({ delayMs: 0, status: 503, errorRate: 0, retryAfter: null, concurrency: 0 });

/** How `down()` ends the open connections. */
export interface DownOptions {
  /** true: reset every connection (RST, like a crashed host); false (default): destroy them (FIN,
   * like a killed process). Either way in-flight requests get no response. */
  reset?: boolean;
}

/** A plain-data snapshot of one server, for printing or JSON. */
export interface FaultUpstreamStats {
  name: string;
  zone: string;
  host: string;
  port: number;
  up: boolean;
  /** Requests received since start (never reset). */
  requests: number;
  /** Of those, answered (or to be answered) with an injected error status. */
  injected: number;
  /** Requests received whose response has not finished yet (waiting out a delay, or being written). */
  inFlight: number;
  /** Open client connections. */
  connections: number;
  faults: Faults;
}

/** One fault upstream, driven by the runner in the same process. */
export interface FaultUpstream {
  readonly name: string;
  readonly zone: string;
  readonly host: string;
  /** The listening port; fixed at the first listen, so `up()` binds the same one again. */
  readonly port: number;
  /** Listening (between `up()` and `down()`). */
  readonly isUp: boolean;
  /** Requests received since start (never reset). */
  readonly requests: number;
  /** Requests received whose response has not finished yet. */
  readonly inFlight: number;
  /** The faults in force. */
  faults(): Readonly<Faults>;
  /** Changes only the given fields; throws RangeError on a bad value (nothing is changed then). */
  setFaults(change: Partial<Faults>): void;
  /** Back to NO_FAULTS. */
  clearFaults(): void;
  /** Requests received since the previous call (or since start), and restarts that count. */
  takeRequests(): number;
  /** Restarts the per-second series: `requestSeries()[0]` is then the second that starts now. */
  mark(): void;
  /** Requests received in each second since start or the last `mark()`, up to the current second
   * (the last entry is a partial second); seconds with none, e.g. while down, are 0. */
  requestSeries(): number[];
  stats(): FaultUpstreamStats;
  /** Stops listening (new connections are refused) and ends every open connection; resolves once
   * the listener is closed. A no-op when already down. */
  down(opts?: DownOptions): Promise<void>;
  /** Listens again on the same port; rejects if it cannot (e.g. someone else took it). A no-op when up. */
  up(): Promise<void>;
  /** `down()` for good: `up()` rejects afterwards. */
  close(): Promise<void>;
}

/** The servers started by `startFaultUpstreams`, in spec order. */
export interface FaultFleet {
  readonly upstreams: readonly FaultUpstream[];
  /** The server with that name; throws if there is none. */
  get(name: string): FaultUpstream;
  /** Where each server listens, in spec order (for writing a proxy's config). */
  endpoints(): { name: string; zone: string; host: string; port: number }[];
  clearFaults(): void;
  /** `mark()` on every server. */
  mark(): void;
  /** `takeRequests()` of every server, by name. */
  takeRequests(): Record<string, number>;
  stats(): FaultUpstreamStats[];
  /** Closes every server and connection. */
  close(): Promise<void>;
}

function validateFaults(f: Faults): void {
  if (!Number.isFinite(f.delayMs) || f.delayMs < 0) throw new RangeError(`delayMs must be a finite number >= 0, got ${f.delayMs}`);
  if (!Number.isInteger(f.status) || f.status < 100 || f.status > 599) throw new RangeError(`status must be an integer 100..599, got ${f.status}`);
  if (!Number.isInteger(f.concurrency) || f.concurrency < 0) throw new RangeError(`concurrency must be an integer >= 0, got ${f.concurrency}`);
  if (!(f.errorRate >= 0 && f.errorRate <= 1)) throw new RangeError(`errorRate must be within 0..1, got ${f.errorRate}`);
  if (f.retryAfter !== null && (typeof f.retryAfter !== 'string' || /[\r\n]/.test(f.retryAfter))) {
    throw new RangeError('retryAfter must be null or a one-line string');
  }
}

class FaultServer implements FaultUpstream {
  readonly host: string;
  private boundPort: number;
  private readonly server: http.Server;
  private readonly sockets = new Set<net.Socket>();
  private current: Faults = { ...NO_FAULTS };
  private readonly okBody: Buffer;
  private readonly okHeaders: http.OutgoingHttpHeaders;
  private errorBody: Buffer = Buffer.alloc(0);
  private errorHeaders: http.OutgoingHttpHeaders = {};
  private listening = false;
  private closed = false;
  /** down()/up() run one after the other, so a quick down-up-down cannot interleave listen and close. */
  private transitions: Promise<void> = Promise.resolve();
  private received = 0;
  private injectedCount = 0;
  private taken = 0;
  private active = 0;
  private markAt: number;
  private series: number[] = [];

  constructor(
    readonly name: string,
    readonly zone: string,
    host: string,
    port: number,
    private readonly random: () => number,
    private readonly now: () => number,
  ) {
    this.host = host;
    this.boundPort = port;
    this.markAt = now();
    this.okBody = Buffer.from(`ok ${name}\n`, 'latin1');
    this.okHeaders = { 'content-type': 'text/plain', 'content-length': this.okBody.length, 'x-upstream': name, 'x-zone': zone };
    this.compileErrorResponse();
    this.server = http.createServer((req, res) => this.onRequest(req, res));
    // node:http closes idle keep-alive connections after 5 s by default; a proxy's pooled connection
    // closed that way would show up as resets that are not the fault under test.
    this.server.keepAliveTimeout = 120_000;
    this.server.headersTimeout = 125_000;
    this.server.on('connection', (socket: net.Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  get port(): number {
    return this.boundPort;
  }

  get isUp(): boolean {
    return this.listening;
  }

  get requests(): number {
    return this.received;
  }

  get inFlight(): number {
    return this.active;
  }

  faults(): Readonly<Faults> {
    return { ...this.current };
  }

  setFaults(change: Partial<Faults>): void {
    const next: Faults = { ...this.current };
    if (change.delayMs !== undefined) next.delayMs = change.delayMs;
    if (change.status !== undefined) next.status = change.status;
    if (change.errorRate !== undefined) next.errorRate = change.errorRate;
    if (change.retryAfter !== undefined) next.retryAfter = change.retryAfter;
    if (change.concurrency !== undefined) next.concurrency = change.concurrency;
    validateFaults(next);
    this.current = next;
    this.compileErrorResponse();
  }

  clearFaults(): void {
    this.current = { ...NO_FAULTS };
    this.compileErrorResponse();
  }

  takeRequests(): number {
    const n = this.received - this.taken;
    this.taken = this.received;
    return n;
  }

  mark(): void {
    this.markAt = this.now();
    this.series = [];
  }

  requestSeries(): number[] {
    const out = this.series.slice();
    const upTo = Math.floor((this.now() - this.markAt) / 1000);
    while (out.length <= upTo) out.push(0);
    return out;
  }

  stats(): FaultUpstreamStats {
    return {
      name: this.name,
      zone: this.zone,
      host: this.host,
      port: this.boundPort,
      up: this.listening,
      requests: this.received,
      injected: this.injectedCount,
      inFlight: this.active,
      connections: this.sockets.size,
      faults: { ...this.current },
    };
  }

  down(opts: DownOptions = {}): Promise<void> {
    return this.enqueue(() => this.stopListening(opts.reset === true));
  }

  up(): Promise<void> {
    return this.enqueue(() => (this.closed ? Promise.reject(new Error(`fault upstream ${this.name} is closed`)) : this.listen()));
  }

  close(): Promise<void> {
    this.closed = true;
    return this.down();
  }

  /** First listen: binds the spec's port (0 picks one) and remembers the one it got. */
  listen(): Promise<void> {
    if (this.listening) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(new Error(`fault upstream ${this.name}: cannot listen on ${this.host}:${this.boundPort}: ${e.message}`));
      this.server.once('error', onError);
      this.server.listen({ host: this.host, port: this.boundPort, backlog: 1024 }, () => {
        this.server.removeListener('error', onError);
        const a = this.server.address();
        if (typeof a === 'object' && a !== null) this.boundPort = a.port;
        this.listening = true;
        resolve();
      });
    });
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    const p = this.transitions.then(step);
    this.transitions = p.catch(() => undefined);
    return p;
  }

  private stopListening(reset: boolean): Promise<void> {
    if (!this.listening) return Promise.resolve();
    this.listening = false;
    return new Promise((resolve) => {
      // close() stops accepting at once; its callback waits for the connections, ended just below.
      this.server.close(() => resolve());
      for (const s of this.sockets) {
        if (reset) s.resetAndDestroy();
        else s.destroy();
      }
    });
  }

  private compileErrorResponse(): void {
    const f = this.current;
    this.errorBody = Buffer.from(`injected ${f.status} by ${this.name}\n`, 'latin1');
    this.errorHeaders = { ...this.okHeaders, 'content-length': this.errorBody.length };
    if (f.retryAfter !== null) this.errorHeaders['retry-after'] = f.retryAfter;
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.received++;
    const idx = Math.floor((this.now() - this.markAt) / 1000);
    while (this.series.length <= idx) this.series.push(0);
    this.series[idx]++;
    this.active++;
    // A request body is read and dropped, so that the connection stays usable for the next request.
    req.resume();
    const f = this.current;
    const fail = f.errorRate > 0 && this.random() < f.errorRate;
    if (fail) this.injectedCount++;
    // Decided now, with the headers and body compiled for the faults in force now.
    const status = fail ? f.status : 200;
    const headers = fail ? this.errorHeaders : this.okHeaders;
    const body = fail ? this.errorBody : this.okBody;
    let timer: NodeJS.Timeout | undefined;
    let serving = false;
    const respond = (): void => {
      timer = undefined;
      res.writeHead(status, headers).end(body);
    };
    const start = (): void => {
      if (res.destroyed) return;
      serving = true;
      this.inService++;
      if (f.delayMs > 0) timer = setTimeout(respond, f.delayMs);
      else respond();
    };
    // 'close' comes once per response, whether it finished or its connection died (down(), client reset).
    res.once('close', () => {
      this.active--;
      if (timer !== undefined) clearTimeout(timer);
      if (serving) {
        this.inService--;
        // A freed worker takes the oldest waiting request (skipping those whose client left).
        const c = this.current.concurrency;
        while (this.waiting.length > 0 && (c === 0 || this.inService < c)) this.waiting.shift()!();
      }
    });
    if (f.concurrency > 0 && this.inService >= f.concurrency) this.waiting.push(start);
    else start();
  }

  /** Requests being served now (with a concurrency limit) and those waiting for a free worker. */
  private inService = 0;
  private readonly waiting: (() => void)[] = [];
}

/**
 * Starts one node:http HTTP/1.1 server (keep-alive) per spec, all on `opts.host` (127.0.0.1). Names
 * must be unique. If any server cannot listen, the others are closed and the promise rejects.
 */
export async function startFaultUpstreams(specs: FaultUpstreamSpec[], opts: FaultFleetOptions = {}): Promise<FaultFleet> {
  const host = opts.host ?? '127.0.0.1';
  const random = opts.random ?? Math.random;
  const now = opts.now ?? (() => performance.now());
  const byName = new Map<string, FaultServer>();
  for (const s of specs) {
    if (s.name === '' || byName.has(s.name)) throw new Error(`fault upstream names must be unique and non-empty: '${s.name}'`);
    const port = s.port ?? 0;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`fault upstream ${s.name}: bad port ${s.port}`);
    byName.set(s.name, new FaultServer(s.name, s.zone, host, port, random, now));
  }
  const servers = [...byName.values()];
  const started = await Promise.allSettled(servers.map((s) => s.listen()));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed !== undefined) {
    await Promise.all(servers.map((s) => s.close()));
    throw failed.reason;
  }
  return {
    upstreams: servers,
    get(name: string): FaultUpstream {
      const s = byName.get(name);
      if (s === undefined) throw new Error(`no fault upstream named '${name}' (have ${[...byName.keys()].join(', ')})`);
      return s;
    },
    endpoints: () => servers.map((s) => ({ name: s.name, zone: s.zone, host: s.host, port: s.port })),
    clearFaults: () => servers.forEach((s) => s.clearFaults()),
    mark: () => servers.forEach((s) => s.mark()),
    takeRequests: () => Object.fromEntries(servers.map((s) => [s.name, s.takeRequests()])),
    stats: () => servers.map((s) => s.stats()),
    close: async () => {
      await Promise.all(servers.map((s) => s.close()));
    },
  };
}

// ------------------------------------------------------------------ command line

/** Parses `name:zone[:port]`. */
export function parseFaultSpec(text: string): FaultUpstreamSpec {
  const parts = text.split(':');
  if (parts.length < 2 || parts.length > 3 || parts[0] === '' || parts[1] === '') throw new Error(`bad --spec '${text}': expected name:zone[:port]`);
  const port = parts.length === 3 ? Number(parts[2]) : 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad port in --spec '${text}'`);
  return { name: parts[0], zone: parts[1], port };
}

const CONTROL_HELP = `commands (NAME may be * for all):
  delay NAME MS                     added latency per request
  errors NAME STATUS RATE [RETRY]   answer RATE (0..1) of requests with STATUS, Retry-After RETRY
  clear NAME                        no faults
  down NAME [reset]                 stop listening and end connections (reset: RST)
  up NAME                           listen again on the same port
  stats                             one JSON line per server
`;

async function control(fleet: FaultFleet, line: string): Promise<string> {
  const w = line.trim().split(/\s+/);
  if (w[0] === '' || w[0] === 'help') return CONTROL_HELP;
  if (w[0] === 'stats') return fleet.stats().map((s) => JSON.stringify(s)).join('\n') + '\n';
  const targets = w[1] === '*' ? [...fleet.upstreams] : w[1] !== undefined ? [fleet.get(w[1])] : [];
  if (targets.length === 0) return `missing NAME\n${CONTROL_HELP}`;
  for (const t of targets) {
    switch (w[0]) {
      case 'delay':
        t.setFaults({ delayMs: Number(w[2]) });
        break;
      case 'errors':
        t.setFaults({ status: Number(w[2]), errorRate: Number(w[3]), retryAfter: w[4] ?? null });
        break;
      case 'clear':
        t.clearFaults();
        break;
      case 'down':
        await t.down({ reset: w[2] === 'reset' });
        break;
      case 'up':
        await t.up();
        break;
      default:
        return `unknown command '${w[0]}'\n${CONTROL_HELP}`;
    }
  }
  return `ok ${targets.map((t) => `${t.name}(${t.isUp ? 'up' : 'down'} ${JSON.stringify(t.faults())})`).join(' ')}\n`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      spec: { type: 'string', multiple: true },
      host: { type: 'string', default: '127.0.0.1' },
      control: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const specs = (values.spec ?? []).map(parseFaultSpec);
  if (specs.length === 0) throw new Error('usage: fault-upstream.js --spec name:zone[:port] [--spec ...] [--host 127.0.0.1] [--control]');
  const fleet = await startFaultUpstreams(specs, { host: values.host });
  for (const e of fleet.endpoints()) process.stdout.write(`fault-upstream ${e.name} zone ${e.zone} listening on ${e.host}:${e.port}\n`);
  const stop = (): void => {
    fleet.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // Opt-in: reading a terminal from a background job (`... &`) would stop the process (SIGTTIN).
  if (values.control) {
    process.stdout.write(CONTROL_HELP);
    const rl = readline.createInterface({ input: process.stdin });
    // One command at a time, in order: a "down" then "up" pasted together must not interleave.
    let queue: Promise<void> = Promise.resolve();
    rl.on('line', (line) => {
      queue = queue.then(() =>
        control(fleet, line).then(
          (out) => void process.stdout.write(out),
          (e: unknown) => void process.stdout.write(`error: ${(e as Error).message}\n`),
        ),
      );
    });
  }
}

if (require.main === module) {
  main().catch((e: unknown) => {
    process.stderr.write(`fault-upstream: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
