// How the control plane learns which workload a certification request comes from: a token the
// proxy presents, checked by a TokenVerifier. Two built in: Kubernetes ServiceAccount tokens via
// the TokenReview API (in a cluster), and tokens signed with a shared secret file (local and test use).

import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as https from 'node:https';

export interface WorkloadIdentity {
  namespace: string;
  serviceAccount: string;
}

export interface TokenVerifier {
  readonly name: string;
  /** The identity the token proves; throws TokenError when it proves none. */
  verify(token: Buffer): Promise<WorkloadIdentity>;
}

export class TokenError extends Error {
  override readonly name = 'TokenError';
}

const PREFIX = 'bowline1';
const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** A token for `bowline proxy` to present: "bowline1.<payload>.<HMAC-SHA256>", base64url. */
export function signToken(secret: Buffer, id: WorkloadIdentity, ttlSec: number, nowMs = Date.now()): string {
  const payload = Buffer.from(JSON.stringify({ ns: id.namespace, sa: id.serviceAccount, exp: Math.floor(nowMs / 1000) + ttlSec })).toString('base64url');
  const sig = createHmac('sha256', secret).update(`${PREFIX}.${payload}`).digest('base64url');
  return `${PREFIX}.${payload}.${sig}`;
}

/** Verifies tokens made by signToken with the same secret (a file of at least 32 bytes). */
export class SignedTokenVerifier implements TokenVerifier {
  readonly name = 'signed-token';
  private readonly secret: Buffer;

  constructor(secretOrFile: Buffer | string, private readonly now: () => number = Date.now) {
    this.secret = typeof secretOrFile === 'string' ? readFileSync(secretOrFile) : secretOrFile;
    if (this.secret.length < 32) throw new Error('the token secret must be at least 32 bytes');
  }

  verify(token: Buffer): Promise<WorkloadIdentity> {
    const parts = token.toString('utf8').trim().split('.');
    if (parts.length !== 3 || parts[0] !== PREFIX) return Promise.reject(new TokenError('not a bowline1 token'));
    const want = createHmac('sha256', this.secret).update(`${PREFIX}.${parts[1]}`).digest();
    const got = Buffer.from(parts[2]!, 'base64url');
    if (got.length !== want.length || !timingSafeEqual(got, want)) return Promise.reject(new TokenError('bad token signature'));
    let p: { ns?: unknown; sa?: unknown; exp?: unknown };
    try {
      p = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as typeof p;
    } catch {
      return Promise.reject(new TokenError('bad token payload'));
    }
    if (typeof p.exp !== 'number' || p.exp * 1000 < this.now()) return Promise.reject(new TokenError('token expired'));
    if (typeof p.ns !== 'string' || typeof p.sa !== 'string' || !NAME.test(p.ns) || !NAME.test(p.sa)) return Promise.reject(new TokenError('token names no valid namespace and service account'));
    return Promise.resolve({ namespace: p.ns, serviceAccount: p.sa });
  }
}

export interface KubernetesOptions {
  /** https://HOST:PORT of the API server (default: the in-cluster KUBERNETES_SERVICE_HOST/PORT). */
  apiServer?: string;
  /** The control plane's own token and the API server's CA (default: the in-cluster files). */
  token?: string;
  ca?: string;
  /** Audiences the token must be for (TokenReview spec.audiences). */
  audiences?: string[];
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** ServiceAccount tokens, checked by the Kubernetes API server (TokenReview). */
export class KubernetesTokenVerifier implements TokenVerifier {
  readonly name = 'kubernetes';
  private readonly url: URL;
  private readonly token: string;
  private readonly ca: string;

  constructor(private readonly o: KubernetesOptions = {}) {
    const host = process.env['KUBERNETES_SERVICE_HOST'];
    const port = process.env['KUBERNETES_SERVICE_PORT'] ?? '443';
    const api = o.apiServer ?? (host !== undefined ? `https://${host.includes(':') ? `[${host}]` : host}:${port}` : undefined);
    if (api === undefined) throw new Error('not in a Kubernetes cluster (KUBERNETES_SERVICE_HOST is unset) and no API server given');
    this.url = new URL('/apis/authentication.k8s.io/v1/tokenreviews', api);
    this.token = o.token ?? readFileSync(`${SA_DIR}/token`, 'utf8').trim();
    this.ca = o.ca ?? readFileSync(`${SA_DIR}/ca.crt`, 'utf8');
  }

  async verify(token: Buffer): Promise<WorkloadIdentity> {
    const body = JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: token.toString('utf8').trim(), audiences: this.o.audiences } });
    const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = https.request(this.url, { method: 'POST', ca: this.ca, headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: 5000 }, (r) => {
        let text = '';
        r.setEncoding('utf8');
        r.on('data', (d: string) => (text += d));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, text }));
      });
      req.on('timeout', () => req.destroy(new Error('TokenReview timed out')));
      req.on('error', reject);
      req.end(body);
    });
    if (res.status !== 201 && res.status !== 200) throw new Error(`TokenReview answered ${res.status}: ${res.text.slice(0, 200)}`);
    const review = JSON.parse(res.text) as { status?: { authenticated?: boolean; error?: string; user?: { username?: string } } };
    if (review.status?.authenticated !== true) throw new TokenError(`token not authenticated${review.status?.error ? `: ${review.status.error}` : ''}`);
    const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(review.status.user?.username ?? '');
    if (m === null) throw new TokenError(`not a ServiceAccount token (user ${review.status.user?.username ?? '?'})`);
    return { namespace: m[1]!, serviceAccount: m[2]! };
  }
}
