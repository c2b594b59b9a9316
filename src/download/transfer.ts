import { setTimeout as sleep } from 'node:timers/promises';
import { crc32 } from 'node:zlib';
import type { CacheRepository, ChunkRow, EntryRow, Priority } from '../db/repository.js';
import { retryWhileBusy } from '../db/busy-retry.js';
import type { ChunkStore } from '../store/chunk-store.js';
import type { ChunkVerifier } from '../store/chunk-verifier.js';
import { ErrorCodes, MediaCacheError, isMediaCacheError } from '../errors.js';
import type { DownloadOutcome } from '../events.js';
import type { TransferSnapshot } from '../inspect.js';
import { chunkBounds } from '../model/geometry.js';
import { ifRangeValidator, type Downloader, type UpstreamMetadata } from './downloader.js';
import type { Pacer } from './bandwidth.js';
import { gapFrom } from './gaps.js';
import { backoffDelay, keepsPrefix, strongerStop, type RetryPolicy, type StopReason } from '../policy/scheduling.js';

/**
 * One Range download of one gap of one chunk of one version of an entry.
 *
 * Lifecycle: created → receiving (attempts, retries) → committing → exactly one result. The
 * transfer never touches the queue or the scheduler's maps: `run()` resolves with its outcome
 * once, and the scheduler releases everything it held in one place (Scheduler.settle).
 *
 * Invariants kept here:
 * - bytes go only into this version's file (`filePath` is fixed at creation);
 * - a row is recorded only after its bytes are fsynced, by recordChunk, whose transaction
 *   checks that the version is still current (else nothing is written: outcome 'invalidated');
 * - stop() is a request: it aborts the upstream request; the outcome still comes from run().
 */

/** What a transfer needs from its owner: a narrow view, no scheduler internals. */
export interface TransferHost {
  readonly repo: CacheRepository;
  readonly store: ChunkStore;
  readonly verifier: ChunkVerifier;
  readonly downloader: Downloader;
  /** Retries, and the bandwidth limits when any is set (else transfers are not paced). */
  readonly options: { readonly retry: RetryPolicy; readonly bandwidth?: Pacer };
  /** Size and validators of a verified reply; throws MC_ERR_UPSTREAM_CHANGED when they disagree with the entry's. */
  acceptMetadata(t: Transfer, entry: EntryRow, meta: UpstreamMetadata): EntryRow;
  /** Bytes arrived or were written: readers wake. */
  onProgress(t: Transfer, newBytes: number): void;
  /** The upstream request is over (or stopped): the transfer no longer takes a slot. */
  onSlotFreed(t: Transfer): void;
  /** The upstream ignores Range: may this transfer stream the whole body? False if another already does. */
  claimWholeBody(t: Transfer): boolean;
  /** A row was recorded (committed). */
  onRecorded(t: Transfer, row: ChunkRow): void;
  /** Whether no other transfer of the same chunk runs (only then does a stored chunk leave the queue). */
  isSoleTransfer(t: Transfer): boolean;
  /** Time from sending a request to its verified reply headers, and a finished body's rate. */
  readonly upstream: { noteFirstByte(ms: number): void; noteRate(bytesPerMs: number): void };
}

export interface TransferResult {
  outcome: DownloadOutcome;
  /** With 'failed': why. */
  error?: unknown;
  /** With 'invalidated': the upstream reported a different file (the version must move on). */
  upstreamChanged?: boolean;
}

/** Per transfer, how many of its latest bytes stay in memory for readers. */
const RECENT_BYTES = 1024 * 1024;
/**
 * Bytes received but not yet written that a transfer may hold before it stops reading the reply.
 * Disk writes go through libuv's thread pool and took 0.3–5 ms each on a busy machine: awaiting
 * each before reading the next piece put that on every reader's path (bench rows 1–2). Kept
 * below RECENT_BYTES, so every unwritten byte is still in memory for readers.
 */
const MAX_UNWRITTEN = 256 * 1024;

export class Transfer {
  /** Bytes [start, start + written) are in the file; [.., start + received) arrived and are being written. */
  written = 0;
  received = 0;
  phase: 'receiving' | 'committing' = 'receiving';
  stopReason: StopReason | null = null;
  /** Someone asked for this chunk again after it was cancelled (a pre-cache, a raise): its row stays queued. */
  wantedAgain = false;
  /** Set while the upstream streams the whole body (it ignores Range): bytes [0, written) are in the file. */
  whole: { written: number; nextChunk: number } | undefined;
  private crc = 0;
  /** The writes of received pieces, chained in order; never rejects (a failure is kept in writeError). */
  private writes: Promise<void> = Promise.resolve();
  private unwritten = 0;
  private writeError: unknown = undefined;
  /** The last pieces received, so readers get fresh bytes without a disk round trip. */
  private recent: Array<{ position: number; data: Buffer }> = [];
  private recentBytes = 0;
  private readonly controller = new AbortController();
  /** When the first body byte of the current attempt arrived (for the rate), and how many since. */
  private bodyStartedAt: number | null = null;
  private bodyBytes = 0;
  /** cutAt() moved `end` down and the bytes up to it are written: the request was ended on purpose. */
  private cutReached = false;
  /** A bandwidth limit made it wait: its rate is the limit's, not the upstream's. */
  private paced = false;

  constructor(
    private readonly host: TransferHost,
    readonly entryId: string,
    readonly version: number,
    readonly filePath: string,
    readonly chunkIndex: number,
    private current: Priority,
    readonly start: number,
    public end: number,
  ) {}

  get priority(): Priority {
    return this.current;
  }

  /** A raise (a reader now wants it) or a fallback: a limit that no longer covers it lets it go at once. */
  set priority(priority: Priority) {
    if (priority === this.current) return;
    this.current = priority;
    this.host.options.bandwidth?.priorityChanged(this);
  }

  /** True while it may have an upstream request open: what the concurrency limit counts. */
  get takesSlot(): boolean {
    return this.phase === 'receiving' && this.stopReason === null;
  }

  /** Asks the transfer to stop; a stronger reason replaces a weaker one. Idempotent. */
  stop(reason: StopReason): void {
    const next = strongerStop(this.stopReason, reason);
    if (next === this.stopReason) return;
    const wasSlot = this.takesSlot;
    this.stopReason = next;
    this.controller.abort();
    if (wasSlot) this.host.onSlotFreed(this);
  }

  snapshot(): TransferSnapshot {
    const { entryId, chunkIndex, version, priority, start, end, written, received } = this;
    const bytesPerSecond = Math.round((this.bytesPerMs() ?? 0) * 1000);
    return { entryId, chunkIndex, version, priority, start, end, written, received, stopping: this.stopReason, bytesPerSecond };
  }

  /** Bytes per millisecond of the current attempt's body so far, when enough has arrived to tell. */
  bytesPerMs(): number | null {
    if (this.bodyStartedAt === null || this.bodyBytes < 64 * 1024) return null;
    const ms = performance.now() - this.bodyStartedAt;
    return ms >= 5 ? this.bodyBytes / ms : null;
  }

  /**
   * Ends the transfer at `position` (exclusive) instead of its planned end: a split at a seek hands
   * the rest to another transfer. False when it already received past that point.
   */
  cutAt(position: number): boolean {
    if (position <= this.start + this.received || position > this.end) return false;
    this.end = position - 1;
    return true;
  }

  /** Bytes at `position` (up to `end`) received but maybe not yet written, from memory. */
  recentBytesAt(position: number, end: number): Buffer | undefined {
    for (const piece of this.recent) {
      const offset = position - piece.position;
      if (offset >= 0 && offset < piece.data.length) {
        return piece.data.subarray(offset, Math.min(piece.data.length, end - piece.position + 1));
      }
    }
    return undefined;
  }

  /** Runs the download to its one outcome. Never rejects. `entry`: the row as just read by the caller. */
  async run(entry?: EntryRow): Promise<TransferResult> {
    try {
      return await this.attempts(entry);
    } catch (err) {
      return { outcome: 'failed', error: err };
    } finally {
      this.recent = [];
      this.recentBytes = 0;
      if (this.phase === 'receiving') {
        const wasSlot = this.takesSlot;
        this.phase = 'committing';
        if (wasSlot) this.host.onSlotFreed(this);
      }
    }
  }

  private async attempts(first: EntryRow | undefined): Promise<TransferResult> {
    const { repo } = this.host;
    const { retry, bandwidth } = this.host.options;
    const signal = this.controller.signal;
    for (let attempt = 1; ; attempt++) {
      // Re-read per retry: a new URL for the same key (rotated token) applies at once.
      let entry = attempt === 1 && first ? first : repo.getEntry(this.entryId);
      if (!entry || entry.version !== this.version) return { outcome: 'invalidated' };
      try {
        // A piece that arrived but was never written is fetched again: forget it.
        if (this.unwritten > 0) await this.flushWrites();
        this.received = this.written;
        this.bodyStartedAt = null;
        this.bodyBytes = 0;
        this.recent = this.recent.filter((p) => p.position + p.data.length <= this.start + this.written);
        const sentAt = performance.now();
        this.recentBytes = this.recent.reduce((sum, p) => sum + p.data.length, 0);
        await this.host.downloader.fetchRange({
          url: entry.originalUrl,
          start: this.start + this.written,
          end: this.end,
          validator: ifRangeValidator(entry.etag, entry.lastModified),
          signal,
          pace: bandwidth && ((bytes) => this.pace(bandwidth, bytes, signal)),
          onMetadata: (meta) => {
            this.host.upstream.noteFirstByte(performance.now() - sentAt);
            entry = this.host.acceptMetadata(this, entry as EntryRow, meta);
            this.end = Math.min(this.end, meta.totalSize - 1);
          },
          onWholeBody: () => {
            if (!this.host.claimWholeBody(this)) {
              this.stop('cancelled'); // another transfer streams the whole body already
              throw new MediaCacheError(ErrorCodes.ABORTED, 'the whole body is already being fetched');
            }
            this.whole = { written: 0, nextChunk: 0 };
          },
          onData: (position, data) => (this.whole ? this.onWholeData(entry as EntryRow, position, data) : this.onData(position, data)),
        });
        await this.flushWrites(true);
        this.noteRate();
        return await this.commit(true);
      } catch (err) {
        // Nothing is decided (kept, retried, recorded) while a write of this attempt is under way.
        await this.flushWrites();
        // A write that failed (a full disk) fails the transfer even when a stop came after it:
        // readers served from memory may have moved on, and the entry must still record it.
        if (this.writeError !== undefined && this.stopReason !== 'shutdown' && this.stopReason !== 'invalidated') {
          return { outcome: 'failed', error: this.writeError };
        }
        // Cut at a seek: the request was aborted on purpose once the new end was written.
        if (this.cutReached && !this.stopReason) return await this.commit(true);
        if (this.stopReason) return await this.commit(false);
        if (isMediaCacheError(err, ErrorCodes.UPSTREAM_CHANGED)) return { outcome: 'invalidated', upstreamChanged: true };
        if (this.whole) return { outcome: 'failed', error: err };
        const transient = isMediaCacheError(err) ? err.transient : false;
        if (!transient || attempt >= retry.attempts) return { outcome: 'failed', error: err };
        try {
          repo.incrementRetry(this.entryId, this.chunkIndex);
        } catch {
          // only a counter for diagnostics: a busy database must not fail the download
        }
        try {
          await sleep(backoffDelay(attempt, retry), undefined, { signal: this.controller.signal });
        } catch {
          return await this.commit(false);
        }
      }
    }
  }

  private async onData(position: number, piece: Buffer): Promise<void> {
    if (this.writeError !== undefined) throw this.writeError; // the disk failed: stop reading
    this.bodyStartedAt ??= performance.now();
    this.bodyBytes += piece.length;
    // Past a cut (a split at a seek): only the bytes up to the new end are this transfer's.
    const data = position + piece.length - 1 > this.end ? piece.subarray(0, Math.max(0, this.end - position + 1)) : piece;
    if (data.length === 0) {
      await this.flushWrites(true);
      return this.endAtCut();
    }
    // Readers get the piece from memory now, not after the disk write (first byte sooner).
    this.recent.push({ position, data });
    this.recentBytes += data.length;
    while (this.recentBytes > RECENT_BYTES && this.recent.length > 1) this.recentBytes -= this.recent.shift()?.data.length ?? 0;
    this.received += data.length;
    this.host.onProgress(this, data.length);
    // The write runs while the next piece arrives; the reply is read on only while few bytes wait.
    // An idle chain starts on the next turn of the loop: the readers this piece woke send it first.
    const idle = this.unwritten === 0;
    this.unwritten += data.length;
    const before = idle ? new Promise<void>((resolve) => setImmediate(resolve)) : this.writes;
    this.writes = before.then(() => this.writePiece(position, data));
    const cut = data.length < piece.length;
    if (cut || this.unwritten > MAX_UNWRITTEN) await this.flushWrites(true);
    if (cut && this.start + this.written > this.end) this.endAtCut();
  }

  /** One piece into the file, in order after the ones before it; a failure stops further writes. */
  private async writePiece(position: number, data: Buffer): Promise<void> {
    try {
      if (this.writeError === undefined) {
        await this.host.store.write(this.filePath, position, data);
        this.crc = crc32(data, this.crc);
        this.written += data.length;
      }
    } catch (err) {
      this.writeError = err;
    } finally {
      this.unwritten -= data.length;
    }
  }

  /** Waits for every write under way; `rethrow`: a failed one fails the attempt. */
  private async flushWrites(rethrow = false): Promise<void> {
    await this.writes;
    if (rethrow && this.writeError !== undefined) throw this.writeError;
  }

  /** Everything up to the cut is written: end the upstream request (the rest is another transfer's). */
  private endAtCut(): void {
    this.cutReached = true;
    this.noteRate();
    this.controller.abort();
  }

  /** Waits while a bandwidth limit holds this transfer back. */
  private pace(bandwidth: Pacer, bytes: number, signal: AbortSignal): Promise<void> | undefined {
    const wait = bandwidth.pace(this, bytes, signal);
    if (wait) this.paced = true;
    return wait;
  }

  /** A body's rate tells the upstream's speed, unless a limit held the transfer back. */
  private noteRate(): void {
    const rate = this.bytesPerMs();
    if (rate !== null && !this.paced) this.host.upstream.noteRate(rate);
  }

  /**
   * One piece of a whole-body download (the upstream ignores Range): written at its position,
   * and every chunk it completes is recorded (only its gaps), each after an fsync, with the
   * CRC-32 of the bytes as they sit in the file, and only while this version is current.
   */
  private async onWholeData(entry: EntryRow, position: number, data: Buffer): Promise<void> {
    const whole = this.whole as { written: number; nextChunk: number };
    const { store, repo } = this.host;
    await store.write(this.filePath, position, data);
    whole.written = position + data.length;
    this.host.onProgress(this, data.length);
    const total = entry.expectedTotalSize ?? 0;
    while (whole.nextChunk * entry.chunkSize < total) {
      const { last } = chunkBounds(entry, whole.nextChunk);
      if (whole.written <= last) break;
      await store.sync(this.filePath);
      for (let gap = gapFrom(repo, entry, whole.nextChunk, 0); gap; gap = gapFrom(repo, entry, whole.nextChunk, 0)) {
        const bytes = await store.read(this.filePath, gap.start, gap.end - gap.start + 1);
        const row = { start: gap.start, end: gap.end, checksum: crc32(bytes), downloadedAt: Date.now() };
        if (!(await this.record(null, row))) {
          this.stop('invalidated');
          throw new MediaCacheError(ErrorCodes.ABORTED, 'version no longer current');
        }
      }
      repo.dequeue(this.entryId, whole.nextChunk);
      whole.nextChunk++;
    }
  }

  /**
   * Records what was written. A body received whole is 'stored' (the chunk leaves the queue),
   * whatever stop came after it; a stopped one keeps its prefix only when its reason allows.
   */
  private async commit(completed: boolean): Promise<TransferResult> {
    const wasSlot = this.takesSlot;
    this.phase = 'committing';
    if (wasSlot) this.host.onSlotFreed(this);
    const outcome: DownloadOutcome = completed ? 'stored' : (this.stopReason ?? 'stored');
    if (this.whole) return { outcome: this.stopReason === 'invalidated' ? 'invalidated' : outcome };
    if ((!completed && !keepsPrefix(this.stopReason)) || this.written === 0) return { outcome };
    try {
      await this.host.store.sync(this.filePath);
    } catch (err) {
      return { outcome: 'failed', error: err };
    }
    const row: ChunkRow = { start: this.start, end: this.start + this.written - 1, checksum: this.crc, downloadedAt: Date.now() };
    // Only a finished chunk leaves the queue (and only when no other half of a split still runs);
    // a cut-off one stays for its remainder.
    const dequeue = completed && this.host.isSoleTransfer(this);
    if (!(await this.record(dequeue ? this.chunkIndex : null, row))) return { outcome: 'invalidated' };
    return { outcome };
  }

  /** recordChunk, retried while the database is busy; false when the version moved on. */
  private async record(chunkIndex: number | null, row: ChunkRow): Promise<boolean> {
    const { repo, verifier } = this.host;
    if (!(await retryWhileBusy(() => repo.recordChunk(this.entryId, this.version, chunkIndex, row)))) return false;
    await verifier.noteWritten(this.filePath, row.start);
    this.host.onRecorded(this, row);
    return true;
  }
}
