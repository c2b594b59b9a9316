import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Downloader } from './download/downloader.js';
import { Bandwidth, type BandwidthSnapshot } from './download/bandwidth.js';
import { rateScheduleOf } from './policy/rate-limit.js';
import type { Integrity } from './download/integrity.js';
import type { Scheduler } from './download/scheduler.js';
import { wireCore } from './core.js';
import type { LiveQueries } from './live/queries.js';
import { DemandRegistry } from './download/demand.js';
import { Wakeups } from './download/wakeups.js';
import { EntryReader, type ReadPath } from './read/entry-reader.js';
import { passthrough } from './read/passthrough.js';
import { Priority, type EntryRow } from './db/repository.js';
import { DEFAULT_PAGE, entryPage, type EntryPageQuery } from './entry-pages.js';
import { EntryViews } from './entry-views.js';
import { ObservedRepository } from './db/observed-repository.js';
import { ChunkStore } from './store/chunk-store.js';
import { DataDirLock } from './data-dir-lock.js';
import { EntryInputSchema, cacheKeyOf, type EntryInput } from './entry-input.js';
import { ErrorCodes, MediaCacheError } from './errors.js';
import { CoreEvents, repositoryEvents, type CacheEvents } from './events.js';
import { entrySnapshot, type CoreSnapshot } from './inspect.js';
import { versionFileName } from './model/geometry.js';
import type { EntryStatus, EntrySummary } from './status.js';
import type { Evictor, CacheLimits, DiskUsageSummary, GcReport } from './store/evictor.js';
import { CacheStats, type StatTotals } from './stats/stats.js';
import { TransferMeter } from './stats/transfer-meter.js';
import { EntryCounters, type EntryTotals } from './stats/entry-counters.js';
import { DEFAULTS, type CacheOptions, type VerifyReport } from './options.js';
import { EntryIds, randomEntryId } from './cluster/ids.js';
import { retryWhileBusy } from './db/busy-retry.js';
import { refusedUrlText, upstreamPolicy, type UpstreamPolicy } from './policy/upstream-policy.js';

export type { CacheEvents } from './events.js';
export type { EntryStatus, EntrySummary, PriorityName } from './status.js';
export type { CoreSnapshot } from './inspect.js';

export { DEFAULTS, type CacheOptions, type VerifyReport } from './options.js';

/**
 * The cache on one data dir: the object the HTTP server, the CLI and embedding apps all use.
 * It owns the lock, the database, the chunk store and the download core, and wires them.
 */
export class MediaCache {
  readonly dataDir: string;
  readonly chunkSize: number;
  readonly stats: CacheStats;
  /** What the live event stream reads (src/live/hub.ts). */
  readonly live: LiveQueries;
  private readonly repo: ObservedRepository;
  private readonly store: ChunkStore;
  private readonly events: CoreEvents;
  private readonly wakeups = new Wakeups();
  private readonly demand = new DemandRegistry();
  private readonly scheduler: Scheduler;
  private readonly integrity: Integrity;
  private readonly evictor: Evictor;
  private readonly views: EntryViews;
  private readonly readPath: ReadPath;
  private readonly counters = new EntryCounters();
  private readonly loading = new AbortController();
  private readonly meter: TransferMeter;
  private readonly downloader: Downloader;
  private readonly lock: DataDirLock;
  private readonly maxConcurrentDownloads: number;
  private readonly upstreamPolicy: UpstreamPolicy;
  private readonly ids: EntryIds | undefined;
  private readonly bandwidth: Bandwidth;
  private closing: Promise<void> | undefined;

  private constructor(options: CacheOptions) {
    this.dataDir = path.resolve(options.dataDir ?? DEFAULTS.dataDir);
    this.chunkSize = options.chunkSize ?? DEFAULTS.chunkSize;
    this.upstreamPolicy = upstreamPolicy(options.allowedUpstreamHosts, options.allowLinkLocalUpstreams);
    this.ids = options.clusterSecret === undefined ? undefined : new EntryIds(options.clusterSecret);
    this.bandwidth = new Bandwidth({ background: rateScheduleOf(options.limitRate), all: rateScheduleOf(options.limitRateAll) });
    if (!Number.isSafeInteger(this.chunkSize) || this.chunkSize < 1) {
      throw new MediaCacheError(ErrorCodes.INVALID_INPUT, `chunk size must be a positive integer`);
    }
    mkdirSync(path.join(this.dataDir, 'files'), { recursive: true });
    this.lock = DataDirLock.acquire(path.join(this.dataDir, 'mediacache.lock'));
    this.events = new CoreEvents(
      options.onListenerError ??
        ((error, event) => process.emitWarning(`a '${event}' listener threw: ${error.message}`, 'MediaCacheListenerWarning')),
    );
    try {
      const file = path.join(this.dataDir, 'cache.db');
      this.repo = new ObservedRepository(file, options.databaseBusyTimeoutMs, repositoryEvents(this.events));
    } catch (err) {
      this.lock.release();
      throw err;
    }
    this.store = (options.createStore ?? ((root: string) => new ChunkStore(root)))(path.join(this.dataDir, 'files'));
    this.downloader = new Downloader({
      timeoutMs: options.upstreamTimeoutMs ?? DEFAULTS.upstreamTimeoutMs,
      policy: this.upstreamPolicy,
      resolve: options.resolveUpstream,
    });
    this.stats = new CacheStats(this.repo, options.statsFlushIntervalMs ?? DEFAULTS.statsFlushIntervalMs);
    this.meter = new TransferMeter((bytes) => this.stats.add('bytesFromUpstream', bytes));
    this.maxConcurrentDownloads = options.maxConcurrentDownloads ?? DEFAULTS.maxConcurrentDownloads;
    const core = wireCore(
      { repo: this.repo, store: this.store, downloader: this.downloader, demand: this.demand, wakeups: this.wakeups, events: this.events },
      { stats: this.stats, meter: this.meter, counters: this.counters, bandwidth: this.bandwidth },
      options,
    );
    ({ scheduler: this.scheduler, integrity: this.integrity, evictor: this.evictor, readPath: this.readPath, live: this.live } = core);
    this.views = new EntryViews(this.repo, this.scheduler, this.meter);
  }

  /** Opens the cache on a data dir and resumes its persisted download queue. */
  static async open(options: CacheOptions = {}): Promise<MediaCache> {
    const cache = new MediaCache(options);
    await cache.store.init();
    // Nothing per entry before the caller can listen: the first eviction pass measures the disk and
    // the counters read every entry, both in slices after this returns (downloads wait for the first).
    cache.evictor.start();
    cache.scheduler.start();
    void cache.counters.load(cache.repo, cache.loading.signal).catch((err: unknown) => cache.scheduler.report(err));
    return cache;
  }

  /**
   * One read-only snapshot of the core (transfers, slots, demand, waits, open files) and, given
   * an id, of that entry's rows and queue: what tests, metrics and dashboards read.
   */
  inspect(entryId?: string): CoreSnapshot {
    const snapshot: CoreSnapshot = {
      transfers: this.scheduler.snapshot(),
      slotsUsed: this.scheduler.slotsUsed,
      maxConcurrentDownloads: this.maxConcurrentDownloads,
      demand: this.demand.snapshot(),
      waiters: this.wakeups.size,
      openFiles: this.store.openFiles,
    };
    const entry = entryId === undefined ? undefined : entrySnapshot(this.repo, this.store.root, entryId);
    if (entry) snapshot.entry = entry;
    return snapshot;
  }

  /**
   * Returns the entry for this input, creating it when new. A known key with a new URL (a rotated
   * token) updates the URL and keeps every stored byte. The id of a new entry is `options.id` (a
   * verified stream URL's), else derived from the key with the cluster secret, else random.
   */
  addEntry(input: EntryInput, options: { id?: string } = {}): { entry: EntryStatus; created: boolean } {
    const parsed = EntryInputSchema.safeParse(input);
    if (!parsed.success) {
      throw new MediaCacheError(ErrorCodes.INVALID_INPUT, parsed.error.issues.map((i) => i.message).join('; '));
    }
    const valid = parsed.data;
    // What can be judged without DNS is refused now; names are judged again on every connection.
    this.checkUpstream(valid.url);
    const cacheKey = cacheKeyOf(valid);
    const existing = this.repo.findEntryByKey(cacheKey);
    if (existing) {
      if (existing.originalUrl !== valid.url) this.repo.updateEntryUrl(existing.id, valid.url);
      if (valid.bitrate !== undefined && existing.bitrate !== valid.bitrate) this.repo.setEntryBitrate(existing.id, valid.bitrate);
      return { entry: this.views.status(existing.id), created: false };
    }
    const id = options.id ?? this.ids?.idFor(cacheKey) ?? randomEntryId();
    const now = Date.now();
    this.repo.insertEntry({
      id,
      cacheKey,
      sourceId: valid.sourceId ?? null,
      mediaId: valid.mediaId ?? null,
      quality: valid.quality ?? null,
      originalUrl: valid.url,
      filePath: versionFileName(id, 1),
      chunkSize: this.chunkSize,
      createdAt: now,
      lastAccessed: now,
      bitrate: valid.bitrate ?? null,
    });
    this.scheduler.emitState(id);
    return { entry: this.views.status(id), created: true };
  }

  /** What the entry was registered with (its unredacted URL): what a signed stream URL carries. */
  entryInput(id: string): EntryInput | undefined {
    const row = this.repo.getEntry(id);
    if (!row) return undefined;
    const input: EntryInput = { url: row.originalUrl };
    if (row.sourceId !== null && row.mediaId !== null) Object.assign(input, { sourceId: row.sourceId, mediaId: row.mediaId });
    if (row.quality !== null) input.quality = row.quality;
    if (row.bitrate !== null) input.bitrate = row.bitrate;
    return input;
  }

  getEntry(id: string): EntryStatus | undefined {
    return this.views.find(id);
  }

  /** Every entry (small caches, embedding apps); the API and CLI page with listPage(). */
  listEntries(): EntryStatus[] {
    return this.views.all();
  }

  /** One page of entries in a stable order, filtered; `next` goes on where it stopped (null at the end). */
  listPage(query: EntryPageQuery = {}): Promise<{ entries: EntrySummary[]; next: string | null }> {
    return this.views.page(query);
  }

  /** listPage() without a state filter as the API's body (`streamUrl` = `streamBase` + id). */
  listPageJson(query: Omit<EntryPageQuery, 'state'>, streamBase: string): Promise<Buffer[]> {
    return this.views.pageJson(query, streamBase);
  }

  /**
   * Queues every missing chunk at MEDIUM priority: playback demand still comes first. An entry
   * known to be larger than the size limit is refused (MC_ERR_INSUFFICIENT_STORAGE): it could
   * never be held whole. Of unknown size, it fills up to the limit and stops there.
   */
  prefetch(id: string): EntryStatus {
    const entry = this.requireEntry(id);
    const total = entry.expectedTotalSize;
    if (total !== null && !entry.isComplete && !this.evictor.couldFit(total)) {
      const { maxSize } = this.evictor.getLimits();
      throw new MediaCacheError(
        ErrorCodes.INSUFFICIENT_STORAGE,
        `entry is ${total} bytes, more than the cache may hold (max size ${maxSize} bytes): raise --max-size to pre-cache it`,
      );
    }
    if (entry.errorMessage !== null) this.repo.setEntryError(id, null);
    this.scheduler.enqueueMissing(entry, Priority.MEDIUM);
    this.scheduler.emitState(id);
    return this.views.status(id);
  }

  async removeEntry(id: string): Promise<boolean> {
    const entry = this.repo.getEntry(id);
    if (!entry) return false;
    await this.scheduler.forget(id);
    this.repo.deleteEntry(id);
    await this.store.remove(entry.filePath);
    return true;
  }

  /**
   * Starts a player's read: a Failed entry is retried (its error cleared), and the access is
   * recorded for LRU. The reader must be closed when the response ends.
   */
  openReader(id: string, signal: AbortSignal): EntryReader {
    let entry = this.requireEntry(id);
    // An entry added before the policy was tightened (a restart with --allow-upstream) is not read.
    this.checkUpstream(entry.originalUrl);
    if (entry.errorMessage !== null) {
      this.repo.setEntryError(id, null);
      entry = { ...entry, errorMessage: null };
      this.scheduler.emitState(id); // no longer Failed: its state (and the counters) follow from its rows
    }
    // The access time (for LRU) is written once this turn's synchronous work is done, after a
    // cold read's upstream request went out (process.nextTick runs before microtasks): the write
    // transaction was ~0.1 ms of that path. A busy database delays it; the read goes on.
    const now = Date.now();
    queueMicrotask(() => void retryWhileBusy(() => this.repo.touchEntry(id, now)).catch((err: unknown) => this.scheduler.report(err)));
    // `entry` is the row as of now: the reader's first look (ensureSize, in this same turn) uses it.
    return new EntryReader(this.repo, this.store, this.readPath, entry, signal, (served) => this.stats.recordRead(served));
  }

  /**
   * Pauses a pre-cache: queued background work is dropped and such downloads are cancelled,
   * keeping what they wrote. prefetch() resumes from the stored chunks.
   */
  async pausePrefetch(id: string): Promise<EntryStatus> {
    this.requireEntry(id);
    await this.scheduler.pauseBackground(id);
    return this.views.status(id);
  }

  /** Pins an entry against eviction: all of it, or (headBytes) its first bytes and tail chunk. */
  pin(id: string, headBytes: number | null = null): EntryStatus {
    this.requireEntry(id);
    if (headBytes !== null && (!Number.isSafeInteger(headBytes) || headBytes < 1)) {
      throw new MediaCacheError(ErrorCodes.INVALID_INPUT, 'head bytes must be a positive integer');
    }
    this.repo.setEntryPin(id, true, headBytes);
    return this.views.status(id);
  }

  unpin(id: string): EntryStatus {
    this.requireEntry(id);
    this.repo.setEntryPin(id, false, null);
    return this.views.status(id);
  }

  /**
   * Re-reads the stored bytes of one entry (or all) against their checksums, whatever earlier
   * checks found: bit rot changes neither size nor mtime, so the lazy check on serving misses it.
   */
  async verify(id?: string): Promise<VerifyReport> {
    const report: VerifyReport = { entries: 0, chunks: 0, bytes: 0, damaged: [] };
    const scrub = async (entry: EntryRow): Promise<void> => {
      const { chunks, bytes, damaged } = await this.integrity.scrub(entry);
      report.entries++;
      report.chunks += chunks;
      report.bytes += bytes;
      for (const range of damaged) report.damaged.push({ id: entry.id, ...range });
    };
    if (id !== undefined) {
      await scrub(this.requireEntry(id));
      return report;
    }
    // All entries a page at a time: never one read of every row.
    for (let cursor: string | undefined, more = true; more;) {
      const page = await entryPage((q) => this.repo.entriesPage(q), { limit: DEFAULT_PAGE, cursor });
      for (const facts of page.facts) await scrub(facts.entry);
      cursor = page.next ?? undefined;
      more = page.next !== null;
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

  getLimits(): CacheLimits {
    return this.evictor.getLimits();
  }

  /** Persisted totals plus disk usage against the limits; constant time at any number of entries. */
  statistics(): { totals: StatTotals; disk: DiskUsageSummary; entries: number; bandwidth: BandwidthSnapshot } {
    const bandwidth = this.bandwidth.snapshot();
    return { totals: this.stats.totals(), disk: this.evictor.report(), entries: this.counters.totals().entries, bandwidth };
  }

  /** Entries by state and stored bytes, maintained as entries change (for metrics). */
  entryTotals(): EntryTotals {
    return this.counters.totals();
  }

  /** Listens to the cache's events; listeners run after commit, and one that throws is only reported. */
  on<E extends keyof CacheEvents>(event: E, listener: (...args: CacheEvents[E]) => void): this {
    this.events.on(event, listener as never);
    return this;
  }

  off<E extends keyof CacheEvents>(event: E, listener: (...args: CacheEvents[E]) => void): this {
    this.events.off(event, listener as never);
    return this;
  }

  /**
   * Streams bytes [start, end] of an entry straight from the upstream, bypassing the store: the
   * last resort when the cache cannot write (disk full). If-Range keeps the version the same.
   */
  passthrough(id: string, start: number, end: number, signal: AbortSignal, onData: (data: Buffer) => Promise<void>): Promise<void> {
    return passthrough(this.downloader, this.requireEntry(id), { start, end }, signal, onData);
  }

  /** Stops downloads (unfinished chunks are not recorded), closes files and the database. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.loading.abort();
      await this.evictor.close();
      await this.scheduler.close();
      await this.downloader.close();
      await this.store.close();
      this.stats.close();
      this.bandwidth.close();
      this.repo.close();
      this.lock.release();
    })();
    return this.closing;
  }

  /** Throws MC_ERR_UPSTREAM_REFUSED (403) when the policy refuses this URL as written. */
  private checkUpstream(url: string): void {
    const refusal = refusedUrlText(url, this.upstreamPolicy);
    if (refusal) throw new MediaCacheError(ErrorCodes.UPSTREAM_REFUSED, refusal);
  }

  private requireEntry(id: string): EntryRow {
    const entry = this.repo.getEntry(id);
    if (!entry) throw new MediaCacheError(ErrorCodes.NOT_FOUND, `no entry with id ${id}`);
    return entry;
  }
}
