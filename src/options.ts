import type { BackgroundFill, RetryPolicy } from './policy/scheduling.js';
import type { ChunkStore } from './store/chunk-store.js';
import type { UpstreamResolver } from './download/upstream-lookup.js';

/** How a MediaCache is set up; every field has a default (DEFAULTS). */
export interface CacheOptions {
  /** Where the database, lock file and sparse files live. Default `./.mediacache`. */
  dataDir?: string;
  /** Bytes per chunk for new entries (existing entries keep theirs). Default 10 MiB. */
  chunkSize?: number;
  maxConcurrentDownloads?: number;
  /** Chunks fetched ahead of a reader when the entry's bitrate is unknown. Default 10. */
  lookaheadChunks?: number;
  /** Seconds of playback fetched ahead of a reader when the entry's bitrate is known. Default 60. */
  lookaheadSeconds?: number;
  /** How long a reader waits for missing bytes before giving up. Default 30 s. */
  waitTimeoutMs?: number;
  /**
   * When an entry's gaps are fetched at LOW priority: `'always'` (every opened entry, as `true`
   * did), `'played'` (once a player read it like playback: 30 s of media, or 32 MiB without a
   * bitrate — a probe or a library scan fetches only what it reads), `'never'` (as `false`).
   * Default `'played'`.
   */
  backgroundFill?: boolean | BackgroundFill;
  retry?: Partial<RetryPolicy>;
  /**
   * Caps background work (LOW and MEDIUM: background fill, pre-cache) as one token bucket shared
   * by all its transfers: bytes per second, or the CLI's text — `'2MB/s'`, `'512KiB'`, `'off'`, or a
   * timetable `'08:00,1M 23:00,off'` (`Mon-08:00,…` for one day of the week). Default: no limit.
   */
  limitRate?: number | string;
  /**
   * Caps every upstream transfer, playback included (the same forms as `limitRate`): one bucket in
   * which playback goes first. With both set, background work passes both. Default: no limit.
   */
  limitRateAll?: number | string;
  /**
   * How long after a version's first reply its opening work (head and tail) is queued, unless the
   * download that got the reply ends first. Default 5 ms; a seam for tests that force that order.
   */
  openingDelayMs?: number;
  /** Upstream timeout for headers and between body pieces. Default 30 s. */
  upstreamTimeoutMs?: number;
  /** Builds the chunk store on its directory: a seam for tests (a full disk) and embedders. */
  createStore?: (root: string) => ChunkStore;
  /**
   * Shared by every node of a cluster (`--cluster-secret`, at least 16 characters): entry ids become
   * a keyed hash of the cache key, so every node computes the same id. Without it ids are random.
   */
  clusterSecret?: string;
  /**
   * How long a database statement waits for a lock before the request gets 503. Default 10 ms:
   * the wait blocks the event loop, so it stays short; background writes retry asynchronously.
   */
  databaseBusyTimeoutMs?: number;
  /** Where a throwing event listener is reported. Default: a process warning. */
  onListenerError?: (error: Error, event: string) => void;
  /** Disk the cached files may use (allocated blocks). Default: min(20 % of the disk, 50 GB). */
  maxSize?: number;
  /** Free disk space to leave. Default 2 GB. */
  minFree?: number;
  /** Period of the cleanup worker. Default 60 s. */
  cleanupIntervalMs?: number;
  /** How often statistics are written to the database. Default 5 s. */
  statsFlushIntervalMs?: number;
  /**
   * When set, only URLs on these hosts (`host` or `host:port`, as written in the URL) may be added
   * or reached by a redirect.
   */
  allowedUpstreamHosts?: readonly string[];
  /** Let upstreams resolve to link-local and cloud metadata addresses (refused by default). */
  allowLinkLocalUpstreams?: boolean;
  /** Resolves upstream host names (default `dns.lookup`): a seam for tests and split-horizon DNS. */
  resolveUpstream?: UpstreamResolver;
}

export const DEFAULTS = {
  dataDir: '.mediacache',
  chunkSize: 10 * 1024 * 1024,
  maxConcurrentDownloads: 3,
  lookaheadChunks: 10,
  lookaheadSeconds: 60,
  waitTimeoutMs: 30_000,
  backgroundFill: 'played' as BackgroundFill,
  retry: { attempts: 5, baseDelayMs: 250, maxDelayMs: 8_000 },
  upstreamTimeoutMs: 30_000,
  readSize: 1024 * 1024,
  minFree: 2e9,
  cleanupIntervalMs: 60_000,
  statsFlushIntervalMs: 5_000,
} as const;

/** What a scrub (`verify`) read and what it dropped. */
export interface VerifyReport {
  entries: number;
  /** Stored rows re-read and their bytes. */
  chunks: number;
  bytes: number;
  /** Rows whose bytes no longer match their CRC-32: dropped, downloaded again when needed. */
  damaged: Array<{ id: string; start: number; end: number }>;
}
