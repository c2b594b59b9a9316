import type { CacheRepository, ChunkRow, EntryRow } from '../db/repository.js';
import type { ChunkStore } from '../store/chunk-store.js';
import type { BufferPool } from '../store/buffer-pool.js';
import type { DemandHandle } from '../download/demand.js';
import type { Wakeups } from '../download/wakeups.js';
import { lookaheadChunks, playedBytes } from '../policy/scheduling.js';
import { ErrorCodes, MediaCacheError, STORAGE_FAILURE } from '../errors.js';
import { chunkOf } from '../model/geometry.js';

/**
 * Lookahead chunks are asked for only after this much of a read was served: a player that
 * scrubs (reads a little, then seeks again) must not start downloads it will abandon.
 */
const LOOKAHEAD_AFTER_BYTES = 1024 * 1024;

/** What a reader needs from the core: a narrow view of the scheduler, integrity and store. */
export interface ReadPath {
  readonly wakeups: Wakeups;
  readonly bufferPool: BufferPool;
  readonly options: { waitTimeoutMs: number; lookaheadChunks: number; lookaheadSeconds: number };
  openDemand(entryId: string): DemandHandle;
  want(handle: DemandHandle, entry: EntryRow, critical: number, lookahead: readonly number[], position: number): void;
  /** The reader waits at `position`: its chunk must be downloading or queued. */
  ensureQueued(entry: EntryRow, position: number): void;
  release(handle: DemandHandle): void;
  /** The reader read the entry like playback (a long sequential read): background fill may start. */
  played(entry: EntryRow): void;
  verifyRow(entry: EntryRow, row: ChunkRow): Promise<boolean>;
  /** The transfer of this version covering `position`, if its bytes have reached it. */
  inflightAt(entry: EntryRow, position: number): { start: number; available: number; written: number } | undefined;
  /** Bytes a transfer of this version just received, from memory. */
  liveBytes(entry: EntryRow, position: number, end: number): Buffer | undefined;
}

export interface ServedBytes {
  fromCache: number;
  live: number;
}

/**
 * One player's read of one entry. It yields bytes from stored ranges (one indexed lookup each)
 * and from downloads under way as soon as they arrive, telling the scheduler where it reads so
 * the chunk there is CRITICAL and the next ones HIGH.
 *
 * Invariants kept here:
 * - a read is bound to the version current when it began: rows, in-flight bytes and the file
 *   are all of that version; when the version moves on the read throws MC_ERR_UPSTREAM_CHANGED
 *   (the route starts over before headers, or cuts the body), never mixing two versions;
 * - the reader's demand is one handle, released by close() whatever happened before;
 * - its file is retained until close(), so it is not deleted under it.
 */
export class EntryReader {
  /** What this read served: from stored ranges, or from downloads under way (a miss). */
  readonly served: ServedBytes = { fromCache: 0, live: 0 };
  private readonly handle: DemandHandle;
  private retainedFile: string | undefined;
  private closed = false;
  private reportedPlay = false;
  private demandedChunk = -1;
  private demandedTotal: number | null = null;
  private demandedLookahead = false;
  private entry: EntryRow;

  constructor(
    private readonly repo: CacheRepository,
    private readonly store: ChunkStore,
    private readonly path: ReadPath,
    entry: EntryRow,
    private readonly signal: AbortSignal,
    private readonly onClose?: (served: Readonly<ServedBytes>) => void,
  ) {
    this.entry = entry;
    this.handle = path.openDemand(entry.id);
  }

  /**
   * Waits until the entry's total size is known, fetching the chunk at `hint` to learn it. The
   * first look uses the row the reader was opened with (read in the same turn of the loop).
   */
  async ensureSize(hint: number): Promise<EntryRow> {
    for (let first = true; ; first = false) {
      // A storage failure after the size was learnt still lets the route answer (by passthrough).
      const entry = first && this.entry.errorMessage === null ? this.entry : this.fresh(true);
      if (entry.expectedTotalSize !== null) return entry;
      this.demandAt(chunkOf(hint, entry.chunkSize), hint, hint);
      await this.path.wakeups.wait(entry.id, this.path.options.waitTimeoutMs, this.signal);
    }
  }

  /** Yields the bytes [start, end] (inclusive) of the version current now, in order. */
  async *read(start: number, end: number): AsyncGenerator<Buffer, void, undefined> {
    const bound = this.entry;
    const { id, chunkSize, version, filePath } = bound;
    if (this.retainedFile === undefined) {
      this.retainedFile = filePath;
      this.store.retain(filePath);
    }
    let pos = start;
    let ensuredAt = -1;
    // A probe reads a little here and there; playback reads on and on from one position.
    const playedAt = this.reportedPlay ? Number.POSITIVE_INFINITY : start + playedBytes(bound.bitrate);
    while (pos <= end) {
      const index = chunkOf(pos, chunkSize);
      const lookahead = pos - start >= LOOKAHEAD_AFTER_BYTES;
      if (pos >= playedAt && !this.reportedPlay) {
        this.reportedPlay = true;
        this.path.played(bound);
      }
      // The total bounds only the lookahead: learning it asks for nothing new without one.
      const totalMoved = lookahead && this.entry.expectedTotalSize !== this.demandedTotal;
      if (index !== this.demandedChunk || totalMoved || lookahead !== this.demandedLookahead) {
        this.demandAt(index, end, pos, lookahead);
      }
      // Bytes a download of this version has at `pos` first: they are the same bytes a row would
      // hold (transfers fetch gaps), and a player streaming a download costs no query per piece.
      const live = this.path.inflightAt(bound, pos);
      const row = live ? undefined : this.repo.chunkCovering(id, version, pos);
      // A row whose bytes fail their checksum is dropped and re-downloaded: look again.
      if (row && !(await this.path.verifyRow(bound, row))) continue;
      const stop = row ? row.end : live ? live.start + live.available - 1 : -1;
      if (stop >= pos) {
        const last = Math.min(stop, end);
        const inMemory = row ? undefined : this.path.liveBytes(bound, pos, last);
        // Not in memory: read the file, which holds only what a download has finished writing.
        const upTo = inMemory ? pos + inMemory.length - 1 : live ? Math.min(last, live.start + live.written - 1) : last;
        if (upTo >= pos) {
          if (row) this.served.fromCache += upTo - pos + 1;
          else this.served.live += upTo - pos + 1;
          if (inMemory) yield inMemory;
          else yield* this.readFile(filePath, pos, upTo);
          pos = upTo + 1;
          this.handle.moveTo(pos);
          continue;
        }
      }
      // Throws if the entry failed, is gone or moved to another version, rather than waiting for nothing.
      const current = this.fresh();
      if (current.version !== version) throw new MediaCacheError(ErrorCodes.UPSTREAM_CHANGED, 'the upstream file changed while being read');
      // Once per position: a chunk dropped after this read began (a scrub) is queued again.
      if (!live && ensuredAt !== pos) {
        ensuredAt = pos;
        this.path.ensureQueued(current, pos);
      }
      await this.path.wakeups.wait(id, this.path.options.waitTimeoutMs, this.signal);
    }
  }

  /**
   * Positional reads of up to `readSize`, one read ahead: the next read runs while the caller
   * sends the current buffer, as fs.ReadStream does, so disk and network overlap. Two buffers per
   * reader are reused for the whole response (fresh 1 MiB buffers per read made the garbage
   * collector the hottest path), so a yielded buffer is valid only until the next one is asked for.
   */
  private async *readFile(file: string, from: number, to: number): AsyncGenerator<Buffer, void, undefined> {
    let [current, spare] = this.buffers();
    const readAt = (buf: Buffer, pos: number): Promise<number> | undefined =>
      pos <= to ? this.store.readInto(file, pos, buf, Math.min(buf.length, to - pos + 1)) : undefined;
    let pos = from;
    let pending = readAt(current, pos);
    try {
      while (pending) {
        const got = await pending;
        const expected = Math.min(current.length, to - pos + 1);
        if (got !== expected) {
          throw new MediaCacheError(ErrorCodes.DATABASE, `cache file shorter than its recorded ranges at ${pos}`);
        }
        const out = current.subarray(0, got);
        pos += got;
        [current, spare] = [spare, current];
        pending = readAt(current, pos);
        yield out;
      }
    } finally {
      pending?.catch(() => undefined); // a reader that left early must not leave a rejection unhandled
    }
  }

  private readBuffers: [Buffer, Buffer] | undefined;

  /** The reader's two read buffers, from the shared pool, kept until close(). */
  private buffers(): [Buffer, Buffer] {
    this.readBuffers ??= [this.path.bufferPool.acquire(), this.path.bufferPool.acquire()];
    return this.readBuffers;
  }

  /**
   * CRITICAL for the chunk at the read position (its download starts at `position` when that is
   * mid-chunk), HIGH for the next lookahead chunks up to `end` when `withLookahead`.
   */
  private demandAt(index: number, end: number, position: number, withLookahead = false): void {
    const entry = this.entry;
    const lookahead: number[] = [];
    if (withLookahead && entry.expectedTotalSize !== null) {
      const lastChunk = chunkOf(Math.min(end, entry.expectedTotalSize - 1), entry.chunkSize);
      const ahead = lookaheadChunks(entry, this.path.options);
      for (let i = index + 1; i <= Math.min(lastChunk, index + ahead); i++) {
        lookahead.push(i);
      }
    }
    // Noted before want(): if its queue work throws, the handle already holds the demand and
    // close() releases it; the next demandAt() is not skipped for a chunk never queued.
    this.demandedChunk = -1;
    this.path.want(this.handle, entry, index, lookahead, position);
    this.demandedChunk = index;
    this.demandedTotal = entry.expectedTotalSize;
    this.demandedLookahead = withLookahead;
  }

  /**
   * The entry's current row; throws when it is gone or failed. `tolerateStorageFailure`: a full
   * disk on an entry of known size is no reason to stop, the route passes the bytes through.
   */
  private fresh(tolerateStorageFailure = false): EntryRow {
    const entry = this.repo.getEntry(this.entry.id);
    if (!entry) throw new MediaCacheError(ErrorCodes.NOT_FOUND, 'entry was removed');
    if (entry.errorMessage !== null) {
      // A full disk is not the upstream's fault: the route can still pass the bytes through.
      const storage = entry.errorMessage.startsWith(STORAGE_FAILURE);
      if (!(storage && tolerateStorageFailure && entry.expectedTotalSize !== null)) {
        throw new MediaCacheError(storage ? ErrorCodes.STORAGE : ErrorCodes.ENTRY_FAILED, `download failed: ${entry.errorMessage}`);
      }
    }
    this.entry = entry;
    return entry;
  }

  /**
   * Releases the reader's demand. `buffersIdle` says no socket write still holds its buffers
   * (the response ended normally), so they can go back to the pool.
   */
  close(buffersIdle = false): void {
    if (this.closed) return;
    this.closed = true;
    if (this.readBuffers && buffersIdle) for (const buf of this.readBuffers) this.path.bufferPool.release(buf);
    this.readBuffers = undefined;
    this.path.release(this.handle);
    if (this.retainedFile !== undefined) this.store.release(this.retainedFile);
    this.retainedFile = undefined;
    this.onClose?.(this.served);
  }
}
