import type { CacheRepository, EntryRow } from '../db/repository.js';
import type { ChunkStore } from '../store/chunk-store.js';
import type { ChunkManager, ChunkManagerOptions } from './chunk-manager.js';
import { ErrorCodes, MediaCacheError, STORAGE_FAILURE } from '../errors.js';

/**
 * Lookahead chunks are asked for only after this much of a read was served: a player that
 * scrubs (reads a little, then seeks again) must not start downloads it will abandon.
 */
const LOOKAHEAD_AFTER_BYTES = 1024 * 1024;

/**
 * How many chunks a reader's downloads run ahead of it: `seconds` of playback when the entry's
 * bitrate is known (at least one chunk), else the fixed `chunks`. A fixed count is 100 MiB
 * with the defaults: minutes of a 4 Mbps stream that a player may never reach.
 */
export function lookaheadChunks(
  entry: Pick<EntryRow, 'bitrate' | 'chunkSize'>,
  options: Pick<ChunkManagerOptions, 'lookaheadChunks' | 'lookaheadSeconds'>,
): number {
  if (entry.bitrate === null) return options.lookaheadChunks;
  return Math.max(1, Math.ceil(((entry.bitrate / 8) * options.lookaheadSeconds) / entry.chunkSize));
}

export interface ServedBytes {
  fromCache: number;
  live: number;
}

/**
 * One player's read of one entry. It yields bytes from stored ranges (one indexed lookup each)
 * and from downloads under way as soon as they are written, telling the manager where it reads
 * so the chunk there is CRITICAL and the next ones HIGH. close() releases that demand.
 */
export class EntryReader {
  /** What this read served: from stored ranges, or from downloads under way (a miss). */
  readonly served: ServedBytes = { fromCache: 0, live: 0 };
  private held = new Set<number>();
  private demandedChunk = -1;
  private demandedTotal: number | null = null;
  private demandedLookahead = false;
  private entry: EntryRow;

  constructor(
    private readonly repo: CacheRepository,
    private readonly store: ChunkStore,
    private readonly manager: ChunkManager,
    entry: EntryRow,
    private readonly signal: AbortSignal,
    private readonly onClose?: (served: Readonly<ServedBytes>) => void,
  ) {
    this.entry = entry;
  }

  /** Waits until the entry's total size is known, fetching the chunk at `hint` to learn it. */
  async ensureSize(hint: number): Promise<EntryRow> {
    for (;;) {
      // A storage failure after the size was learnt still lets the route answer (by passthrough).
      const entry = this.fresh(true);
      if (entry.expectedTotalSize !== null) return entry;
      this.demandAt(Math.floor(hint / entry.chunkSize), hint, hint);
      await this.manager.wakeups.wait(entry.id, this.manager.options.waitTimeoutMs, this.signal);
    }
  }

  /** Yields the bytes [start, end] (inclusive) in order. */
  async *read(start: number, end: number): AsyncGenerator<Buffer, void, undefined> {
    const { id, chunkSize } = this.entry;
    const generation = this.manager.generation(id);
    let pos = start;
    while (pos <= end) {
      if (this.manager.generation(id) !== generation) {
        throw new MediaCacheError(ErrorCodes.UPSTREAM_CHANGED, 'entry was invalidated while being read');
      }
      const index = Math.floor(pos / chunkSize);
      const lookahead = pos - start >= LOOKAHEAD_AFTER_BYTES;
      if (index !== this.demandedChunk || this.entry.expectedTotalSize !== this.demandedTotal || lookahead !== this.demandedLookahead) {
        this.demandAt(index, end, pos, lookahead);
      }
      const row = this.repo.chunkCovering(id, pos);
      // A row whose bytes fail their checksum is dropped and re-downloaded: look again.
      if (row && !(await this.manager.verifyRow(this.entry, row))) continue;
      const live = row ? undefined : this.manager.inflightAt(this.entry, pos);
      const stop = row ? row.end : live ? live.start + live.available - 1 : -1;
      if (stop >= pos) {
        const last = Math.min(stop, end);
        const inMemory = row ? undefined : this.manager.liveBytes(this.entry, pos, last);
        // Not in memory: read the file, which holds only what a download has finished writing.
        const upTo = inMemory ? pos + inMemory.length - 1 : live ? Math.min(last, live.start + live.written - 1) : last;
        if (upTo >= pos) {
          if (row) this.served.fromCache += upTo - pos + 1;
          else this.served.live += upTo - pos + 1;
          if (inMemory) yield inMemory;
          else yield* this.readFile(pos, upTo);
          pos = upTo + 1;
          continue;
        }
      }
      this.fresh(); // throws if the entry failed or is gone, rather than waiting for nothing
      await this.manager.wakeups.wait(id, this.manager.options.waitTimeoutMs, this.signal);
    }
  }

  /**
   * Positional reads of up to `readSize`, one read ahead: the next read runs while the caller
   * sends the current buffer, as fs.ReadStream does, so disk and network overlap. Two buffers per
   * reader are reused for the whole response (fresh 1 MiB buffers per read made the garbage
   * collector the hottest path), so a yielded buffer is valid only until the next one is asked for.
   */
  private async *readFile(from: number, to: number): AsyncGenerator<Buffer, void, undefined> {
    const file = this.entry.filePath;
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
    this.readBuffers ??= [this.manager.bufferPool.acquire(), this.manager.bufferPool.acquire()];
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
      const lastChunk = Math.floor(Math.min(end, entry.expectedTotalSize - 1) / entry.chunkSize);
      const ahead = lookaheadChunks(entry, this.manager.options);
      for (let i = index + 1; i <= Math.min(lastChunk, index + ahead); i++) {
        lookahead.push(i);
      }
    }
    this.held = this.manager.want(entry, this.held, index, lookahead, position);
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
    if (this.readBuffers && buffersIdle) for (const buf of this.readBuffers) this.manager.bufferPool.release(buf);
    this.readBuffers = undefined;
    this.manager.release(this.entry.id, this.held);
    this.held = new Set();
    this.onClose?.(this.served);
  }
}
