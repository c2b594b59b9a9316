import { promises as fsp, readdirSync, renameSync, statSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { Priority, type CacheRepository, type ChunkRow, type EntryRow } from '../db/repository.js';
import type { ChunkManager } from '../download/chunk-manager.js';
import type { CacheStats } from '../stats/stats.js';
import type { ChunkStore } from './chunk-store.js';
import { planEviction, type FileAction } from './eviction-plan.js';

export interface CacheLimits {
  /** Most bytes the cached files may occupy on disk (allocated blocks, not apparent size). */
  maxSize: number;
  /** Free space to leave on the data dir's file system. */
  minFree: number;
}

export interface GcReport {
  freedBytes: number;
  /** Entries that lost bytes (whole or in part). */
  evictedEntries: number;
  /** Stored ranges dropped. */
  evictedRanges: number;
  /** Files that belonged to no entry (left by a crash) and were removed. */
  removedFiles: number;
  usedBytes: number;
  freeBytes: number;
  limits: CacheLimits;
}

export interface DiskUsage {
  usedBytes: number;
  freeBytes: number;
  diskBytes: number;
  limits: CacheLimits;
}

export const DEFAULT_MIN_FREE = 2e9;
const MAX_DEFAULT_SIZE = 50e9;
/** Between runs that could free nothing while downloads wait: bounds a busy loop. */
const STUCK_RETRY_MS = 1_000;
const COPY_BUFFER = 1024 * 1024;
const FS_BLOCK = 4096;
const COMPACT_SUFFIX = '.compact';

/** The smaller of 20 % of the disk holding `dir` and 50 GB. */
export function defaultMaxSize(dir: string): number {
  const fs = statfsSync(dir);
  return Math.min(Math.floor(fs.blocks * fs.bsize * 0.2), MAX_DEFAULT_SIZE);
}

/**
 * Synchronous on purpose: a measurement must not interleave with downloads ending (whose
 * reservations it replaces), and a stat() costs microseconds.
 */
function allocatedBytes(file: string): number {
  try {
    return statSync(file).blocks * 512;
  } catch {
    return 0;
  }
}

/**
 * Keeps the cache within its limits. Usage is the allocated blocks of the sparse files, measured
 * with stat(); between measurements every admitted download counts in full until its file has
 * been measured again, so the estimate only errs on the safe side. Eviction is LRU by entry
 * (`last_accessed`), skipping pinned entries and entries in use (a reader's demand, a download
 * running, a pre-cache queued). Rows go first, then bytes, so a crash in between only leaves
 * unreferenced bytes, never a row pointing at missing ones.
 */
export class Evictor {
  private limits: CacheLimits;
  private readonly allocated = new Map<string, number>();
  private used = 0;
  private free = Number.POSITIVE_INFINITY;
  private disk = 0;
  /** Allocation growth since the last statfs: the free-space figure is that much too high. */
  private growth = 0;
  /** entryId:chunkIndex → bytes, for downloads admitted and running. */
  private readonly reserved = new Map<string, number>();
  /** Entries whose files are being cut: their downloads wait. */
  private readonly evicting = new Set<string>();
  /** Largest download refused since the last run: the run frees room for it too. */
  private refused = 0;
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
    private readonly manager: ChunkManager,
    private readonly stats: CacheStats,
    limits: Partial<CacheLimits>,
    private readonly intervalMs: number,
  ) {
    this.limits = {
      maxSize: limits.maxSize ?? defaultMaxSize(store.root),
      minFree: limits.minFree ?? DEFAULT_MIN_FREE,
    };
    manager.on('download-ended', ({ entryId, chunkIndex }) => this.settle(entryId, chunkIndex));
  }

  /**
   * Measures the disk (evicting if already over) and starts the periodic worker. Runs before
   * the manager starts: downloads must not begin before usage is known.
   */
  async start(): Promise<void> {
    await this.run();
    this.started = true;
    this.timer = setInterval(() => void this.run().catch(() => undefined), this.intervalMs);
    this.timer.unref();
  }

  getLimits(): CacheLimits {
    return { ...this.limits };
  }

  setLimits(limits: Partial<CacheLimits>): void {
    this.limits = { ...this.limits, ...limits };
    this.schedule();
  }

  usage(): DiskUsage {
    return { usedBytes: this.used, freeBytes: Math.max(0, this.free - this.growth), diskBytes: this.disk, limits: this.getLimits() };
  }

  /** The ChunkManager's admission hook: true reserves the bytes; false makes the download wait. */
  admit(entryId: string, chunkIndex: number, bytes: number): boolean {
    if (this.closed) return true;
    if (this.evicting.has(entryId)) return false; // pumped again once the file is cut
    // Block rounding and file-system metadata (indirect blocks) come on top of the data.
    const reserve = bytes + 2 * FS_BLOCK + Math.ceil(bytes / 512);
    if (this.overBy(reserve) <= 0) {
      this.reserved.set(`${entryId}:${chunkIndex}`, reserve);
      return true;
    }
    this.refused = Math.max(this.refused, reserve);
    this.schedule();
    return false;
  }

  /** Bytes to free so that `extra` more fits under both limits. */
  private overBy(extra: number): number {
    let pending = extra;
    for (const b of this.reserved.values()) pending += b;
    const overSize = this.used + pending - this.limits.maxSize;
    const overFree = this.limits.minFree - (this.free - this.growth - pending);
    return Math.max(overSize, overFree, 0);
  }

  /** A download ended: its file is measured again in place of its reservation. */
  private settle(entryId: string, chunkIndex: number): void {
    if (!this.reserved.delete(`${entryId}:${chunkIndex}`)) return;
    const entry = this.repo.getEntry(entryId);
    if (entry) this.restat(entry.filePath);
    if (this.closed) return;
    // A write that crossed a limit starts the worker; otherwise waiting downloads may now fit
    // (the manager pumps right after this event).
    if (this.overBy(0) > 0) this.schedule();
  }

  private restat(file: string): number {
    const now = allocatedBytes(path.join(this.store.root, file));
    const delta = now - (this.allocated.get(file) ?? 0);
    if (now > 0) this.allocated.set(file, now);
    else this.allocated.delete(file);
    this.used += delta;
    this.growth += delta;
    return now;
  }

  private measure(): Set<string> {
    let names: string[] = [];
    try {
      names = readdirSync(this.store.root);
    } catch {
      // a missing directory holds nothing
    }
    this.allocated.clear();
    let used = 0;
    for (const name of names) {
      const bytes = allocatedBytes(path.join(this.store.root, name));
      if (bytes > 0) this.allocated.set(name, bytes);
      used += bytes;
    }
    this.used = used;
    const fs = statfsSync(this.store.root);
    this.free = fs.bavail * fs.bsize;
    this.disk = fs.blocks * fs.bsize;
    this.growth = 0;
    return new Set(names);
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
    const names = this.measure();
    const before = this.used;
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
    let need = this.overBy(this.refused);
    if (need > 0) {
      for (const facts of this.repo.entriesByLastAccess()) {
        if (need <= 0 || this.closed) break;
        const freed = await this.evictFrom(facts.entry, need, report);
        need -= freed;
      }
    }
    this.measure();
    report.freedBytes = Math.max(0, before - this.used);
    report.usedBytes = this.used;
    report.freeBytes = this.usage().freeBytes;
    const stillOver = this.overBy(this.refused) > 0;
    this.stuck = stillOver && report.freedBytes === 0;
    this.refused = 0;
    if (this.started && !this.closed) this.manager.pump();
    return report;
  }

  /** Evicts from one entry if it may be; returns the bytes freed on disk. */
  private async evictFrom(entry: EntryRow, need: number, report: GcReport): Promise<number> {
    // Checked afresh per entry: earlier evictions awaited, and readers may have arrived since.
    if (this.manager.activeEntryIds().has(entry.id)) return 0;
    if (this.repo.entriesQueuedAtOrAbove(Priority.MEDIUM).has(entry.id)) return 0;
    const allocated = this.allocated.get(entry.filePath) ?? 0;
    const plan = planEviction(entry, this.repo.listChunks(entry.id), need, allocated);
    if (plan.action.kind === 'none') return 0;
    this.evicting.add(entry.id);
    try {
      if (plan.drop.length > 0)
        this.repo.evictChunks(
          entry.id,
          plan.drop.map((r) => [r.start, r.end] as const),
        );
      // Stop background-filling what is being evicted; a reader queues what it needs again.
      this.repo.dequeueAtOrBelow(entry.id, Priority.LOW);
      this.manager.emitState(entry.id);
      await this.apply(entry, plan.action);
    } finally {
      this.evicting.delete(entry.id);
    }
    const after = this.restat(entry.filePath);
    const freed = Math.max(0, allocated - after);
    if (plan.drop.length > 0 || freed > 0) {
      report.evictedEntries++;
      report.evictedRanges += plan.drop.length;
      this.stats.add('evictions');
      this.stats.add('evictedBytes', plan.droppedBytes);
    }
    return freed;
  }

  private async apply(entry: EntryRow, action: FileAction): Promise<void> {
    const file = path.join(this.store.root, entry.filePath);
    if (action.kind === 'delete') await this.store.remove(entry.filePath);
    else if (action.kind === 'truncate') await fsp.truncate(file, action.length).catch(ignoreMissing);
    else if (action.kind === 'rewrite') await this.rewrite(entry, action.keep);
  }

  /**
   * Node has no hole-punching call, so bytes between kept ranges are reclaimed by copying the
   * kept ranges into a new sparse file and renaming it over the old one. The swap happens only
   * if nobody started reading meanwhile (downloads of the entry wait while it is evicted);
   * otherwise the copy is dropped and the next pass reclaims the bytes.
   */
  private async rewrite(entry: EntryRow, keep: readonly ChunkRow[]): Promise<void> {
    const src = path.join(this.store.root, entry.filePath);
    const tmp = `${src}${COMPACT_SUFFIX}`;
    let from;
    try {
      from = await fsp.open(src, 'r');
    } catch {
      return;
    }
    const to = await fsp.open(tmp, 'w');
    try {
      const buf = Buffer.allocUnsafe(COPY_BUFFER);
      for (const r of keep) {
        for (let pos = r.start; pos <= r.end;) {
          const { bytesRead } = await from.read(buf, 0, Math.min(buf.length, r.end - pos + 1), pos);
          if (bytesRead === 0) break;
          await to.write(buf, 0, bytesRead, pos);
          pos += bytesRead;
        }
      }
      await to.datasync();
    } finally {
      await from.close();
      await to.close();
    }
    if (this.closed || this.manager.activeEntryIds().has(entry.id)) {
      await fsp.rm(tmp, { force: true });
      return;
    }
    // Synchronous from the check on: no read can start between it and the swap.
    renameSync(tmp, src);
    void this.store.release(entry.filePath);
  }

  /** Files no entry refers to (a crash between a row's removal and its file's), and stale copies. */
  private async removeOrphans(names: Set<string>): Promise<number> {
    const known = new Set(this.repo.listEntries().map((e) => e.filePath));
    let removed = 0;
    for (const name of names) {
      // Passes never overlap, so a copy left in the directory now is from an interrupted one.
      if (known.has(name)) continue;
      await fsp.rm(path.join(this.store.root, name), { force: true });
      this.allocated.delete(name);
      removed++;
    }
    return removed;
  }

  /** Reservations of downloads that ended without an event (their entry was removed). */
  private forgetEndedReservations(): void {
    for (const k of [...this.reserved.keys()]) {
      const sep = k.lastIndexOf(':');
      const entryId = k.slice(0, sep);
      const index = Number(k.slice(sep + 1));
      if (!this.manager.inflightFor(entryId).some((d) => d.chunkIndex === index)) this.reserved.delete(k);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    clearTimeout(this.scheduled);
    await this.running?.catch(() => undefined);
  }
}

function ignoreMissing(err: unknown): void {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
}
