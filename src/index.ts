/**
 * The programmatic API, for apps that embed the cache (a player, a media-server add-on). The CLI
 * and the HTTP API are thin layers over these.
 */
import { MediaCache, type CacheOptions } from './cache.js';

export { MediaCache, DEFAULTS } from './cache.js';
export type { CacheOptions, CacheEvents, EntryStatus, PriorityName, VerifyReport } from './cache.js';
export { startServer, DEFAULT_HOST, DEFAULT_PORT } from './server/http-server.js';
export type { CacheServer, ServerOptions } from './server/http-server.js';
export type { EntryInput } from './entry-input.js';
export type { UpstreamResolver, ResolvedAddress } from './download/upstream-lookup.js';
export type { CacheLimits, DiskUsageSummary as DiskUsage, GcReport } from './store/evictor.js';
export type { CoreSnapshot, TransferSnapshot, DemandSnapshot, EntrySnapshot } from './inspect.js';
export type { StatTotals } from './stats/stats.js';
export { EntryState } from './state/entry-state.js';
export { ErrorCodes, MediaCacheError } from './errors.js';
export type { ErrorCode } from './errors.js';

/** Opens a cache on a data dir (created if missing) and resumes its queued downloads. */
export function createCache(options: CacheOptions = {}): Promise<MediaCache> {
  return MediaCache.open(options);
}
