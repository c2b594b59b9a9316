import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { canonicalIp, isLoopbackIp } from '../policy/ip.js';

/**
 * Which `Host` headers the server answers. A web page can point a name it controls at 127.0.0.1
 * (DNS rebinding); the browser then treats the proxy as that page's own origin and lets it read
 * the answers, but still sends the page's name as Host. Answering only our own names closes that.
 */
export interface HostGuardOptions {
  /** The address the server is bound to. */
  bindHost: string;
  /** Further names clients use to reach us (`--public-host`). */
  publicHosts?: readonly string[];
  /** This machine's addresses, asked when the bind is a wildcard (default os.networkInterfaces()). */
  interfaceAddresses?: () => string[];
}

export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}

/** Host header → hostname: lowercase, without port, brackets or a trailing dot; null when malformed. */
export function hostnameOf(header: string): string | null {
  const m = /^(?:\[([0-9a-f:.%]+)\]|([^:[\]]+)|([0-9a-f:.]+))(?::(\d{1,5}))?$/i.exec(header.trim());
  if (!m) return null;
  const name = (m[1] ?? m[2] ?? m[3] ?? '').toLowerCase().replace(/\.$/, '');
  // Colons belong to a port unless inside an IPv6 address.
  if ((m[1] !== undefined || m[3] !== undefined) && isIP(name.replace(/%.*$/, '')) !== 6) return null;
  return name === '' ? null : name;
}

export class HostGuard {
  private readonly names = new Set<string>();
  private readonly wildcard: boolean;
  private readonly interfaceAddresses: () => string[];
  private interfaces = new Set<string>();

  constructor(options: HostGuardOptions) {
    this.wildcard = isWildcard(options.bindHost);
    this.interfaceAddresses = options.interfaceAddresses ?? localAddresses;
    for (const name of [...(options.publicHosts ?? []), ...(this.wildcard ? [] : [options.bindHost])]) {
      const hostname = hostnameOf(name);
      if (hostname) this.names.add(canonicalIp(hostname) ?? hostname);
    }
  }

  /**
   * Whether a request with this Host is for us. A request without Host (HTTP/1.0) is answered:
   * browsers always send one, so it cannot come from a rebinding page.
   */
  allows(header: string | undefined): boolean {
    if (header === undefined) return true;
    const hostname = hostnameOf(header);
    if (hostname === null) return false;
    if (hostname === 'localhost' || hostname.endsWith('.localhost') || isLoopbackIp(hostname)) return true;
    const ip = canonicalIp(hostname);
    if (this.names.has(ip ?? hostname)) return true;
    // Bound to every interface, clients reach us by any of this machine's addresses, and those
    // change (DHCP, VPN): look again on a miss rather than keep a list from start-up.
    if (!this.wildcard || ip === null) return false;
    if (this.interfaces.has(ip)) return true;
    this.interfaces = new Set(this.interfaceAddresses().map((a) => canonicalIp(a) ?? a));
    return this.interfaces.has(ip);
  }
}

function localAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
}
