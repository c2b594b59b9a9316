import { embeddedV4, parseIp } from './ip.js';

/**
 * Which upstreams the proxy may contact. Anything that can add an entry (the API, a web page
 * reaching it) chooses where the proxy connects and reads the reply back through /stream, so a
 * few destinations are closed by default: link-local addresses, where cloud metadata services
 * hand out credentials. A NAS on the LAN and servers on this machine stay allowed.
 */
export interface UpstreamPolicy {
  /** `--allow-upstream`: lowercased `host` or `host:port` entries, matched against the URL as written. */
  readonly allowedHosts?: ReadonlySet<string>;
  /** `--allow-link-local`: contact link-local and metadata addresses too. */
  readonly allowLinkLocal: boolean;
}

export const DEFAULT_UPSTREAM_POLICY: UpstreamPolicy = { allowLinkLocal: false };

export function upstreamPolicy(allowedHosts: readonly string[] | undefined, allowLinkLocal = false): UpstreamPolicy {
  if (!allowedHosts) return { allowLinkLocal };
  return { allowedHosts: new Set(allowedHosts.map((h) => h.trim().toLowerCase()).filter(Boolean)), allowLinkLocal };
}

/** Cloud metadata endpoints outside 169.254.0.0/16: AWS's IPv6 one and Alibaba Cloud's. */
const METADATA_V6 = [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254];
const METADATA_V4 = [100, 100, 100, 200];

/** What kind of closed address this is (link-local, metadata), or null for an ordinary one or a name. */
export function closedAddressKind(address: string): 'link-local' | 'metadata' | null {
  const ip = parseIp(address);
  if (!ip) return null;
  const v4 = 'v4' in ip ? ip.v4 : embeddedV4(ip.v6);
  if (v4) {
    if (v4[0] === 169 && v4[1] === 254) return 'link-local';
    return v4.every((octet, i) => octet === METADATA_V4[i]) ? 'metadata' : null;
  }
  const v6 = 'v6' in ip ? ip.v6 : [];
  if (((v6[0] ?? 0) & 0xffc0) === 0xfe80) return 'link-local';
  return v6.every((h, i) => h === METADATA_V6[i]) ? 'metadata' : null;
}

/** Why the proxy may not connect to this (resolved) address, or null when it may. */
export function refusedAddress(address: string, policy: UpstreamPolicy): string | null {
  if (policy.allowLinkLocal) return null;
  const kind = closedAddressKind(address);
  return kind && `${address} is a ${kind} address (start with --allow-link-local to permit)`;
}

/**
 * Why this URL may not be requested, judged before any DNS lookup: its scheme, the allowlist
 * (by the host as written) and a literal IP. Names are judged again once resolved (refusedAddress).
 */
export function refusedUrl(url: URL, policy: UpstreamPolicy): string | null {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `${url.protocol} is not an http(s) upstream`;
  const hostname = url.hostname.toLowerCase();
  const allowed = policy.allowedHosts;
  if (allowed && !allowed.has(hostname) && !allowed.has(url.host.toLowerCase())) {
    return `upstream host ${hostname} is not in the allowed list (--allow-upstream)`;
  }
  return refusedAddress(hostname.replace(/^\[|\]$/g, ''), policy);
}

/** URLs judged per policy, so a URL asked for again (every request of an entry) is not parsed again. */
const verdicts = new WeakMap<UpstreamPolicy, Map<string, string | null>>();
const MAX_VERDICTS = 1_000;

/**
 * refusedUrl for a URL as written, remembered per policy (it depends only on the two). Throws
 * like `new URL` for an invalid one.
 */
export function refusedUrlText(url: string, policy: UpstreamPolicy): string | null {
  let known = verdicts.get(policy);
  if (!known) verdicts.set(policy, (known = new Map()));
  const cached = known.get(url);
  if (cached !== undefined) return cached;
  const verdict = refusedUrl(new URL(url), policy);
  if (known.size >= MAX_VERDICTS) known.clear();
  known.set(url, verdict);
  return verdict;
}
