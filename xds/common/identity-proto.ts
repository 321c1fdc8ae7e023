// Bowline's own identity service (protos/identity.proto), loaded with protobufjs at run time from
// the repository's protos/ folder, like Envoy's protos from their package.

import * as path from 'node:path';
import * as protobuf from 'protobufjs';

export const IDENTITY_SERVICE = 'bowline.identity.v1.Identity';

let root: protobuf.Root | undefined;

/** Compiled to dist/xds/common; the .proto stays in the source tree's protos/. */
export function identityRoot(): protobuf.Root {
  if (root === undefined) {
    const r = new protobuf.Root();
    r.loadSync(path.resolve(__dirname, '../../../protos/identity.proto'), { keepCase: true });
    r.resolveAll();
    root = r;
  }
  return root;
}

export interface CertifyRequest {
  identity: string;
  token: Buffer;
  certificate_signing_request: Buffer;
}

export interface CertifyResponse {
  certificate_chain: Buffer[];
  trust_anchors: Buffer[];
  valid_until_unix_ms: string | number;
}
