import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ChunkManager, type ChunkManagerEvents, type RetryPolicy } from './download/chunk-manager.js';
import { Downloader, ifRangeValidator } from './download/downloader.js';
import { EntryReader } from './download/entry-reader.js';
import { Priority, SqliteRepository, type EntryRow } from './db/repository.js';
import { ChunkStore } from './store/chunk-store.js';
import { DataDirLock } from './data-dir-lock.js';
import { EntryInputSchema, cacheKeyOf, redactUrl, type EntryInput } from './entry-input.js';
import { ErrorCodes, MediaCacheError } from './errors.js';
import { coalesceRanges, deriveState, type EntryState } from './state/entry-state.js';
import { Evictor, type CacheLimits, type DiskUsage, type GcReport } from './store/evictor.js';
import { CacheStats, type StatTotals } from './stats/stats.js';
import { TransferMeter } from './stats/transfer-meter.js';

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
  /** Fill every opened entry's gaps at LOW priority. Default true. */
  backgroundFill?: boolean;
  retry?: Partial<RetryPolicy>;
  /** Upstream timeout for headers and between body pieces. Default 30 s. */
  upstreamTimeoutMs?: number;
  /** Builds the chunk store on its directory: a seam for tests (a full disk) and embedders. */
  createStore?: (root: string) => ChunkStore;
  /** How long a database statement waits for a lock before the request gets 503. Default 5 s. */
  databaseBusyTimeoutMs?: number;
  /** Disk the cached files may use (allocated blocks). Default: min(20 % of the disk, 50 GB). */
  maxSize?: number;
  /** Free disk space to leave. Default 2 GB. */
  minFree?: number;
  /** Period of the cleanup worker. Default 60 s. */
  cleanupIntervalMs?: number;
  /** How often statistics are written to the database. Default 5 s. */
  statsFlushIntervalMs?: number;
  /** When set, only URLs on these hosts (`host` or `host:port`) may be added. */
  allowedUpstreamHosts?: readonly string[];
}

export const DEFAULTS = {
  dataDir: '.mediacache',
  chunkSize: 10 * 1024 * 1024,
  maxConcurrentDownloads: 3,
  lookaheadChunks: 10,
  lookaheadSeconds: 60,
  waitTimeoutMs: 30_000,
  backgroundFill: true,
  retry: { attempts: 5, baseDelayMs: 250, maxDelayMs: 8_000 },
  upstreamTimeoutMs: 30_000,
  readSize: 1024 * 1024,
  minFree: 2e9,
  cleanupIntervalMs: 60_000,
  statsFlushIntervalMs: 5_000,
} as const;

/** An entry as the API and CLI show it. Derived from the database on every call. */
export interface EntryStatus {
  id: string;
  /** The upstream URL with credentials redacted. */
  url: string;
  sourceId: string | null;
  mediaId: string | null;
  quality: string | null;
  state: EntryState;
  totalBytes: number | null;
  downloadedBytes: number;
  /** Stored byte ranges, inclusive, coalesced. */
  chunks: Array<[number, number]>;
  pendingChunks: number;
  /** Downloads under way: chunk index, priority name, bytes written so far. */
  downloading: Array<{ chunkIndex: number; priority: PriorityName; start: number; written: number }>;
  chunkSize: number;
  mimeType: string | null;
  error: string | null;
  createdAt: string;
  lastAccessed: string;
  accessCount: number;
  pinned: boolean;
  /** Head pin: bytes kept from the start (plus the tail chunk); null when all or nothing is pinned. */
  pinHeadBytes: number | null;
  /** Bits per second, when given at add time; lookahead is then sized in seconds of playback. */
  bitrate: number | null;
  /** Download progress: percent stored, recent rate, and time left at that rate. */
  progress: { percent: number | null; bytesPerSecond: number; etaSeconds: number | null };
}

/** What a scrub (`verify`) read and what it dropped. */
export interface VerifyReport {
  entries: number;
  /** Stored rows re-read and their bytes. */
  chunks: number;
  bytes: number;
  /** Rows whose bytes no longer match their CRC-32: dropped, downloaded again when needed. */
  damaged: Array<{ id: string; start: number; end: number }>;
}

export type PriorityName = 'CRITICAL' | 'HIGH' | 'MEDIUM' | 'LOW';
const PRIORITY_NAMES: readonly PriorityName[] = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'];

export type CacheEvents = ChunkManagerEvents;

/**
 * The cache on one data dir: the object the HTTP server, the CLI and embedding apps all use.
 * It owns the lock, the database, the chunk store, the downloader and the chunk manager.
 */
export class MediaCache {
  readonly dataDir: string;
  readonly chunkSize: number;
  readonly repo: SqliteRepository;
  readonly store: ChunkStore;
  readonly manager: ChunkManager;
  readonly stats: CacheStats;
  readonly evictor: Evictor;
  private readonly meter: TransferMeter;
  private readonly downloader: Downloader;
  private readonly lock: DataDirLock;
  private readonly allowedHosts: ReadonlySet<string> | undefined;
  private closing: Promise<void> | undefined;

  private constructor(options: CacheOptions) {
    this.dataDir = path.resolve(options.dataDir ?? DEFAULTS.dataDir);
    this.chunkSize = options.chunkSize ?? DEFAULTS.chunkSize;
    this.allowedHosts = options.allowedUpstreamHosts && new Set(options.allowedUpstreamHosts.map((h) => h.trim().toLowerCase()));
    if (!Number.isSafeInteger(this.chunkSize) || this.chunkSize < 1) {
      throw new MediaCacheError(ErrorCodes.INVALID_INPUT, `chunk size must be a positive integer`);
    }
    mkdirSync(path.join(this.dataDir, 'files'), { recursive: true });
    this.lock = DataDirLock.acquire(path.join(this.dataDir, 'mediacache.lock'));
    try {
      this.repo = new SqliteRepository(path.join(this.dataDir, 'cache.db'), options.databaseBusyTimeoutMs);
    } catch (err) {
      this.lock.release();
      throw err;
    }
    this.store = (options.createStore ?? ((root: string) => new ChunkStore(root)))(path.join(this.dataDir, 'files'));
    this.downloader = new Downloader({ timeoutMs: options.upstreamTimeoutMs ?? DEFAULTS.upstreamTimeoutMs });
    this.manager = new ChunkManager(this.repo, this.store, this.downloader, {
      maxConcurrentDownloads: options.maxConcurrentDownloads ?? DEFAULTS.maxConcurrentDownloads,
      lookaheadChunks: options.lookaheadChunks ?? DEFAULTS.lookaheadChunks,
      lookaheadSeconds: options.lookaheadSeconds ?? DEFAULTS.lookaheadSeconds,
      waitTimeoutMs: options.waitTimeoutMs ?? DEFAULTS.waitTimeoutMs,
      backgroundFill: options.backgroundFill ?? DEFAULTS.backgroundFill,
      retry: { ...DEFAULTS.retry, ...options.retry },
      readSize: DEFAULTS.readSize,
      admit: (entryId, chunkIndex, bytes) => this.evictor.admit(entryId, chunkIndex, bytes),
    });
    this.stats = new CacheStats(this.repo, options.statsFlushIntervalMs ?? DEFAULTS.statsFlushIntervalMs);
    this.meter = new TransferMeter(this.manager, (bytes) => this.stats.add('bytesFromUpstream', bytes));
    this.evictor = new Evictor(
      this.repo,
      this.store,
      this.manager,
      this.stats,
      { maxSize: options.maxSize, minFree: options.minFree ?? DEFAULTS.minFree },
      options.cleanupIntervalMs ?? DEFAULTS.cleanupIntervalMs,
    );
  }

  /** Opens the cache on a data dir and resumes its persisted download queue. */
  static async open(options: CacheOptions = {}): Promise<MediaCache> {
    const cache = new MediaCache(options);
    await cache.store.init();
    await cache.evictor.start();
    cache.manager.start();
    return cache;
  }

  /**
   * Returns the entry for this input, creating it when new. A known key with a new URL (a rotated
   * token) updates the URL and keeps every stored byte.
   */
  addEntry(input: EntryInput): { entry: EntryStatus; created: boolean } {
    const parsed = EntryInputSchema.safeParse(input);
    if (!parsed.success) {
      throw new MediaCacheError(ErrorCodes.INVALID_INPUT, parsed.error.issues.map((i) => i.message).join('; '));
    }
    const valid = parsed.data;
    if (this.allowedHosts) {
      const url = new URL(valid.url);
      if (!this.allowedHosts.has(url.hostname.toLowerCase()) && !this.allowedHosts.has(url.host.toLowerCase())) {
        throw new MediaCacheError(ErrorCodes.FORBIDDEN, `upstream host ${url.hostname} is not in the allowed list`);
      }
    }
    const cacheKey = cacheKeyOf(valid);
    const existing = this.repo.findEntryByKey(cacheKey);
    if (existing) {
      if (existing.originalUrl !== valid.url) this.repo.updateEntryUrl(existing.id, valid.url);
      if (valid.bitrate !== undefined && existing.bitrate !== valid.bitrate) this.repo.setEntryBitrate(existing.id, valid.bitrate);
      return { entry: this.statusOf(existing.id), created: false };
    }
    // An id starting with '-' would read as an option on the command line (`mediacache status -x…`).
    let id: string;
    do id = randomBytes(16).toString('base64url');
    while (id.startsWith('-'));
    const now = Date.now();
    this.repo.insertEntry({
      id,
      cacheKey,
      sourceId: valid.sourceId ?? null,
      mediaId: valid.mediaId ?? null,
      quality: valid.quality ?? null,
      originalUrl: valid.url,
      filePath: ChunkStore.fileNameFor(id),
      chunkSize: this.chunkSize,
      createdAt: now,
      lastAccessed: now,
      bitrate: valid.bitrate ?? null,
    });
    this.manager.emitState(id);
    return { entry: this.statusOf(id), created: true };
  }

  getEntry(id: string): EntryStatus | undefined {
    return this.repo.getEntry(id) && this.statusOf(id);
  }

  listEntries(): EntryStatus[] {
    return this.repo.listEntries().map((e) => this.statusOf(e.id));
  }

  /** Queues every missing chunk at MEDIUM priority: playback demand still comes first. */
  prefetch(id: string): EntryStatus {
    const entry = this.requireEntry(id);
    if (entry.errorMessage !== null) this.repo.setEntryError(id, null);
    this.manager.enqueueMissing(entry, Priority.MEDIUM);
    return this.statusOf(id);
  }

  async removeEntry(id: string): Promise<boolean> {
    const entry = this.repo.getEntry(id);
    if (!entry) return false;
    await this.manager.forget(id);
    this.repo.deleteEntry(id);
    await this.store.remove(entry.filePath);
    return true;
  }

  /**
   * Starts a player's read: a Failed entry is retried (its error cleared), and the access is
   * recorded for LRU. The reader must be closed when the response ends.
   */
  openReader(id: string, signal: AbortSignal): EntryReader {
    const entry = this.requireEntry(id);
    if (entry.errorMessage !== null) this.repo.setEntryError(id, null);
    this.repo.touchEntry(id, Date.now());
    // The reader re-reads the row before its first use (ensureSize), so this one may be stale.
    return new EntryReader(this.repo, this.store, this.manager, entry, signal, (served) => this.stats.recordRead(served));
  }

  /**
   * Pauses a pre-cache: queued background work is dropped and such downloads are cancelled,
   * keeping what they wrote. prefetch() resumes from the stored chunks.
   */
  async pausePrefetch(id: string): Promise<EntryStatus> {
    this.requireEntry(id);
    await this.manager.pauseBackground(id);
    return this.statusOf(id);
  }

  /** Pins an entry against eviction: all of it, or (headBytes) its first bytes and tail chunk. */
  pin(id: string, headBytes: number | null = null): EntryStatus {
    this.requireEntry(id);
    if (headBytes !== null && (!Number.isSafeInteger(headBytes) || headBytes < 1)) {
      throw new MediaCacheError(ErrorCodes.INVALID_INPUT, 'head bytes must be a positive integer');
    }
    this.repo.setEntryPin(id, true, headBytes);
    return this.statusOf(id);
  }

  unpin(id: string): EntryStatus {
    this.requireEntry(id);
    this.repo.setEntryPin(id, false, null);
    return this.statusOf(id);
  }

  /**
   * Re-reads the stored bytes of one entry (or all) against their checksums, whatever earlier
   * checks found: bit rot changes neither size nor mtime, so the lazy check on serving misses it.
   */
  async verify(id?: string): Promise<VerifyReport> {
    const entries = id === undefined ? this.repo.listEntries() : [this.requireEntry(id)];
    const report: VerifyReport = { entries: entries.length, chunks: 0, bytes: 0, damaged: [] };
    for (const entry of entries) {
      const { chunks, bytes, damaged } = await this.manager.scrub(entry);
      report.chunks += chunks;
      report.bytes += bytes;
      for (const range of damaged) report.damaged.push({ id: entry.id, ...range });
    }
    return report;
  }

  /** Runs the cleanup worker now: evicts down to the limits and reports what it freed. */
  gc(): Promise<GcReport> {
    return this.evictor.gc();
  }

  setLimits(limits: Partial<CacheLimits>): void {
    this.evictor.setLimits(limits);
  }

  /** Persisted totals plus disk usage against the limits. */
  statistics(): { totals: StatTotals; disk: DiskUsage; entries: number } {
    return { totals: this.stats.totals(), disk: this.evictor.usage(), entries: this.repo.listEntries().length };
  }

  on<E extends keyof CacheEvents>(event: E, listener: (...args: CacheEvents[E]) => void): this {
    this.manager.on(event, listener as never);
    return this;
  }

  off<E extends keyof CacheEvents>(event: E, listener: (...args: CacheEvents[E]) => void): this {
    this.manager.off(event, listener as never);
    return this;
  }

  /**
   * Streams bytes [start, end] of an entry straight from the upstream, bypassing the store: the
   * last resort when the cache cannot write (disk full). If-Range keeps the version the same.
   */
  async passthrough(id: string, start: number, end: number, signal: AbortSignal, onData: (data: Buffer) => Promise<void>): Promise<void> {
    const entry = this.requireEntry(id);
    await this.downloader.fetchRange({
      url: entry.originalUrl,
      start,
      end,
      validator: ifRangeValidator(entry.etag, entry.lastModified),
      signal,
      onMetadata: (meta) => {
        if (entry.expectedTotalSize !== null && meta.totalSize !== entry.expectedTotalSize) {
          throw new MediaCacheError(ErrorCodes.UPSTREAM_CHANGED, 'upstream file changed (size differs)');
        }
      },
      onData: (_position, data) => onData(data),
    });
  }

  /** Stops downloads (unfinished chunks are not recorded), closes files and the database. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.evictor.close();
      await this.manager.close();
      await this.downloader.close();
      await this.store.close();
      this.stats.close();
      this.repo.close();
      this.lock.release();
    })();
    return this.closing;
  }

  private requireEntry(id: string): EntryRow {
    const entry = this.repo.getEntry(id);
    if (!entry) throw new MediaCacheError(ErrorCodes.NOT_FOUND, `no entry with id ${id}`);
    return entry;
  }

  private statusOf(id: string): EntryStatus {
    const facts = this.repo.entryFacts(id);
    if (!facts) throw new MediaCacheError(ErrorCodes.NOT_FOUND, `no entry with id ${id}`);
    const { entry } = facts;
    return {
      id: entry.id,
      url: redactUrl(entry.originalUrl),
      sourceId: entry.sourceId,
      mediaId: entry.mediaId,
      quality: entry.quality,
      state: deriveState(facts),
      totalBytes: entry.expectedTotalSize,
      downloadedBytes: facts.storedBytes,
      chunks: coalesceRanges(this.repo.listChunks(id)),
      pendingChunks: facts.pendingChunks,
      downloading: this.manager.inflightFor(id).map((d) => ({ ...d, priority: PRIORITY_NAMES[d.priority] ?? 'LOW' })),
      chunkSize: entry.chunkSize,
      mimeType: entry.mimeType,
      error: entry.errorMessage,
      createdAt: new Date(entry.createdAt).toISOString(),
      lastAccessed: new Date(entry.lastAccessed).toISOString(),
      accessCount: entry.accessCount,
      pinned: entry.pinned,
      pinHeadBytes: entry.pinHeadBytes,
      bitrate: entry.bitrate,
      progress: this.progressOf(entry.expectedTotalSize, facts.storedBytes, id),
    };
  }

  private progressOf(total: number | null, stored: number, id: string): EntryStatus['progress'] {
    const bytesPerSecond = this.meter.rate(id);
    const left = total === null ? null : Math.max(0, total - stored);
    return {
      percent: total === null ? null : total === 0 ? 100 : Math.floor((10000 * stored) / total) / 100,
      bytesPerSecond,
      etaSeconds: left === null ? null : left === 0 ? 0 : bytesPerSecond > 0 ? Math.ceil(left / bytesPerSecond) : null,
    };
  }
}
