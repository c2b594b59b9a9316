import { Priority, type CacheRepository, type EntryRow } from '../db/repository.js';
import { retryWhileBusy } from '../db/busy-retry.js';
import { chunkOf } from '../model/geometry.js';
import { priorityWithoutReaders, shouldSplit } from '../policy/scheduling.js';
import type { DemandHandle, DemandRegistry } from './demand.js';
import { missingStart } from './gaps.js';
import type { QueueWork } from './queue-work.js';
import type { Transfer } from './transfer.js';

/** What readers' demand needs of the scheduler. */
export interface DemandTarget {
  readonly queue: QueueWork;
  transfersOfChunk(entry: EntryRow, index: number): readonly Transfer[];
  transferAt(entry: EntryRow, position: number): Transfer | undefined;
  /** The upstream's measured first-byte time and rate. */
  readonly upstream: { firstByteMs: number | null; bytesPerMs: number | null };
  /** Starts the CRITICAL second half of a split now. */
  launchSplit(entry: EntryRow, index: number, start: number, end: number): void;
  transfersOf(entryId: string): Transfer[];
  wholeBodyOf(entry: EntryRow): Transfer | undefined;
  raise(entry: EntryRow, index: number, priority: Priority): void;
  enqueueMissing(entry: EntryRow, priority: Priority): number;
  pump(): void;
  report(err: unknown): void;
}

/**
 * Turns readers' demand into queue work: the chunk at a reader CRITICAL, its lookahead HIGH,
 * and what nobody reads any more downgraded or cancelled. The handle is always changed first
 * (memory only, cannot throw); the database work after it may fail and is retried or reported,
 * so no count is ever stranded.
 */
export class ReaderDemand {
  constructor(
    private readonly repo: CacheRepository,
    private readonly demand: DemandRegistry,
    private readonly core: DemandTarget,
  ) {}

  /** A reader read the entry like playback: under `--background-fill played` its gaps are queued at LOW. */
  played(entry: EntryRow): void {
    try {
      if (this.core.queue.markPlayed(entry)) this.core.enqueueMissing(entry, Priority.LOW);
    } catch (err) {
      this.core.report(err); // background work only: the read goes on
    }
  }

  open(entryId: string): DemandHandle {
    return this.demand.open(entryId);
  }

  /**
   * Sets what one reader wants: `critical` at CRITICAL, `lookahead` at HIGH. The handle is
   * changed first (memory only); the queue work after it may throw (a busy database), and the
   * reader's close() still releases exactly what the handle holds.
   */
  want(handle: DemandHandle, entry: EntryRow, critical: number, lookahead: readonly number[], position: number): void {
    const dropped = handle.set([critical, ...lookahead], position);
    let raised = false;
    for (const index of [critical, ...lookahead]) {
      // Stored chunks (every chunk of a complete entry) need no queue work: a cached read costs
      // no statement here. A chunk dropped later is queued from the reader's wait (ensureQueued).
      if (entry.isComplete || missingStart(this.repo, entry, index) === null) continue;
      if (index === critical) {
        const running = this.core.transfersOfChunk(entry, critical).some((t) => !t.stopReason);
        if (!running) this.core.queue.seekStarts.set(`${entry.id}:${critical}`, position);
      }
      this.core.raise(entry, index, index === critical ? Priority.CRITICAL : Priority.HIGH);
      raised = true;
    }
    this.downgrade(entry.id, dropped);
    if (raised) this.core.pump();
  }

  /** A reader waits at `position`: make sure its chunk is being fetched (a scrub may have dropped it). */
  ensureQueued(entry: EntryRow, position: number): void {
    const index = chunkOf(position, entry.chunkSize);
    // Ahead of a transfer in the same chunk: a new request at the reader may beat waiting for it.
    if (this.split(entry, position)) return;
    if (this.core.transfersOfChunk(entry, index).length > 0 || this.core.wholeBodyOf(entry)) return;
    if (missingStart(this.repo, entry, index) === null) return;
    this.core.queue.seekStarts.set(`${entry.id}:${index}`, position);
    this.core.raise(entry, index, Priority.CRITICAL);
    this.core.pump();
  }

  /** A reader is done: its demand goes, and work nobody else wants is downgraded or cancelled. */
  release(handle: DemandHandle): void {
    const held = handle.release();
    if (held.length === 0) return;
    retryWhileBusy(() => this.downgrade(handle.entryId, held)).catch((err: unknown) => this.core.report(err));
  }

  private downgrade(entryId: string, indexes: readonly number[]): void {
    let prefetching: boolean | undefined;
    let changed = false;
    for (const index of indexes) {
      if (this.demand.wants(entryId, index)) continue;
      const row = this.repo.getQueueRow(entryId, index);
      if (!row || row.priority > Priority.HIGH) continue;
      changed = true;
      prefetching ??= this.core.queue.isPrefetching(entryId);
      const fallback = priorityWithoutReaders(prefetching, this.core.queue.fills(entryId));
      // Both halves of a split chunk: stopping only one left the other fetching for nobody.
      const running = this.core.transfersOf(entryId).filter((t) => t.chunkIndex === index);
      if (fallback !== null) {
        this.repo.setQueuePriority(entryId, index, fallback);
        for (const t of running) t.priority = fallback;
      } else if (running.length > 0) {
        for (const t of running) t.stop('cancelled');
      } else {
        this.repo.dequeue(entryId, index);
      }
    }
    if (changed) this.core.pump();
  }

  /**
   * A reader waits at `position`, ahead of a transfer running in the same chunk. When that
   * transfer would take longer to get there than a new request takes to answer (shouldSplit), it
   * is cut at `position` (it keeps what it fetched) and a CRITICAL transfer starts there for the
   * rest of its range: no byte is fetched twice, and the two rows join up. True when it split.
   */
  private split(entry: EntryRow, position: number): boolean {
    const t = this.core.transferAt(entry, position);
    if (!t || t.whole || t.stopReason || t.phase !== 'receiving' || position <= t.start + t.received) return false;
    const { upstream } = this.core;
    const distance = position - (t.start + t.received);
    if (!shouldSplit({ distance, bytesPerMs: t.bytesPerMs() ?? upstream.bytesPerMs, firstByteMs: upstream.firstByteMs })) return false;
    const end = t.end;
    if (!t.cutAt(position)) return false;
    this.core.launchSplit(entry, t.chunkIndex, position, end);
    return true;
  }
}
