// Mesh TLS for one engine: the proxy's identity as TLS contexts (TLS 1.3 only, both directions
// presenting the workload certificate and trusting the mesh's anchors), and how a peer's identity is
// read from its certificate (the SPIFFE URI SAN, nothing else).

import * as tls from 'node:tls';
import type { IdentitySnapshot } from '../config/snapshot';

/** What inbound mesh TLS offers: HTTP/2 for peers that multiplex, HTTP/1.1 for the rest (server's order wins). */
const SERVER_ALPN = ['h2', 'http/1.1'];

export class MeshTls {
  readonly spiffeId: string;
  /** For terminating inbound mesh TLS: a client certificate is required and checked. */
  readonly serverOptions: tls.TlsOptions;
  /** For originating outbound mesh TLS. */
  readonly clientContext: tls.SecureContext;

  constructor(readonly identity: IdentitySnapshot) {
    this.spiffeId = identity.spiffeId;
    const common = { cert: identity.certChainPem, key: identity.keyPem, ca: identity.trustBundlePem, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' } as const;
    this.serverOptions = { secureContext: tls.createSecureContext(common), requestCert: true, rejectUnauthorized: true, ALPNProtocols: SERVER_ALPN };
    this.clientContext = tls.createSecureContext(common);
    this.server = this.createServer();
  }

  /** Options for a connection to a meshed endpoint whose certificate must name `expected`. */
  clientOptions(host: string, port: number, expected: string, protocols: string[] = ['http/1.1']): tls.ConnectionOptions {
    return {
      host,
      port,
      secureContext: this.clientContext,
      minVersion: 'TLSv1.3',
      ALPNProtocols: protocols,
      // Identities are SPIFFE URIs, not host names: the SAN must be exactly the expected one.
      checkServerIdentity: (_host, cert) => {
        const got = peerIdentity(cert);
        return got === expected ? undefined : Object.assign(new Error(`peer identity ${got ?? 'none'}, expected ${expected}`), { code: 'ERR_MESH_IDENTITY' });
      },
    };
  }

  /** A mutual TLS connection to a meshed endpoint that must be `expected`. */
  connect(host: string, port: number, expected: string, alpn = true, onread?: { buffer: Buffer | (() => Buffer); callback: (n: number, buf: Uint8Array) => boolean | void }, protocols?: string[]): tls.TLSSocket {
    const o: tls.ConnectionOptions & { onread?: unknown } = this.clientOptions(host, port, expected, protocols);
    if (!alpn) delete o.ALPNProtocols;
    if (onread !== undefined) o.onread = onread;
    return tls.connect(o);
  }

  /**
   * Terminates mesh TLS on an accepted socket (whose already-read bytes were unshifted back) through
   * a tls.Server that never listens: it is Node's tls.Server that checks the client certificate
   * against the trust bundle and refuses the connection when it does not verify (a bare TLSSocket
   * would only report it). `done` gets the secured socket, or an error.
   */
  accept(socket: import('node:net').Socket, done: (err: Error | null, t: tls.TLSSocket | null) => void): void {
    const key = `${socket.remoteAddress}|${socket.remotePort}`;
    this.pending.set(key, done);
    this.server.emit('connection', socket);
  }

  private readonly pending = new Map<string, (err: Error | null, t: tls.TLSSocket | null) => void>();

  private readonly server: tls.Server;

  private createServer(): tls.Server {
    return (() => {
    // tls.Server builds its own context from these (it does not take a secureContext).
    const id = this.identity;
    const srv = tls.createServer({ cert: id.certChainPem, key: id.keyPem, ca: id.trustBundlePem, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', requestCert: true, rejectUnauthorized: true, ALPNProtocols: SERVER_ALPN });
    const settle = (t: tls.TLSSocket, err: Error | null): void => {
      const key = `${t.remoteAddress}|${t.remotePort}`;
      const cb = this.pending.get(key);
      if (cb === undefined) return;
      this.pending.delete(key);
      cb(err, err === null ? t : null);
    };
    srv.on('secureConnection', (t: tls.TLSSocket) => settle(t, t.authorized ? null : new Error(String(t.authorizationError))));
    srv.on('tlsClientError', (err: Error, t: tls.TLSSocket) => {
      settle(t, err);
      t.destroy();
    });
    return srv;
    })();
  }

  /** Forgets a connection that closed before its handshake ended. */
  forget(socket: import('node:net').Socket): void {
    this.pending.delete(`${socket.remoteAddress}|${socket.remotePort}`);
  }

  /** The same identity (so that an unchanged snapshot keeps its contexts and pooled connections). */
  sameAs(id: IdentitySnapshot): boolean {
    return id.certChainPem === this.identity.certChainPem && id.keyPem === this.identity.keyPem && id.trustBundlePem === this.identity.trustBundlePem;
  }
}

/** The SPIFFE ID of a peer certificate: its one URI SAN starting with spiffe://, else null. */
export function peerIdentity(cert: tls.PeerCertificate | undefined | null): string | null {
  return identityFromSan(cert?.subjectaltname);
}

/**
 * The peer's SPIFFE ID of an established mesh TLS socket, read from its X509Certificate (parsed on
 * demand), not from getPeerCertificate(), which also builds fingerprints and every field per call.
 */
export function socketPeerIdentity(t: tls.TLSSocket): string | null {
  return identityFromSan(t.getPeerX509Certificate()?.subjectAltName);
}

function identityFromSan(san: string | undefined): string | null {
  const uris = (san ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('URI:spiffe://'))
    .map((s) => s.slice(4));
  return uris.length === 1 ? uris[0]! : null;
}
