// How a proxy reaches its control plane: plaintext, or TLS that checks the control plane's
// certificate against the trust bundle the bootstrap names (Envoy's UpstreamTlsContext on the xDS
// cluster), so that workload tokens, certificate requests and config never cross the network in the
// clear. A trust bundle from a file is re-read as it changes (a rotated anchor needs no restart).

import * as grpc from '@grpc/grpc-js';

/** TLS to the control plane, from the bootstrap. */
export interface ControlPlaneTls {
  /** The trust bundle: a PEM file (watched), or PEM text inline. */
  ca: { file: string } | { pem: string };
  /** The name the control plane's certificate must carry (and the TLS SNI); '' uses the address's host. */
  sni: string;
}

const CA_REFRESH_MS = 60_000;

/** gRPC credentials and channel options for the control plane at `host`. */
export function controlPlaneChannel(tls: ControlPlaneTls | undefined): { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions } {
  if (tls === undefined) return { credentials: grpc.credentials.createInsecure(), options: {} };
  const credentials =
    'file' in tls.ca
      ? grpc.experimental.createCertificateProviderChannelCredentials(new grpc.experimental.FileWatcherCertificateProvider({ caCertificateFile: tls.ca.file, refreshIntervalMs: CA_REFRESH_MS }), null)
      : grpc.credentials.createSsl(Buffer.from(tls.ca.pem));
  const options: grpc.ChannelOptions = tls.sni === '' ? {} : { 'grpc.ssl_target_name_override': tls.sni, 'grpc.default_authority': tls.sni };
  return { credentials, options };
}
