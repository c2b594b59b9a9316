import { Priority, type CacheRepository, type EntryRow } from '../db/repository.js';
import { chunkCount, missingChunks } from '../model/geometry.js';
import { coalesceRanges } from '../state/entry-state.js';
import { openingPlan, type BackgroundFill } from '../policy/scheduling.js';

type Raise = (entry: EntryRow, index: number, priority: Priority, now: number) => void;

/**
 * Queue work that is not about one transfer: the opening plan once a size is known, a
 * pre-cache's rows, background fill, and where a reader that seeked into a chunk wants its
 * download to begin.
 */
export class QueueWork {
  /** `${entryId}:${chunkIndex}` → the byte a seek wants the chunk's download to start at. */
  readonly seekStarts = new Map<string, number>();
  /** Entries a player has read like playback (in memory: their LOW rows persist across restarts). */
  private readonly played = new Set<string>();

  constructor(
    private readonly repo: CacheRepository,
    readonly fill: BackgroundFill,
  ) {}

  /** Whether the entry's missing chunks are fetched in the background. */
  fills(entryId: string): boolean {
    return this.fill === 'always' || (this.fill === 'played' && this.played.has(entryId));
  }

  /**
   * A player read the entry like playback: under `played` it is filled from now on. True the first
   * time: the caller queues its missing chunks at LOW.
   */
  markPlayed(entry: EntryRow): boolean {
    if (this.fill !== 'played' || this.played.has(entry.id)) return false;
    this.played.add(entry.id);
    return true;
  }

  /** True while a pre-cache of the entry has MEDIUM rows queued. */
  isPrefetching(entryId: string): boolean {
    return this.repo.queueFor(entryId).some((r) => r.priority === Priority.MEDIUM);
  }

  /**
   * Once the size is known: head and tail at HIGH, the rest as openingPlan() says. Opened by
   * background work (a pre-cache nobody plays yet), head and tail are background work too: at
   * HIGH they would pass `--limit-rate` (a reader raises what it needs when it comes).
   * `prefetching`: whether a pre-cache was under way when the size came (its first row may be
   * stored and gone by now); looked up when not given.
   */
  queueOpening(entry: EntryRow, raise: Raise, background = false, prefetching?: boolean): void {
    const current = this.repo.getEntry(entry.id);
    if (!current || current.version !== entry.version) return;
    const plan = openingPlan(chunkCount(current), prefetching ?? this.isPrefetching(entry.id), this.fills(entry.id));
    // One millisecond earlier than readers' lookahead, so head and tail sort before it.
    const early = Date.now() - 1;
    if (!background) for (const index of plan.high) raise(current, index, Priority.HIGH, early);
    if (plan.rest !== null) this.enqueueMissing(current, plan.rest);
  }

  /** Queues every missing chunk at `priority`; returns how many. */
  enqueueMissing(entry: EntryRow, priority: Priority): number {
    if (entry.expectedTotalSize === null) {
      this.repo.enqueue(entry.id, 0, priority, Date.now());
      return 1;
    }
    const missing = missingChunks(entry, coalesceRanges(this.repo.listChunks(entry.id)));
    this.repo.enqueueMany(entry.id, missing, priority, Date.now());
    return missing.length;
  }

  /** The entry is removed or changed version: it has to be played again to be filled. */
  forget(entryId: string): void {
    this.played.delete(entryId);
    this.forgetSeeks(entryId);
  }

  forgetSeeks(entryId: string): void {
    for (const k of this.seekStarts.keys()) if (k.startsWith(`${entryId}:`)) this.seekStarts.delete(k);
  }
}
