import dns from 'node:dns';
import type { LookupFunction } from 'node:net';
import { ErrorCodes, MediaCacheError } from '../errors.js';
import { refusedAddress, type UpstreamPolicy } from '../policy/upstream-policy.js';

export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Resolves a host name to its addresses (all of them). */
export type UpstreamResolver = (hostname: string) => Promise<ResolvedAddress[]>;

const systemResolver =
  (options: dns.LookupOptions): UpstreamResolver =>
  (hostname) =>
    dns.promises.lookup(hostname, { ...options, all: true });

/**
 * The `lookup` of the upstream agents: resolves like dns.lookup, then refuses the connection when
 * any address the name resolves to is closed by the policy. Checking here, on the addresses the
 * socket is about to use, is what makes a name pointing at 169.254.169.254 (or re-pointed there
 * after it was added: DNS rebinding) as refused as the literal address. Literal IPs never reach
 * a lookup; the Downloader judges those from the URL.
 */
export function checkedLookup(policy: UpstreamPolicy, resolve?: UpstreamResolver): LookupFunction {
  return (hostname, options, callback) => {
    const resolver = resolve ?? systemResolver(options);
    resolver(hostname).then(
      (found) => {
        let addresses: ResolvedAddress[];
        try {
          addresses = allowedAddresses(hostname, found, options.family, policy);
        } catch (err) {
          callback(err as NodeJS.ErrnoException, '', 0);
          return;
        }
        const [first] = addresses as [ResolvedAddress];
        if (options.all) callback(null, addresses);
        else callback(null, first.address, first.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, '', 0),
    );
  };
}

/** The addresses of the asked family; throws when any is closed (one closed address refuses the name) or none is left. */
function allowedAddresses(hostname: string, found: ResolvedAddress[], family: unknown, policy: UpstreamPolicy): ResolvedAddress[] {
  for (const { address } of found) {
    const refusal = refusedAddress(address, policy);
    if (refusal) throw new MediaCacheError(ErrorCodes.UPSTREAM_REFUSED, `upstream ${hostname} resolves to ${refusal}`);
  }
  const addresses = family === 4 || family === 6 ? found.filter((a) => a.family === family) : found;
  if (addresses.length === 0) throw Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' });
  return addresses;
}
