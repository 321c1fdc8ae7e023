// The Identity gRPC service of `bowline control`: checks the workload token, derives the SPIFFE ID
// from it (the requested one must match), and has the CA sign the CSR. Refusals are gRPC statuses:
// UNAUTHENTICATED for a bad token, PERMISSION_DENIED for an identity the token does not prove,
// INVALID_ARGUMENT for a bad CSR.

import * as grpc from '@grpc/grpc-js';
import { serviceDefinition } from '../../common/grpc-services';
import { type CertifyRequest, IDENTITY_SERVICE, identityRoot } from '../../common/identity-proto';
import { spiffeId } from '../../common/x509';
import { type CertificateAuthority, CsrError } from './authority';
import { TokenError, type TokenVerifier } from './token-verifier';

export interface IdentityCounters {
  issued: number;
  refused: Map<string, number>;
}

export function addIdentityService(server: grpc.Server, ca: CertificateAuthority, verifier: TokenVerifier, log: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void): IdentityCounters {
  const counters: IdentityCounters = { issued: 0, refused: new Map() };
  const refuse = (cb: grpc.sendUnaryData<unknown>, code: grpc.status, reason: string, details: string): void => {
    counters.refused.set(reason, (counters.refused.get(reason) ?? 0) + 1);
    log('warn', 'certificate refused', { reason, details });
    cb({ code, details });
  };
  server.addService(serviceDefinition(IDENTITY_SERVICE, identityRoot()), {
    Certify: (call: grpc.ServerUnaryCall<CertifyRequest, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      const req = call.request;
      void (async () => {
        let who;
        try {
          who = await verifier.verify(Buffer.from(req.token ?? []));
        } catch (e) {
          return refuse(cb, e instanceof TokenError ? grpc.status.UNAUTHENTICATED : grpc.status.UNAVAILABLE, e instanceof TokenError ? 'token' : 'verifier', (e as Error).message);
        }
        const id = spiffeId(ca.trustDomain, who.namespace, who.serviceAccount);
        if ((req.identity ?? '') !== '' && req.identity !== id) return refuse(cb, grpc.status.PERMISSION_DENIED, 'identity', `the token proves ${id}, not ${req.identity}`);
        try {
          const issued = await ca.issue(Buffer.from(req.certificate_signing_request ?? []), id);
          counters.issued++;
          log('info', 'certificate issued', { identity: id, validUntil: new Date(issued.notAfterMs).toISOString() });
          cb(null, { certificate_chain: issued.chain, trust_anchors: issued.anchors, valid_until_unix_ms: issued.notAfterMs });
        } catch (e) {
          if (e instanceof CsrError) return refuse(cb, grpc.status.INVALID_ARGUMENT, 'csr', e.message);
          return refuse(cb, grpc.status.INTERNAL, 'internal', (e as Error).message);
        }
      })();
    },
  });
  return counters;
}
