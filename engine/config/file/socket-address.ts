// HOST:PORT parsing shared by the config file and the command line.

import { isIP } from 'node:net';
import type { SocketAddress } from '../snapshot';

const HOST_NAME = /^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*$/;

/**
 * Parses "HOST:PORT" or "[IPV6]:PORT" into { host, port } (IPv6 hosts without brackets).
 * Throws an Error whose message says what is wrong. `minPort` is 0 for listeners (any free port).
 */
export function parseSocketAddress(text: string, minPort = 1): SocketAddress {
  const example = 'expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080';
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) throw new Error(`"${text}" has no closing "]"; ${example}`);
    host = text.slice(1, close);
    if (isIP(host) !== 6) throw new Error(`"${host}" in brackets is not an IPv6 address`);
    if (text[close + 1] !== ':') throw new Error(`"${text}" has no port; ${example}`);
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) throw new Error(`"${text}" has no port; ${example}`);
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) throw new Error(`"${text}": an IPv6 address needs brackets, e.g. [::1]:8080`);
    if (host === '') throw new Error(`"${text}" has no host; ${example}`);
    if (/^[\d.]+$/.test(host) ? isIP(host) !== 4 : !HOST_NAME.test(host)) {
      throw new Error(`"${host}" is not an IP address or host name`);
    }
  }
  if (!/^\d{1,5}$/.test(portText)) throw new Error(`"${text}" has no valid port; ${example}`);
  const port = Number(portText);
  if (port < minPort || port > 65535) throw new Error(`port ${port} is out of range ${minPort}-65535`);
  return { host, port };
}
