// Opaque TCP forwarding: one upstream connection per client connection, bytes piped both ways with
// stream back-pressure, half-close propagated, counted in the tcp_* metrics at close.

import * as net from 'node:net';
import { Outcome } from '../balance/balancer';
import type { Cluster } from '../cluster';
import type { ListenerRuntime, ProxyContext, TrackedConnection } from '../context';
import { type Inbound, markConsumesWrites } from '../io/inbound';
import type { TcpStats } from '../metrics/registry';

export class TcpForward implements TrackedConnection {
  private upstream: net.Socket | null = null;
  private closed = false;
  private upCounted = false;
  private readonly connectStartMs: number;
  private connected = false;
  private connectTimeoutMs = 0;

  private readonly client: net.Socket;

  constructor(
    private readonly ctx: ProxyContext,
    inbound: Inbound,
    private readonly lr: ListenerRuntime,
    cluster: Cluster | null,
    first: Buffer | null,
    /** The client half-closed during detection: pass the FIN on after the first bytes. */
    ended = false,
    /** The client's SPIFFE ID when it came over mesh TLS. */
    peerIdentity: string | null = null,
  ) {
    this.connectStartMs = ctx.clock.now();
    const client = inbound.socket;
    this.client = client;
    ctx.track(this);
    client.on('error', () => this.close());
    client.on('close', () => this.close());
    const authz = lr.authorizer;
    if (authz !== null) {
      // Inbound authorization of a connection: a denied one is closed before any byte goes on.
      const address = client.remoteAddress ?? '';
      const d = authz.decide(lr.name, lr.snapshot.address.port, peerIdentity, address, null);
      ctx.authzDecision('tcp', d, peerIdentity, address, `port ${lr.snapshot.address.port}`);
      if (!d.allowed) {
        client.destroy();
        return;
      }
    }
    const ep = cluster?.balancer.pick() ?? null;
    if (ep === null) {
      client.destroy();
      return;
    }
    const mesh = ep.identity !== null ? ctx.meshTls : null;
    if (ep.identity !== null && mesh === null) {
      // Zero trust: a meshed endpoint is reached over mutual TLS or not at all.
      client.destroy();
      return;
    }
    const up: net.Socket =
      mesh !== null
        ? mesh.connect(ep.host, ep.port, ep.identity!, false)
        : net.connect({ host: ep.host, port: ep.port, noDelay: true, allowHalfOpen: true });
    ctx.ownSocket(up);
    if (mesh !== null) markConsumesWrites(up);
    this.upstream = up;
    this.connectTimeoutMs = cluster!.connectTimeoutMs;
    const t = lr.dstTcp;
    t.opened++;
    t.open++;
    this.upCounted = true;
    up.on(mesh !== null ? 'secureConnect' : 'connect', () => {
      this.connected = true;
      cluster!.balancer.outcome(ep, Outcome.Success);
    });
    // A refused or unreachable endpoint counts toward its failure accrual.
    up.on('error', () => {
      if (!this.connected) cluster!.balancer.outcome(ep, Outcome.ConnectFailure);
    });
    up.on('error', () => this.close());
    up.on('close', () => this.close());
    // Client to upstream by hand (the client's chunks may live in its read buffer: see Inbound);
    // upstream to client by pipe.
    const forward = (chunk: Buffer): void => {
      if (!up.write(chunk)) inbound.pause();
      inbound.afterWrite(up, chunk.length);
    };
    up.on('drain', () => inbound.resume());
    if (first !== null && first.length > 0) forward(first);
    if (ended) up.end();
    else {
      inbound.sink = forward;
      client.on('end', () => up.end());
    }
    up.pipe(client);
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    const up = this.upstream;
    if (up !== null) {
      up.destroy();
      if (this.upCounted) {
        const t = this.lr.dstTcp;
        t.open--;
        t.closed++;
        t.readBytes += up.bytesRead;
        t.writeBytes += up.bytesWritten;
      }
    }
    this.client.destroy();
    this.ctx.untrack(this);
  }

  sweep(now: number): void {
    if (!this.connected && this.upstream !== null && now - this.connectStartMs > this.connectTimeoutMs) this.close();
  }

  drain(): void {
    // Opaque streams have no request boundary: they run until the grace period ends.
  }

  destroy(): void {
    this.close();
  }

  openBytes(add: (s: TcpStats, read: number, written: number) => void): void {
    if (this.closed) return;
    if (this.upstream !== null) add(this.lr.dstTcp, this.upstream.bytesRead, this.upstream.bytesWritten);
  }
}
