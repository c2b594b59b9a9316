import type { MediaCache } from '../cache.js';
import { ErrorCodes, MediaCacheError } from '../errors.js';
import { hostnameOf } from '../server/host-guard.js';
import { StreamUrlSigner } from './signed-url.js';

/** What `serve` passes for a node of a cluster (`--public-url`, `--cluster-secret`, `--node-name`). */
export interface ClusterServerOptions {
  /** The balancer's address, e.g. `http://media.lan:8080`: stream URLs are handed out on it, signed. */
  publicUrl?: string;
  /** The secret every node shares; required with `publicUrl`. */
  clusterSecret?: string;
  /** How this node names itself (`GET /healthz`); default `hostname:port`. */
  nodeName?: string;
}

export interface ClusterRouting {
  /** Host names the balancer's clients use: the public URL's host counts as one of ours. */
  readonly hosts: readonly string[];
  /** The signed stream URL on the balancer, or null outside a cluster. */
  streamUrl(id: string): string | null;
  /** True when streamUrl() gives URLs (each with its own token), false when it always gives null. */
  readonly signsUrls: boolean;
  /**
   * The id to serve for `GET /stream/<id>?t=…`. A known id is served as it is (a token, when
   * present, must still verify: an altered URL is refused, not ignored). An unknown id is
   * registered from its verified token; without a valid one, MC_ERR_BAD_SIGNATURE and nothing is
   * registered. Outside a cluster, ids are served as they are (unknown → 404 from the reader).
   */
  admit(id: string, requestUrl: string): string;
}

/** The public URL, normalized: http(s), no path, query or credentials. */
export function parsePublicUrl(raw: string): URL {
  const url = URL.canParse(raw) ? new URL(raw) : null;
  if (!url || !['http:', 'https:'].includes(url.protocol) || url.username || url.password || url.search || url.hash) {
    throw new MediaCacheError(
      ErrorCodes.INVALID_INPUT,
      `--public-url must be an http(s) origin like http://media.lan:8080, not ${JSON.stringify(raw)}`,
    );
  }
  return url;
}

export function clusterRouting(cache: MediaCache, options: ClusterServerOptions = {}): ClusterRouting {
  const secret = options.clusterSecret;
  const signer = secret === undefined ? undefined : new StreamUrlSigner(secret);
  if (options.publicUrl !== undefined && !signer) {
    throw new MediaCacheError(ErrorCodes.INVALID_INPUT, '--public-url needs --cluster-secret: the stream URLs it hands out are signed');
  }
  const publicUrl = options.publicUrl === undefined ? undefined : parsePublicUrl(options.publicUrl);
  const origin = publicUrl ? `${publicUrl.origin}${publicUrl.pathname.replace(/\/+$/, '')}` : undefined;
  const publicHost = publicUrl ? hostnameOf(publicUrl.host) : null;
  return {
    hosts: publicHost === null ? [] : [publicHost],
    signsUrls: origin !== undefined && signer !== undefined,
    streamUrl(id) {
      if (origin === undefined || !signer) return null;
      const input = cache.entryInput(id);
      return input ? `${origin}/stream/${id}?t=${signer.sign(id, input)}` : `${origin}/stream/${id}`;
    },
    admit(id, requestUrl) {
      if (!signer) return id;
      const token = new URL(requestUrl, 'http://x').searchParams.get('t');
      const known = cache.entryInput(id) !== undefined;
      if (known && token === null) return id;
      const input = signer.verify(id, token);
      if (known) return id;
      return cache.addEntry(input, { id }).entry.id;
    },
  };
}
