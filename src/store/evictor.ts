import { promises as fsp } from 'node:fs';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import path from 'node:path';
import { Priority, type CacheRepository, type EntryRow, type LastAccessCursor } from '../db/repository.js';
import { decideAdmission, type Admission } from '../policy/admission.js';
import type { CacheStats } from '../stats/stats.js';
import { COMPACT_SUFFIX, type ChunkStore } from './chunk-store.js';
import { DiskUsage, defaultMaxSize, reservationFor, DEFAULT_MIN_FREE, type CacheLimits, type DiskUsageReport } from './disk-usage.js';
import { planEviction } from './eviction-plan.js';

export type { CacheLimits } from './disk-usage.js';
export type DiskUsageSummary = DiskUsageReport;

export interface GcReport {
  freedBytes: number;
  /** Entries that lost bytes (whole or in part). */
  evictedEntries: number;
  /** Stored ranges dropped. */
  evictedRanges: number;
  /** Files that belonged to no entry (left by a crash, old versions) and were removed. */
  removedFiles: number;
  usedBytes: number;
  freeBytes: number;
  limits: CacheLimits;
}

/** What the evictor asks of the download core: a narrow view (it never imports it). */
export interface EntryActivity {
  /** Byte spans of the entry that readers still need or transfers write: never evicted. */
  protectedSpans(entry: EntryRow): Array<[number, number]>;
  /** Resolves once no transfer of the entry runs (the evictor keeps new ones from starting). */
  whenIdle(entryId: string): Promise<void>;
  /** Rows were dropped (the inclusive ranges evicted): the entry's state may have changed. */
  onRowsDropped(entryId: string, rows: ReadonlyArray<{ start: number; end: number }>): void;
  /** Room was made (or a pass ended): waiting downloads may start. */
  onRoomFreed(): void;
}

/** Between runs that could free nothing while downloads wait: bounds a busy loop. */
const STUCK_RETRY_MS = 1_000;

const reservationKey = (entryId: string, chunkIndex: number): string => `${entryId}:${chunkIndex}`;
/** Entries an eviction pass reads at a time, and files an orphan sweep checks between yields. */
const EVICTION_PAGE = 200;
const ORPHAN_SLICE = 1000;

/** The entry id a file in the store belongs to (`<id>.bin`, `<id>.v<N>.bin`, `….compact`). */
function entryIdOfFile(name: string): string {
  const dot = name.indexOf('.');
  return dot < 0 ? name : name.slice(0, dot);
}

/**
 * Keeps the cache within its limits: admission before a download starts, and LRU passes by
 * entry (`last_accessed`) that skip pinned entries, queued pre-caches and what readers still
 * need (bytes behind a player go). Rows go first, then bytes, so a crash in between only
 * leaves unreferenced bytes, never a row pointing at missing ones.
 */
export class Evictor {
  readonly usage: DiskUsage;
  /** Entries whose files are being cut: their downloads wait. */
  private readonly evicting = new Set<string>();
  /** Largest download refused since the last run: the run frees room for it too. */
  private refused = 0;
  private playbackWaiting = false;
  /** Entries whose background work waits for room that must come from other entries. */
  private readonly backgroundWaiting = new Set<string>();
  /** Entries a pass could not make room for: their background work is dropped. */
  private readonly noRoom = new Set<string>();
  private stuck = false;
  private running: Promise<GcReport> | undefined;
  private again = false;
  private scheduled: NodeJS.Timeout | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private started = false;

  constructor(
    private readonly repo: CacheRepository,
    private readonly store: ChunkStore,
    private readonly activity: EntryActivity,
    private readonly stats: CacheStats,
    limits: Partial<CacheLimits>,
    private readonly intervalMs: number,
  ) {
    this.usage = new DiskUsage(store.root, {
      maxSize: limits.maxSize ?? defaultMaxSize(store.root),
      minFree: limits.minFree ?? DEFAULT_MIN_FREE,
    });
  }

  /**
   * Starts the worker; its first pass measures the disk (evicting if already over) in slices, after
   * the server listens. Until that measurement is done no download is admitted (they wait, and
   * the pass pumps them when it ends): start-up costs nothing per entry.
   */
  start(): void {
    this.started = true;
    void this.run().catch(() => undefined);
    this.timer = setInterval(() => void this.run().catch(() => undefined), this.intervalMs);
    this.timer.unref();
  }

  getLimits(): CacheLimits {
    return { ...this.usage.limits };
  }

  setLimits(limits: Partial<CacheLimits>): void {
    this.usage.limits = { ...this.usage.limits, ...limits };
    this.noRoom.clear();
    this.schedule();
  }

  report(): DiskUsageReport {
    return this.usage.report();
  }

  /** Whether `bytes` more could ever fit under the size limit (a pre-cache asks before it queues). */
  couldFit(bytes: number): boolean {
    return reservationFor(bytes) <= this.usage.limits.maxSize;
  }

  /** The scheduler's admission hook (see decideAdmission). */
  admit(entryId: string, chunkIndex: number, bytes: number, priority: Priority): Admission {
    if (this.closed) return 'admit';
    if (!this.usage.measured) return 'wait'; // the first pass pumps when it has measured
    const reserve = reservationFor(bytes);
    const decision = decideAdmission({
      fits: this.usage.overBy(reserve) <= 0,
      priority,
      entryBeingEvicted: this.evicting.has(entryId),
      noRoomForBackground: this.noRoom.has(entryId),
    });
    if (decision === 'admit') this.usage.reserve(reservationKey(entryId, chunkIndex), reserve);
    else if (decision === 'drop') this.noRoom.delete(entryId);
    else if (!this.evicting.has(entryId)) {
      this.refused = Math.max(this.refused, reserve);
      if (priority >= Priority.MEDIUM) this.backgroundWaiting.add(entryId);
      else {
        this.playbackWaiting = true;
        this.stuck = false; // a player waits: try at once, not at the stuck pace
      }
      this.schedule();
    }
    return decision;
  }

  /** A transfer ended: its file is measured again in place of its reservation. */
  transferEnded(entryId: string, chunkIndex: number): void {
    if (!this.usage.unreserve(reservationKey(entryId, chunkIndex))) return;
    const entry = this.repo.getEntry(entryId);
    if (entry) this.usage.restat(entry.filePath);
    // A write that crossed a limit starts the worker; otherwise waiting downloads may now fit.
    if (!this.closed && this.usage.overBy(0) > 0) this.schedule();
  }

  private schedule(): void {
    if (this.closed || this.scheduled) return;
    this.scheduled = setTimeout(
      () => {
        this.scheduled = undefined;
        void this.run().catch(() => undefined);
      },
      this.stuck ? STUCK_RETRY_MS : 0,
    );
    this.scheduled.unref();
  }

  /** One cleanup pass (what `mediacache gc` runs); passes never overlap. */
  run(): Promise<GcReport> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.runOnce().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.schedule();
      }
    });
    return this.running;
  }

  /** Waits for a pass under way, then runs a fresh one. */
  async gc(): Promise<GcReport> {
    await this.running?.catch(() => undefined);
    return this.run();
  }

  private async runOnce(): Promise<GcReport> {
    const names = await this.usage.measure();
    const before = this.usage.report().usedBytes;
    this.forgetEndedReservations();
    const report: GcReport = {
      freedBytes: 0,
      evictedEntries: 0,
      evictedRanges: 0,
      removedFiles: 0,
      usedBytes: 0,
      freeBytes: 0,
      limits: this.getLimits(),
    };
    report.removedFiles = await this.removeOrphans(names);
    // Background work never evicts its own entry: only a waiting player may take from it.
    const spare = this.playbackWaiting ? new Set<string>() : new Set(this.backgroundWaiting);
    let need = this.usage.overBy(this.refused);
    // In eviction order, a page at a time: a pass never holds the loop for all entries at once.
    for (let after: LastAccessCursor | null = null; need > 0 && !this.closed;) {
      const page = this.repo.entriesByLastAccessPage(after, EVICTION_PAGE);
      for (const facts of page) {
        if (need <= 0 || this.closed) break;
        if (!spare.has(facts.entry.id)) need -= await this.evictFrom(facts.entry, need, report);
      }
      const last = page[page.length - 1]?.entry;
      if (!last || page.length < EVICTION_PAGE) break;
      after = { lastAccessed: last.lastAccessed, createdAt: last.createdAt, id: last.id };
      await yieldToLoop();
    }
    await this.usage.measure();
    const after = this.usage.report();
    report.freedBytes = Math.max(0, before - after.usedBytes);
    report.usedBytes = after.usedBytes;
    report.freeBytes = after.freeBytes;
    const stillOver = this.usage.overBy(this.refused) > 0;
    if (stillOver) for (const id of this.backgroundWaiting) this.noRoom.add(id);
    this.stuck = stillOver && report.freedBytes === 0;
    this.refused = 0;
    this.playbackWaiting = false;
    this.backgroundWaiting.clear();
    if (this.started && !this.closed) this.activity.onRoomFreed();
    return report;
  }

  /** Evicts from one entry if it may be; returns the bytes freed on disk. */
  private async evictFrom(entry: EntryRow, need: number, report: GcReport): Promise<number> {
    // Checked afresh per entry: earlier evictions awaited, and readers may have arrived since.
    if (entry.pinned && entry.pinHeadBytes === null) return 0;
    // A pre-cache under way keeps its bytes (one that cannot fit is refused or stopped at admission).
    if (this.repo.queueFor(entry.id).some((r) => r.priority === Priority.MEDIUM)) return 0;
    const quick = planEviction(
      entry,
      this.repo.listChunks(entry.id),
      need,
      this.usage.allocatedOf(entry.filePath),
      this.activity.protectedSpans(entry),
    );
    if (quick.action.kind === 'none') return 0;
    // Transfers of the entry finish first and none starts meanwhile: a file is never cut under a writer.
    this.evicting.add(entry.id);
    let freed = 0;
    try {
      await this.activity.whenIdle(entry.id);
      const current = this.repo.getEntry(entry.id);
      if (!current || this.closed) return 0;
      const allocated = this.usage.restat(current.filePath);
      const plan = planEviction(current, this.repo.listChunks(current.id), need, allocated, this.activity.protectedSpans(current));
      if (plan.action.kind === 'none') return 0;
      if (plan.drop.length > 0)
        this.repo.evictChunks(
          current.id,
          plan.drop.map((r) => [r.start, r.end] as const),
        );
      // Stop background-filling what is being evicted; a reader queues what it needs again.
      this.repo.dequeueAtOrBelow(current.id, Priority.LOW);
      this.activity.onRowsDropped(current.id, plan.drop);
      const action = plan.action;
      if (action.kind === 'delete') await this.store.truncate(current.filePath, 0);
      else if (action.kind === 'truncate') await this.store.truncate(current.filePath, action.length);
      else if (action.kind === 'rewrite') await this.store.compact(current.filePath, action.keep);
      freed = Math.max(0, allocated - this.usage.restat(current.filePath));
      if (plan.drop.length > 0 || freed > 0) {
        report.evictedEntries++;
        report.evictedRanges += plan.drop.length;
        this.stats.add('evictions');
        this.stats.add('evictedBytes', plan.droppedBytes);
      }
    } finally {
      this.evicting.delete(entry.id);
    }
    return freed;
  }

  /**
   * Files no entry refers to (a crash, an old version nobody reads any more), and stale copies.
   * Each name is checked against its entry's current file (one indexed lookup), in slices.
   */
  private async removeOrphans(names: Set<string>): Promise<number> {
    let removed = 0;
    let seen = 0;
    for (const name of names) {
      if (++seen % ORPHAN_SLICE === 0) await yieldToLoop();
      // Passes never overlap, so a copy left in the directory now is from an interrupted one.
      const compactCopy = name.endsWith(COMPACT_SUFFIX);
      if (!compactCopy && (this.store.isRetained(name) || this.repo.getEntry(entryIdOfFile(name))?.filePath === name)) continue;
      await fsp.rm(path.join(this.store.root, name), { force: true });
      this.usage.forgetFile(name);
      removed++;
    }
    return removed;
  }

  /** Reservations whose transfer ended without telling (its entry was removed). */
  private forgetEndedReservations(): void {
    for (const key of this.usage.reservationKeys()) {
      const entryId = key.slice(0, key.lastIndexOf(':'));
      if (!this.repo.getEntry(entryId)) this.usage.unreserve(key);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    clearTimeout(this.scheduled);
    await this.running?.catch(() => undefined);
  }
}
