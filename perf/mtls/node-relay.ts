// The mTLS benchmark's reference topology: a bare Node.js relay pair over node:tls, with no HTTP at
// all (bytes in, bytes out), in the same layout as Bowline's two sides. It shows the ceiling that
// node:tls and Node's sockets set on one core shared by both sides; Bowline's row is read against it.
//
//   node dist/perf/mtls/node-relay.js client LISTEN_PORT SERVER_PORT CERTS_DIR EXPECTED_SPIFFE_ID
//   node dist/perf/mtls/node-relay.js server LISTEN_PORT UPSTREAM_PORT CERTS_DIR
//
// client: plain TCP in; per accepted connection one mutual TLS 1.3 connection to the server side with
//   web.crt/web.key, trusting bundle.crt, the server's certificate required to carry exactly the
//   expected SPIFFE URI SAN (as Bowline's client side checks it).
// server: mutual TLS 1.3 in (api.crt/api.key, a client certificate from bundle.crt required); per
//   connection one plain TCP connection to the upstream.
// The plain side of each hop reads into a buffer of its own (net's `onread`), as does the client
// side's TLS connection (tls.connect takes `onread` too); the server side's TLS sockets come from
// tls.Server, which takes no `onread`, and use 'data' events. Every read is copied before it is
// written on (an `onread` buffer is reused by the next read). Both directions respect backpressure.
// Errors end the one connection pair they belong to and are not reported.

import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import * as tls from 'node:tls';

const HOST = '127.0.0.1';
const READ_BUFFER_BYTES = 16 * 1024;

type OnRead = { buffer: Buffer; callback: (n: number, buf: Uint8Array) => boolean };

/** `onread` for `src`'s reads: each read copied and written to the socket `dst()` (false pauses `src`). */
function copyTo(dst: () => net.Socket | undefined): OnRead {
  return {
    buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
    callback: (n, buf) => {
      const d = dst();
      if (d === undefined || d.destroyed) return true;
      return d.write(Buffer.from(buf.subarray(0, n)));
    },
  };
}

/**
 * Ties two sockets of a pair together: `a`'s end ends `b`, `a`'s close closes `b` once what was written
 * to it has gone out, an error destroys both; a write that returned false (backpressure) paused the
 * reader, which resumes on 'drain'. `aDataTo`: also relay `a`'s 'data' events to `b`.
 */
function link(a: net.Socket, b: net.Socket, aDataTo: boolean): void {
  a.setNoDelay(true);
  a.on('error', () => {
    a.destroy();
    b.destroy();
  });
  a.on('end', () => b.end());
  a.on('close', (hadError: boolean) => {
    if (hadError || b.destroyed) return void b.destroy();
    b.end();
    if (b.writableFinished) b.destroy();
    else b.once('finish', () => b.destroy());
  });
  // `b`'s writes paused `a` (onread returned false, or pause() below): resume when `b` drains.
  b.on('drain', () => a.resume());
  if (aDataTo) {
    a.on('data', (d: Buffer) => {
      if (!b.destroyed && !b.write(d)) a.pause();
    });
  }
}

function peerSpiffeId(cert: tls.PeerCertificate | undefined): string | null {
  const uris = (cert?.subjectaltname ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('URI:spiffe://'))
    .map((s) => s.slice('URI:'.length));
  return uris.length === 1 ? uris[0]! : null;
}

function client(listenPort: number, serverPort: number, certs: string, expected: string): net.Server {
  const cert = readFileSync(join(certs, 'web.crt'));
  const key = readFileSync(join(certs, 'web.key'));
  const ca = readFileSync(join(certs, 'bundle.crt'));
  // One context for every connection, as a proxy keeps one.
  const secureContext = tls.createSecureContext({ cert, key, ca, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' });
  const srv = net.createServer((down) => {
    const up = tls.connect({
      host: HOST,
      port: serverPort,
      secureContext,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      checkServerIdentity: (_host, c) => {
        const got = peerSpiffeId(c);
        return got === expected ? undefined : new Error(`peer identity ${got ?? 'none'}, expected ${expected}`);
      },
      onread: copyTo(() => down),
    } as tls.ConnectionOptions & { onread: OnRead });
    link(down, up, true);
    link(up, down, false);
  });
  srv.listen(listenPort, HOST, () => process.stdout.write(`node-relay client: plain :${listenPort} -> mTLS 1.3 :${serverPort} (expects ${expected})\n`));
  return srv;
}

function server(listenPort: number, upstreamPort: number, certs: string): tls.Server {
  const srv = tls.createServer(
    {
      cert: readFileSync(join(certs, 'api.crt')),
      key: readFileSync(join(certs, 'api.key')),
      ca: readFileSync(join(certs, 'bundle.crt')),
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
    },
    (down) => {
      const up = net.connect({ host: HOST, port: upstreamPort, onread: copyTo(() => down) });
      link(down, up, true);
      link(up, down, false);
    },
  );
  // Refused handshakes (no certificate, TLS 1.2, a wrong chain) end here: nothing to relay.
  srv.on('tlsClientError', (_e, s) => s.destroy());
  srv.listen(listenPort, HOST, () => process.stdout.write(`node-relay server: mTLS 1.3 :${listenPort} -> plain :${upstreamPort}\n`));
  return srv;
}

function main(argv: string[]): void {
  const [mode, listen, to, certs, expected] = argv;
  const port = (s: string | undefined): number => {
    const n = Number(s);
    return Number.isInteger(n) && n > 0 && n < 65536 ? n : NaN;
  };
  const lp = port(listen);
  const tp = port(to);
  const usage = 'usage: node-relay.js client LISTEN_PORT SERVER_PORT CERTS_DIR EXPECTED_SPIFFE_ID | server LISTEN_PORT UPSTREAM_PORT CERTS_DIR\n';
  if (Number.isNaN(lp) || Number.isNaN(tp) || certs === undefined || certs === '') {
    process.stderr.write(usage);
    process.exit(2);
  }
  let s: net.Server;
  if (mode === 'client' && expected !== undefined && expected !== '') s = client(lp, tp, certs, expected);
  else if (mode === 'server') s = server(lp, tp, certs);
  else {
    process.stderr.write(usage);
    process.exit(2);
  }
  s.on('error', (e) => {
    process.stderr.write(`node-relay ${mode}: ${e.message}\n`);
    process.exit(1);
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(0));
}

if (require.main === module) main(process.argv.slice(2));
