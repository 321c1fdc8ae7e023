// SDS on the proxy side: which secrets the listeners and clusters name (TLS transport sockets whose
// certificates or trust bundles come over ADS), and the checks a received Secret must pass (a
// certificate chain and key that parse and belong together, a trust bundle that parses). Secrets are
// held for mesh TLS (identity and authorization come with it); the config dump shows their subjects
// and expiry, never a key.

import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { unpackAny } from '../common/protos';
import type * as E from './envoy-types';

interface DataSource {
  inline_bytes?: Uint8Array;
  inline_string?: string;
  filename?: string;
}

export interface Secret {
  name?: string;
  tls_certificate?: { certificate_chain?: DataSource; private_key?: DataSource };
  validation_context?: { trusted_ca?: DataSource };
}

interface SdsConfig {
  name?: string;
  sds_config?: { ads?: unknown };
}

interface CommonTlsContext {
  tls_certificate_sds_secret_configs?: SdsConfig[];
  validation_context_sds_secret_config?: SdsConfig;
  combined_validation_context?: { validation_context_sds_secret_config?: SdsConfig };
}

/** Secret names that TLS transport sockets of these listeners and clusters fetch over ADS. */
export function secretNames(listeners: Iterable<E.Listener>, clusters: Iterable<E.Cluster>): Set<string> {
  const out = new Set<string>();
  const fromSocket = (ts: { typed_config?: E.Any } | undefined): void => {
    const url = ts?.typed_config?.type_url ?? '';
    if (!url.endsWith('TlsContext')) return;
    let ctx: { common_tls_context?: CommonTlsContext };
    try {
      ctx = unpackAny(ts!.typed_config!).message as { common_tls_context?: CommonTlsContext };
    } catch {
      return;
    }
    const c = ctx.common_tls_context ?? {};
    const configs = [...(c.tls_certificate_sds_secret_configs ?? []), c.validation_context_sds_secret_config, c.combined_validation_context?.validation_context_sds_secret_config];
    for (const s of configs) {
      // Over ADS: an `ads` config source, or none (the bootstrap's ADS).
      if (s !== undefined && s !== null && (s.name ?? '') !== '' && (s.sds_config === undefined || s.sds_config === null || s.sds_config.ads !== undefined)) out.add(s.name!);
    }
  };
  for (const l of listeners) for (const fc of [...(l.filter_chains ?? []), ...(l.default_filter_chain ? [l.default_filter_chain] : [])]) fromSocket(fc.transport_socket as { typed_config?: E.Any } | undefined);
  for (const c of clusters) {
    const cl = c as E.Cluster & { transport_socket?: { typed_config?: E.Any }; transport_socket_matches?: { transport_socket?: { typed_config?: E.Any } }[] };
    fromSocket(cl.transport_socket);
    for (const m of cl.transport_socket_matches ?? []) fromSocket(m.transport_socket);
  }
  return out;
}

function read(d: DataSource | undefined): string | null {
  if (d === undefined || d === null) return null;
  if (d.inline_string !== undefined && d.inline_string !== '') return d.inline_string;
  if (d.inline_bytes !== undefined && d.inline_bytes.length > 0) return Buffer.from(d.inline_bytes).toString('utf8');
  if (d.filename !== undefined && d.filename !== '') return readFileSync(d.filename, 'utf8');
  return null;
}

/** Problems that make a Secret unusable (it is NACKed); [] when fine. */
export function validateSecret(s: Secret): string[] {
  const at = `secret "${s.name ?? ''}"`;
  if ((s.name ?? '') === '') return ['secret: name is empty'];
  const problems: string[] = [];
  try {
    if (s.tls_certificate !== undefined && s.tls_certificate !== null) {
      const chain = read(s.tls_certificate.certificate_chain);
      const key = read(s.tls_certificate.private_key);
      if (chain === null) problems.push(`${at}: tls_certificate.certificate_chain is empty`);
      if (key === null) problems.push(`${at}: tls_certificate.private_key is empty`);
      if (chain !== null && key !== null) {
        const cert = new X509Certificate(chain);
        if (!cert.checkPrivateKey(createPrivateKey(key))) problems.push(`${at}: tls_certificate.private_key does not match the certificate`);
      }
    } else if (s.validation_context !== undefined && s.validation_context !== null) {
      const ca = read(s.validation_context.trusted_ca);
      if (ca === null) problems.push(`${at}: validation_context.trusted_ca is empty`);
      else new X509Certificate(ca);
    } else {
      problems.push(`${at}: only tls_certificate and validation_context secrets are supported`);
    }
  } catch (e) {
    problems.push(`${at}: ${(e as Error).message}`);
  }
  return problems;
}

/** What the config dump shows of a secret: never key material. */
export function describeSecret(s: Secret): Record<string, unknown> {
  try {
    const pem = read(s.tls_certificate?.certificate_chain) ?? read(s.validation_context?.trusted_ca);
    if (pem === null) return { name: s.name };
    const c = new X509Certificate(pem);
    return { name: s.name, kind: s.tls_certificate ? 'certificate' : 'trust bundle', subject: c.subject, subjectAltName: c.subjectAltName, validTo: c.validTo };
  } catch (e) {
    return { name: s.name, error: (e as Error).message };
  }
}
