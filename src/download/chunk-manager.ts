import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { crc32 } from 'node:zlib';
import type { CacheRepository, ChunkRow, EntryRow } from '../db/repository.js';
import { Priority } from '../db/repository.js';
import type { ChunkStore } from '../store/chunk-store.js';
import { Downloader, ifRangeValidator, type UpstreamMetadata } from './downloader.js';
import { Wakeups } from './wakeups.js';
import { BufferPool } from '../store/buffer-pool.js';
import { ChunkVerifier } from '../store/chunk-verifier.js';
import { ErrorCodes, MediaCacheError, isMediaCacheError } from '../errors.js';
import { coalesceRanges, deriveState, type EntryState } from '../state/entry-state.js';

export interface RetryPolicy {
  /** Attempts per chunk download before the entry is marked Failed. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export interface ChunkManagerOptions {
  maxConcurrentDownloads: number;
  lookaheadChunks: number;
  lookaheadSeconds: number;
  waitTimeoutMs: number;
  /** Queue every missing chunk of an opened entry at LOW priority. */
  backgroundFill: boolean;
  retry: RetryPolicy;
  /** Largest buffer handed to a reader at once. */
  readSize: number;
  /**
   * Consulted before a chunk download starts with the bytes it may write: false makes it wait
   * in the queue (the size limit: room is made first). Call pump() once there is room.
   */
  admit?: (entryId: string, chunkIndex: number, bytes: number) => boolean;
}

/** Events for dashboards and embedding apps; payloads are plain data. */
export interface ChunkManagerEvents {
  'chunk-stored': [{ entryId: string; start: number; end: number }];
  /** A stored row failed its checksum (or its bytes are gone) and was dropped for re-download. */
  'chunk-invalid': [{ entryId: string; start: number; end: number }];
  'download-started': [{ entryId: string; chunkIndex: number; priority: Priority; start: number }];
  'download-progress': [{ entryId: string; chunkIndex: number; position: number }];
  'download-ended': [{ entryId: string; chunkIndex: number; outcome: DownloadOutcome }];
  'state-changed': [{ entryId: string; state: EntryState }];
  /** An entry's stored bytes were dropped (the upstream file changed); they are fetched again. */
  'entry-invalidated': [{ entryId: string; reason: string }];
  /** Something failed outside any request (e.g. the database was busy); work is retried. */
  'background-error': [{ error: Error }];
}

export type DownloadOutcome = 'stored' | 'preempted' | 'cancelled' | 'failed' | 'shutdown' | 'invalidated';
type AbortReason = Exclude<DownloadOutcome, 'stored' | 'failed'>;

/**
 * A chunk download under way. Its bytes [start, start + written) are in the file, not yet
 * recorded; [start + written, start + received) arrived and are being written (held in `recent`).
 */
interface InFlight {
  entryId: string;
  chunkIndex: number;
  priority: Priority;
  start: number;
  end: number;
  written: number;
  received: number;
  crc: number;
  /** The last pieces received, kept so readers get fresh bytes without a disk round trip. */
  recent: Array<{ position: number; data: Buffer }>;
  recentBytes: number;
  controller: AbortController;
  abortReason?: AbortReason;
  outcome?: DownloadOutcome;
  done: Promise<void>;
}

const key = (entryId: string, chunkIndex: number): string => `${entryId}:${chunkIndex}`;

/** How long the pump waits before retrying after a database error. */
const PUMP_RETRY_MS = 1_000;

/** Per running download, how many of its latest bytes stay in memory for readers. */
const RECENT_BYTES = 1024 * 1024;

/**
 * Owns the download queue and the readers' demand. The queue itself is rows in
 * cache_download_queue (so it survives restarts); in memory live only what cannot outlive the
 * process: downloads under way and which connected readers want which chunks.
 */
export class ChunkManager extends EventEmitter<ChunkManagerEvents> {
  private readonly inflight = new Map<string, InFlight>();
  /** entryId → chunkIndex → number of readers wanting it. */
  private readonly demand = new Map<string, Map<number, number>>();
  /** Bumped when an entry's bytes stop being valid (deleted, upstream changed): readers must stop. */
  private readonly generations = new Map<string, number>();
  private readonly lastStates = new Map<string, EntryState>();
  /** Where a reader that seeked into a chunk wants its download to begin (key → byte). */
  private readonly seekStarts = new Map<string, number>();
  /**
   * Entries whose upstream ignores Range, mid-way through the one sequential download of the
   * whole body: bytes [0, written) are in the file; chunks below `nextChunk` are recorded.
   */
  private readonly wholeBodies = new Map<string, { written: number; nextChunk: number }>();
  readonly wakeups = new Wakeups();
  /** Read buffers shared by all readers (see EntryReader.readFile). */
  readonly bufferPool: BufferPool;
  /** Checks stored rows against their CRC-32 before they are served (see ChunkVerifier). */
  readonly verifier: ChunkVerifier;
  private closed = false;

  constructor(
    private readonly repo: CacheRepository,
    private readonly store: ChunkStore,
    private readonly downloader: Downloader,
    readonly options: ChunkManagerOptions,
  ) {
    super();
    this.setMaxListeners(0);
    this.bufferPool = new BufferPool(options.readSize, 64);
    this.verifier = new ChunkVerifier(store);
  }

  /**
   * True when a stored row's bytes are intact. Otherwise (bit rot, truncated or deleted file) the
   * row is dropped and its chunk queued at CRITICAL: the reader waits for the re-download.
   */
  async verifyRow(entry: EntryRow, row: ChunkRow): Promise<boolean> {
    let writing = this.wholeBodies.has(entry.id);
    for (const f of this.inflight.values()) writing ||= f.entryId === entry.id;
    if (await this.verifier.check(entry.filePath, row, writing)) return true;
    this.dropInvalid(entry, row, 'all'); // the reader asking waits for these bytes
    return false;
  }

  /**
   * A scrub: re-reads every stored row of the entry and checks its CRC-32, whatever earlier checks
   * found. Damaged rows are dropped (downloaded again when read or pre-cached); rows that went
   * away meanwhile (eviction, removal) are not counted.
   */
  async scrub(entry: EntryRow): Promise<{ chunks: number; bytes: number; damaged: Array<{ start: number; end: number }> }> {
    const report = { chunks: 0, bytes: 0, damaged: [] as Array<{ start: number; end: number }> };
    for (const row of this.repo.listChunks(entry.id)) {
      const ok = await this.verifier.recheck(entry.filePath, row);
      const current = this.repo.chunkCovering(entry.id, row.start);
      if (!current || current.end !== row.end || current.checksum !== row.checksum) continue;
      report.chunks++;
      report.bytes += row.end - row.start + 1;
      if (ok) continue;
      this.dropInvalid(entry, row, 'wanted');
      report.damaged.push({ start: row.start, end: row.end });
    }
    return report;
  }

  /**
   * Drops exactly this row (it may have been replaced meanwhile), says so, and queues its chunks
   * again at CRITICAL: all of them, or only those a reader holds (a reader waiting on a chunk
   * would not ask for it again).
   */
  private dropInvalid(entry: EntryRow, row: ChunkRow, refetch: 'all' | 'wanted'): void {
    this.repo.evictChunks(entry.id, [[row.start, row.end]]);
    this.verifier.forget(entry.filePath, row.start);
    this.emit('chunk-invalid', { entryId: entry.id, start: row.start, end: row.end });
    const wanted = this.demand.get(entry.id);
    const now = Date.now();
    let raised = false;
    for (let i = Math.floor(row.start / entry.chunkSize); i <= Math.floor(row.end / entry.chunkSize); i++) {
      if (refetch === 'wanted' && !wanted?.has(i)) continue;
      this.raise(entry.id, i, Priority.CRITICAL, now);
      raised = true;
    }
    if (raised) this.pump();
    this.emitState(entry.id);
  }

  /** Resumes the persisted queue. */
  start(): void {
    this.repo.requeueDownloading();
    this.pump();
  }

  get activeDownloads(): number {
    return this.inflight.size;
  }

  /** Entries a reader wants or a download writes right now: their bytes must not be evicted. */
  activeEntryIds(): Set<string> {
    const ids = new Set(this.demand.keys());
    for (const f of this.inflight.values()) ids.add(f.entryId);
    return ids;
  }

  /**
   * Pauses a pre-cache or background fill: queued MEDIUM/LOW rows are dropped and such downloads
   * nobody reads are cancelled (their written prefix is recorded). Readers' demand is untouched.
   */
  async pauseBackground(entryId: string): Promise<void> {
    this.repo.dequeueAtOrBelow(entryId, Priority.MEDIUM);
    const wanted = this.demand.get(entryId);
    const running = [...this.inflight.values()].filter(
      (f) => f.entryId === entryId && f.priority >= Priority.MEDIUM && !wanted?.has(f.chunkIndex),
    );
    for (const f of running) this.abort(f, 'cancelled');
    await Promise.all(running.map((f) => f.done));
    this.emitState(entryId);
  }

  generation(entryId: string): number {
    return this.generations.get(entryId) ?? 0;
  }

  /**
   * The in-flight download covering `position`, if its bytes have reached it: `available` bytes
   * from `start` have arrived, the first `written` of them are in the file (the rest only in memory).
   */
  inflightAt(entry: EntryRow, position: number): { start: number; available: number; written: number } | undefined {
    const whole = this.wholeBodies.get(entry.id);
    if (whole && position < whole.written) return { start: 0, available: whole.written, written: whole.written };
    const f = this.inflight.get(key(entry.id, Math.floor(position / entry.chunkSize)));
    if (!f || position < f.start || position >= f.start + f.received) return undefined;
    return { start: f.start, available: f.received, written: f.written };
  }

  /**
   * Bytes at `position` (up to `end`) that a running download has just written, straight from
   * memory; undefined when they are not among its recent pieces (then read the file).
   */
  liveBytes(entry: EntryRow, position: number, end: number): Buffer | undefined {
    const f = this.inflight.get(key(entry.id, Math.floor(position / entry.chunkSize)));
    if (!f) return undefined;
    for (const piece of f.recent) {
      const offset = position - piece.position;
      if (offset >= 0 && offset < piece.data.length) {
        return piece.data.subarray(offset, Math.min(piece.data.length, end - piece.position + 1));
      }
    }
    return undefined;
  }

  /** In-flight downloads, for status and the chunk map. */
  inflightFor(entryId: string): Array<{ chunkIndex: number; priority: Priority; start: number; written: number }> {
    const out = [];
    for (const f of this.inflight.values()) {
      if (f.entryId === entryId) {
        out.push({ chunkIndex: f.chunkIndex, priority: f.priority, start: f.start, written: f.written });
      }
    }
    return out;
  }

  /** The first gap of chunk `index` at or after byte `from`, inclusive bounds; null if none. */
  private gapFrom(entry: EntryRow, index: number, from: number): { start: number; end: number } | null {
    const first = index * entry.chunkSize;
    const total = entry.expectedTotalSize;
    const last = total === null ? first + entry.chunkSize - 1 : Math.min(first + entry.chunkSize, total) - 1;
    let pos = Math.max(first, from);
    if (pos > last) return null;
    for (const row of this.repo.chunksIn(entry.id, pos, last)) {
      if (row.start > pos) return { start: pos, end: row.start - 1 };
      pos = Math.max(pos, row.end + 1);
    }
    return pos <= last ? { start: pos, end: last } : null;
  }

  /** First byte of chunk `index` that is not stored, or null when the whole chunk is. */
  missingStart(entry: EntryRow, index: number): number | null {
    return this.gapFrom(entry, index, 0)?.start ?? null;
  }

  // ---- demand -------------------------------------------------------------------------------

  /**
   * Sets what one reader wants: `critical` at CRITICAL and `lookahead` at HIGH. Returns the
   * chunks now held, to be passed back on the next call or to release().
   */
  want(entry: EntryRow, held: ReadonlySet<number>, critical: number, lookahead: readonly number[], position?: number): Set<number> {
    const next = new Set<number>([critical, ...lookahead]);
    const now = Date.now();
    const counts = this.demandOf(entry.id);
    let raised = false;
    for (const index of next) {
      if (!held.has(index)) counts.set(index, (counts.get(index) ?? 0) + 1);
      // Stored chunks (every chunk of a complete entry) need no queue work: a cached read costs
      // no statement here.
      if (entry.isComplete || this.missingStart(entry, index) === null) continue;
      if (index === critical && position !== undefined) {
        // A seek mid-chunk starts the download at the reader, not at the chunk's first byte.
        const running = this.inflight.get(key(entry.id, critical));
        if (!running || running.abortReason) this.seekStarts.set(key(entry.id, critical), position);
      }
      this.raise(entry.id, index, index === critical ? Priority.CRITICAL : Priority.HIGH, now);
      raised = true;
    }
    const dropped = [...held].filter((i) => !next.has(i));
    this.release(entry.id, dropped);
    if (raised) this.pump();
    return next;
  }

  /** A reader no longer wants these chunks: work nobody else wants is downgraded or cancelled. */
  release(entryId: string, indexes: Iterable<number>): void {
    const counts = this.demand.get(entryId);
    if (!counts) return;
    let prefetching: boolean | undefined;
    let changed = false;
    for (const index of indexes) {
      const n = (counts.get(index) ?? 0) - 1;
      if (n > 0) {
        counts.set(index, n);
        continue;
      }
      counts.delete(index);
      const row = this.repo.getQueueRow(entryId, index);
      if (!row || row.priority > Priority.HIGH) continue;
      changed = true;
      prefetching ??= this.repo.queueFor(entryId).some((r) => r.priority === Priority.MEDIUM);
      const fallback = prefetching ? Priority.MEDIUM : this.options.backgroundFill ? Priority.LOW : null;
      const f = this.inflight.get(key(entryId, index));
      if (fallback !== null) {
        this.repo.setQueuePriority(entryId, index, fallback);
        if (f) f.priority = fallback;
      } else if (f) {
        this.abort(f, 'cancelled');
      } else {
        this.repo.dequeue(entryId, index);
      }
    }
    if (counts.size === 0) this.demand.delete(entryId);
    if (changed) this.pump();
  }

  private demandOf(entryId: string): Map<number, number> {
    let counts = this.demand.get(entryId);
    if (!counts) this.demand.set(entryId, (counts = new Map()));
    return counts;
  }

  /** Queues a chunk, or raises the priority of its queued or running download. */
  private raise(entryId: string, index: number, priority: Priority, now: number): void {
    this.repo.enqueue(entryId, index, priority, now);
    const f = this.inflight.get(key(entryId, index));
    if (f && priority < f.priority) f.priority = priority;
  }

  /** Queues every missing chunk of an entry at `priority` (pre-cache, background fill). */
  enqueueMissing(entry: EntryRow, priority: Priority): number {
    if (entry.expectedTotalSize === null) {
      this.repo.enqueue(entry.id, 0, priority, Date.now());
      this.pump();
      return 1;
    }
    const missing = missingChunks(entry, coalesceRanges(this.repo.listChunks(entry.id)));
    this.repo.enqueueMany(entry.id, missing, priority, Date.now());
    this.pump();
    this.emitState(entry.id);
    return missing.length;
  }

  // ---- scheduling ---------------------------------------------------------------------------

  /**
   * Starts queued downloads while slots are free. When all are busy, more urgent queued work
   * pre-empts the least urgent transfer (whose written prefix is kept), so CRITICAL work never
   * waits behind background downloads.
   */
  pump(): void {
    if (this.closed) return;
    try {
      this.pumpQueue();
    } catch (err) {
      // The database is busy or failing: report it, keep the process up, try again shortly.
      this.emit('background-error', { error: err instanceof Error ? err : new Error(String(err)) });
      this.retryTimer ??= setTimeout(() => {
        this.retryTimer = undefined;
        this.pump();
      }, PUMP_RETRY_MS).unref();
    }
  }

  private retryTimer: NodeJS.Timeout | undefined;

  private pumpQueue(): void {
    for (;;) {
      const next = this.repo.nextQueued();
      if (!next) return;
      const running = [...this.inflight.values()].filter((f) => !f.abortReason);
      if (running.length >= this.options.maxConcurrentDownloads) {
        const victim = running.reduce((a, b) => (b.priority >= a.priority ? b : a));
        if (victim.priority <= next.priority) return;
        this.abort(victim, 'preempted');
      }
      if (!this.startDownload(next.entryId, next.chunkIndex, next.priority)) return;
    }
  }

  /** False when admission refused it: the row stays queued and the pump stops. */
  private startDownload(entryId: string, index: number, priority: Priority): boolean {
    const entry = this.repo.getEntry(entryId);
    const from = this.seekStarts.get(key(entryId, index));
    // A whole-body download of this entry writes every chunk already: do not fetch it twice.
    const covered = this.wholeBodies.has(entryId);
    const gap =
      entry && !entry.errorMessage && !covered
        ? (from !== undefined && this.gapFrom(entry, index, from)) || this.gapFrom(entry, index, 0)
        : null;
    if (!entry || !gap) {
      this.seekStarts.delete(key(entryId, index));
      this.repo.dequeue(entryId, index);
      return true;
    }
    const { start } = gap;
    const total = entry.expectedTotalSize;
    const chunkEnd = (index + 1) * entry.chunkSize - 1;
    const admit = this.options.admit;
    if (admit && !admit(entryId, index, (total === null ? chunkEnd : Math.min(chunkEnd, total - 1)) - start + 1)) return false;
    this.seekStarts.delete(key(entryId, index));
    this.repo.setQueueStatus(entryId, index, 'downloading');
    const f: InFlight = {
      entryId,
      chunkIndex: index,
      priority,
      start,
      end: gap.end,
      written: 0,
      received: 0,
      crc: 0,
      recent: [],
      recentBytes: 0,
      controller: new AbortController(),
      done: Promise.resolve(),
    };
    this.inflight.set(key(entryId, index), f);
    this.store.prepare(entry.filePath);
    this.emit('download-started', { entryId, chunkIndex: index, priority, start });
    f.done = this.runDownload(entry, f)
      .catch((err: unknown) => {
        // Only bookkeeping can throw here (a busy database while recording a failure).
        this.emit('background-error', { error: err instanceof Error ? err : new Error(String(err)) });
      })
      .finally(() => {
        this.inflight.delete(key(entryId, index));
        this.emit('download-ended', { entryId, chunkIndex: index, outcome: f.outcome ?? 'failed' });
        this.wakeups.notify(entryId);
        this.pump();
      });
    return true;
  }

  private abort(f: InFlight, reason: AbortReason): void {
    if (f.abortReason) return;
    f.abortReason = reason;
    f.controller.abort();
  }

  private async runDownload(entry: EntryRow, f: InFlight): Promise<void> {
    const { retry } = this.options;
    let whole: { written: number; nextChunk: number } | undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        // Re-read per attempt: a new URL for the same key (rotated token) applies at once.
        const current = this.repo.getEntry(entry.id);
        if (!current) return;
        entry = current;
        whole = undefined;
        // A piece that arrived but was never written is fetched again: forget it.
        f.received = f.written;
        f.recent = f.recent.filter((p) => p.position + p.data.length <= f.start + f.written);
        f.recentBytes = f.recent.reduce((sum, p) => sum + p.data.length, 0);
        await this.downloader.fetchRange({
          url: entry.originalUrl,
          start: f.start + f.written,
          end: f.end,
          validator: ifRangeValidator(entry.etag, entry.lastModified),
          signal: f.controller.signal,
          onMetadata: (meta) => {
            entry = this.acceptMetadata(entry, meta);
            f.end = Math.min(f.end, meta.totalSize - 1);
          },
          onWholeBody: () => {
            if (this.wholeBodies.has(f.entryId)) {
              this.abort(f, 'cancelled'); // another download already streams the whole body
              throw new MediaCacheError(ErrorCodes.ABORTED, 'whole body already being fetched');
            }
            whole = { written: 0, nextChunk: 0 };
            this.wholeBodies.set(f.entryId, whole);
          },
          onData: async (position, data) => {
            if (whole) return this.onWholeData(entry, f, whole, position, data);
            // Readers get the piece from memory now, not after the disk write (first byte sooner).
            f.recent.push({ position, data });
            f.recentBytes += data.length;
            while (f.recentBytes > RECENT_BYTES && f.recent.length > 1) f.recentBytes -= f.recent.shift()?.data.length ?? 0;
            f.received += data.length;
            this.wakeups.notify(f.entryId);
            await this.store.write(entry.filePath, position, data);
            f.crc = crc32(data, f.crc);
            f.written += data.length;
            this.emit('download-progress', { entryId: f.entryId, chunkIndex: f.chunkIndex, position: position + data.length });
          },
        });
        if (whole) {
          this.endWholeBody(f);
          this.repo.dequeue(f.entryId, f.chunkIndex);
          this.end(f, 'stored');
          return;
        }
        await this.finish(entry, f, 'stored');
        return;
      } catch (err) {
        if (whole) this.endWholeBody(f);
        if (f.abortReason) {
          await this.finish(entry, f, f.abortReason);
          return;
        }
        if (isMediaCacheError(err, ErrorCodes.UPSTREAM_CHANGED)) {
          this.invalidate(entry.id, 'upstream file changed');
          this.end(f, 'invalidated');
          return;
        }
        const transient = isMediaCacheError(err) ? err.transient : false;
        if (transient && attempt < retry.attempts) {
          this.repo.incrementRetry(f.entryId, f.chunkIndex);
          const delay = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1));
          try {
            await sleep(delay, undefined, { signal: f.controller.signal });
          } catch {
            await this.finish(entry, f, f.abortReason ?? 'shutdown');
            return;
          }
          continue;
        }
        this.fail(f, err);
        return;
      }
    }
  }

  /**
   * One piece of a whole-body download (the upstream ignores Range): written at its position,
   * and every chunk it completes is recorded — only its gaps, each after an fsync and with the
   * CRC-32 of the bytes as they sit in the file.
   */
  private async onWholeData(
    entry: EntryRow,
    f: InFlight,
    whole: { written: number; nextChunk: number },
    position: number,
    data: Buffer,
  ): Promise<void> {
    await this.store.write(entry.filePath, position, data);
    whole.written = position + data.length;
    const total = entry.expectedTotalSize ?? 0;
    while (whole.nextChunk * entry.chunkSize < total) {
      const chunkEnd = Math.min((whole.nextChunk + 1) * entry.chunkSize, total);
      if (whole.written < chunkEnd) break;
      await this.store.sync(entry.filePath);
      for (let gap = this.gapFrom(entry, whole.nextChunk, 0); gap; gap = this.gapFrom(entry, whole.nextChunk, 0)) {
        const bytes = await this.store.read(entry.filePath, gap.start, gap.end - gap.start + 1);
        const row = { start: gap.start, end: gap.end, checksum: crc32(bytes), downloadedAt: Date.now() };
        this.repo.recordChunk(f.entryId, null, row);
        await this.verifier.noteWritten(entry.filePath, row.start);
        this.emit('chunk-stored', { entryId: f.entryId, start: row.start, end: row.end });
      }
      this.repo.dequeue(f.entryId, whole.nextChunk);
      whole.nextChunk++;
    }
    this.wakeups.notify(f.entryId);
    this.emit('download-progress', { entryId: f.entryId, chunkIndex: f.chunkIndex, position: whole.written });
  }

  /**
   * A whole-body download ended. Chunks readers still want but it did not reach were dequeued
   * while it ran (it covered them): queue them again.
   */
  private endWholeBody(f: InFlight): void {
    this.wholeBodies.delete(f.entryId);
    const wanted = this.demand.get(f.entryId);
    const current = this.repo.getEntry(f.entryId);
    if (!wanted || !current || current.errorMessage !== null) return;
    const now = Date.now();
    for (const index of wanted.keys()) {
      if (this.missingStart(current, index) !== null) this.repo.enqueue(f.entryId, index, Priority.HIGH, now);
    }
  }

  /** Records what a download wrote: the whole chunk, or on pre-emption the prefix it reached. */
  private async finish(entry: EntryRow, f: InFlight, outcome: DownloadOutcome): Promise<void> {
    const keepPrefix = outcome === 'stored' || outcome === 'preempted' || outcome === 'cancelled';
    // A download that completed while the manager closes is still recorded: close() waits for it.
    if (keepPrefix && f.written > 0 && this.repo.getEntry(f.entryId)) {
      try {
        await this.store.sync(entry.filePath);
        const row = { start: f.start, end: f.start + f.written - 1, checksum: f.crc, downloadedAt: Date.now() };
        // Only a finished chunk leaves the queue; a cut-off one stays for its remainder.
        this.repo.recordChunk(f.entryId, outcome === 'stored' ? f.chunkIndex : null, row);
        await this.verifier.noteWritten(entry.filePath, row.start);
        if (outcome === 'stored' && this.missingStart(entry, f.chunkIndex) !== null) {
          // It began at a seek or ended at a stored range: the chunk stays queued for its other gaps.
          const wanted = this.demand.get(f.entryId)?.has(f.chunkIndex) || f.priority >= Priority.MEDIUM;
          const priority = wanted ? f.priority : this.options.backgroundFill ? Priority.LOW : null;
          if (priority !== null) this.repo.enqueue(f.entryId, f.chunkIndex, priority, Date.now());
        }
        this.emit('chunk-stored', { entryId: f.entryId, start: row.start, end: row.end });
      } catch (err) {
        this.fail(f, err);
        return;
      }
    } else if (outcome === 'stored' && f.written === 0) {
      this.repo.dequeue(f.entryId, f.chunkIndex); // nothing to fetch: the range lies past the end
    }
    if (outcome === 'preempted') this.repo.setQueueStatus(f.entryId, f.chunkIndex, 'queued');
    if (outcome === 'cancelled') {
      // A reader may have asked for the chunk again while the cancel was under way.
      if (this.demand.get(f.entryId)?.has(f.chunkIndex)) this.repo.setQueueStatus(f.entryId, f.chunkIndex, 'queued');
      else this.repo.dequeue(f.entryId, f.chunkIndex);
    }
    this.end(f, outcome);
  }

  /** Notes how a download ended; the event fires once it has left the in-flight set. */
  private end(f: InFlight, outcome: DownloadOutcome): void {
    f.outcome = outcome;
    this.emitState(f.entryId);
  }

  private fail(f: InFlight, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    if (this.repo.getEntry(f.entryId)) {
      this.repo.setEntryError(f.entryId, message);
      this.repo.dequeueEntry(f.entryId);
    }
    this.end(f, 'failed');
  }

  /**
   * Takes the file's size and validators from the first verified reply. A later reply that
   * disagrees means the file changed under us.
   */
  private acceptMetadata(entry: EntryRow, meta: UpstreamMetadata): EntryRow {
    if (entry.expectedTotalSize === null) {
      const { totalSize: expectedTotalSize, mimeType, etag, lastModified } = meta;
      this.repo.setEntryMetadata(entry.id, { expectedTotalSize, mimeType, etag, lastModified });
      const updated = this.repo.getEntry(entry.id) ?? entry;
      // After the first body bytes are on their way: this is a dozen writes the reader need not wait for.
      setImmediate(() => {
        if (!this.closed && this.repo.getEntry(entry.id)) this.queueOpening(updated);
      });
      this.wakeups.notify(entry.id);
      this.emitState(entry.id);
      return updated;
    }
    const etagChanged = entry.etag !== null && meta.etag !== null && entry.etag !== meta.etag;
    if (meta.totalSize !== entry.expectedTotalSize || etagChanged) {
      throw new MediaCacheError(ErrorCodes.UPSTREAM_CHANGED, 'upstream file changed (size or ETag differs)');
    }
    return entry;
  }

  /**
   * Once the size is known: head and tail at HIGH (MP4 `moov` and Matroska cues often sit at the
   * end, and players read them before the first frame), the rest at MEDIUM when a pre-cache is
   * asked for, else LOW when background fill is on.
   */
  private queueOpening(entry: EntryRow): void {
    const total = entry.expectedTotalSize ?? 0;
    const chunks = Math.ceil(total / entry.chunkSize);
    if (chunks === 0) return;
    const prefetching = this.repo.queueFor(entry.id).some((r) => r.priority === Priority.MEDIUM);
    // One millisecond earlier than readers' lookahead, so head and tail sort before it.
    const early = Date.now() - 1;
    this.raise(entry.id, 0, Priority.HIGH, early);
    this.raise(entry.id, chunks - 1, Priority.HIGH, early);
    if (prefetching) this.enqueueMissing(entry, Priority.MEDIUM);
    else if (this.options.backgroundFill) this.enqueueMissing(entry, Priority.LOW);
  }

  /** Forgets an entry's stored bytes and stops everything that uses them. */
  invalidate(entryId: string, reason: string): void {
    this.generations.set(entryId, this.generation(entryId) + 1);
    for (const f of this.inflight.values()) if (f.entryId === entryId) this.abort(f, 'invalidated');
    this.repo.invalidateChunks(entryId);
    const file = this.repo.getEntry(entryId)?.filePath;
    if (file !== undefined) this.verifier.forget(file);
    this.wakeups.notify(entryId);
    this.emit('entry-invalidated', { entryId, reason });
    this.emitState(entryId);
  }

  /** Stops all downloads of an entry before its rows and file are removed. */
  async forget(entryId: string): Promise<void> {
    this.generations.set(entryId, this.generation(entryId) + 1);
    const running = [...this.inflight.values()].filter((f) => f.entryId === entryId);
    for (const f of running) this.abort(f, 'invalidated');
    await Promise.all(running.map((f) => f.done));
    const file = this.repo.getEntry(entryId)?.filePath;
    if (file !== undefined) this.verifier.forget(file);
    this.demand.delete(entryId);
    this.lastStates.delete(entryId);
    this.wakeups.notify(entryId);
  }

  /** Emits state-changed when the derived state differs from the last one emitted. */
  emitState(entryId: string): void {
    const state = deriveState(this.repo.entryFacts(entryId));
    if (this.lastStates.get(entryId) === state) return;
    this.lastStates.set(entryId, state);
    this.emit('state-changed', { entryId, state });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    const running = [...this.inflight.values()];
    for (const f of running) this.abort(f, 'shutdown');
    await Promise.all(running.map((f) => f.done));
    this.wakeups.notifyAll();
  }
}

/** Indexes of the chunks of an entry of known size not wholly covered by `stored` (sorted, coalesced). */
function missingChunks(entry: EntryRow, stored: ReadonlyArray<readonly [number, number]>): number[] {
  const total = entry.expectedTotalSize ?? 0;
  const out: number[] = [];
  let r = 0;
  for (let first = 0, i = 0; first < total; first += entry.chunkSize, i++) {
    const last = Math.min(first + entry.chunkSize, total) - 1;
    while (r < stored.length && (stored[r]?.[1] ?? 0) < first) r++;
    const range = stored[r];
    if (!range || range[0] > first || range[1] < last) out.push(i);
  }
  return out;
}
