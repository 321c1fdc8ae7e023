// Transparent interception for `bowline init` (what linkerd-init does): iptables rules in the current
// network namespace that send all inbound TCP to the proxy's inbound port and all outbound TCP to its
// outbound port, except the proxy's own traffic (by UID), skipped ports and CIDRs, and loopback.
// Applied atomically with iptables-restore --noflush into two chains of the nat table; applying again
// replaces the chains' rules (idempotent), and removal deletes the jumps and the chains.

import { execFileSync } from 'node:child_process';

export const INBOUND_CHAIN = 'BOWLINE_INBOUND';
export const OUTBOUND_CHAIN = 'BOWLINE_OUTBOUND';

export interface InterceptionSettings {
  inboundPort: number;
  outboundPort: number;
  /** The proxy's UID: its own connections are never redirected. Absent: the proxy's loop check is the only guard. */
  proxyUid?: number;
  /** Inbound destination ports left alone (the admin port, ssh, ...). */
  skipInboundPorts: number[];
  /** Outbound destination ports left alone. */
  skipOutboundPorts: number[];
  /** Outbound destination networks left alone. */
  skipOutboundCidrs: string[];
}

export const DEFAULT_INTERCEPTION: InterceptionSettings = {
  inboundPort: 4143,
  outboundPort: 4140,
  skipInboundPorts: [4190, 4191],
  skipOutboundPorts: [],
  skipOutboundCidrs: [],
};

/** The iptables-restore input for the two chains (without the jumps from PREROUTING and OUTPUT). */
export function chainRules(s: InterceptionSettings): string {
  const lines = ['*nat', `:${INBOUND_CHAIN} - [0:0]`, `:${OUTBOUND_CHAIN} - [0:0]`, `-F ${INBOUND_CHAIN}`, `-F ${OUTBOUND_CHAIN}`];
  // Inbound: the proxy's own ports (and skipped ones) are reached directly; everything else goes to the inbound listener.
  for (const p of new Set([s.inboundPort, ...s.skipInboundPorts])) lines.push(`-A ${INBOUND_CHAIN} -p tcp -m tcp --dport ${p} -j RETURN`);
  lines.push(`-A ${INBOUND_CHAIN} -p tcp -j REDIRECT --to-ports ${s.inboundPort}`);
  // Outbound: the proxy's own connections first (else they would loop back to it), then loopback,
  // skipped ports and networks; everything else goes to the outbound listener.
  if (s.proxyUid !== undefined) lines.push(`-A ${OUTBOUND_CHAIN} -m owner --uid-owner ${s.proxyUid} -j RETURN`);
  lines.push(`-A ${OUTBOUND_CHAIN} -d 127.0.0.0/8 -j RETURN`);
  for (const p of new Set(s.skipOutboundPorts)) lines.push(`-A ${OUTBOUND_CHAIN} -p tcp -m tcp --dport ${p} -j RETURN`);
  for (const c of new Set(s.skipOutboundCidrs)) lines.push(`-A ${OUTBOUND_CHAIN} -d ${c} -j RETURN`);
  lines.push(`-A ${OUTBOUND_CHAIN} -p tcp -j REDIRECT --to-ports ${s.outboundPort}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

const JUMPS: [string, string][] = [
  ['PREROUTING', INBOUND_CHAIN],
  ['OUTPUT', OUTBOUND_CHAIN],
];

/** Runs iptables; returns false when it exits non-zero (a check that did not match). */
function iptables(args: string[], input?: string): boolean {
  try {
    execFileSync(args[0] === 'restore' ? 'iptables-restore' : 'iptables', args[0] === 'restore' ? args.slice(1) : args, { input, stdio: ['pipe', 'ignore', 'pipe'] });
    return true;
  } catch (e) {
    const err = e as { code?: string; status?: number; stderr?: Buffer };
    if (err.code === 'ENOENT') throw new Error('iptables is not installed (Debian: apt-get install iptables)');
    if (args.includes('-C')) return false;
    throw new Error(`iptables ${args.join(' ')} failed: ${String(err.stderr ?? '').trim() || `exit ${err.status}`}`);
  }
}

/** Installs (or replaces) the rules; the jumps are added once. */
export function applyInterception(s: InterceptionSettings): void {
  iptables(['restore', '--noflush'], chainRules(s));
  for (const [from, to] of JUMPS) {
    if (!iptables(['-t', 'nat', '-C', from, '-p', 'tcp', '-j', to])) iptables(['-t', 'nat', '-A', from, '-p', 'tcp', '-j', to]);
  }
}

/** Removes the jumps and the chains; traffic flows directly again. Nothing installed: nothing to do. */
export function removeInterception(): void {
  for (const [from, to] of JUMPS) {
    while (iptables(['-t', 'nat', '-C', from, '-p', 'tcp', '-j', to])) iptables(['-t', 'nat', '-D', from, '-p', 'tcp', '-j', to]);
  }
  for (const chain of [INBOUND_CHAIN, OUTBOUND_CHAIN]) {
    if (chainExists(chain)) {
      iptables(['-t', 'nat', '-F', chain]);
      iptables(['-t', 'nat', '-X', chain]);
    }
  }
}

function chainExists(chain: string): boolean {
  try {
    execFileSync('iptables', ['-t', 'nat', '-S', chain], { stdio: ['ignore', 'ignore', 'ignore'] });
    return true;
  } catch {
    return false;
  }
}

/** The nat rules now installed by us (for `--show` and tests). */
export function listInterception(): string {
  const out = execFileSync('iptables', ['-t', 'nat', '-S'], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter((l) => l.includes(INBOUND_CHAIN) || l.includes(OUTBOUND_CHAIN))
    .join('\n');
}
