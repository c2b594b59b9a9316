import { Priority, type CacheRepository, type EntryRow } from '../db/repository.js';
import { chunkCount, missingChunks } from '../model/geometry.js';
import { coalesceRanges } from '../state/entry-state.js';
import { openingPlan, type BackgroundFill } from '../policy/scheduling.js';
import type { DemandRegistry } from './demand.js';
import type { Transfer } from './transfer.js';

export type Raise = (entry: EntryRow, index: number, priority: Priority, now: number) => void;

/** What the opening plan depends on, taken when a version's first reply came. */
export interface OpeningState {
  prefetching: boolean;
  /** Pauses of the entry's pre-cache so far. */
  pauses: number;
}

/**
 * The opening work (head and tail chunks) comes this long after a version's first reply: its
 * writes and requests would share the link, the upstream and this process with the first bytes a
 * player waits for, and a player asks for the tail itself only after reading the head (a round trip).
 */
export const OPENING_AFTER_MS = 5;

/**
 * The opening's raise after transfer `t` got the first reply: a reader gone by then (a probe) takes
 * its own chunk's opening request with it, as its release did when the opening came first.
 */
export function openingRaise(t: Transfer, demand: DemandRegistry, raise: Raise): Raise {
  const readersChunk = t.priority <= Priority.HIGH ? t.chunkIndex : -1;
  return (e, i, p, now) => void (i !== readersChunk || demand.wants(e.id, i) ? raise(e, i, p, now) : undefined);
}

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
  /** Pre-cache pauses per entry (in memory; only an opening under way compares them). */
  private readonly pauses = new Map<string, number>();

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
   * Whether a pre-cache was under way when a version's first reply came: queueOpening() runs a few
   * milliseconds later, when the pre-cache's first row may be gone (stored) — or paused.
   */
  openingState(entryId: string): OpeningState | undefined {
    try {
      return { prefetching: this.isPrefetching(entryId), pauses: this.pauses.get(entryId) ?? 0 };
    } catch {
      return undefined; // a busy database: queueOpening() looks again when it runs
    }
  }

  /** A pre-cache was paused: an opening decided before it does not queue its rest. */
  notePaused(entryId: string): void {
    this.pauses.set(entryId, (this.pauses.get(entryId) ?? 0) + 1);
  }

  /**
   * Once the size is known: head and tail at HIGH, the rest as openingPlan() says. Opened by
   * background work (a pre-cache nobody plays yet), head and tail are background work too: at
   * HIGH they would pass `--limit-rate` (a reader raises what it needs when it comes).
   */
  queueOpening(entry: EntryRow, raise: Raise, background = false, state?: OpeningState): void {
    const current = this.repo.getEntry(entry.id);
    if (!current || current.version !== entry.version) return;
    const taken = state ?? { prefetching: this.isPrefetching(entry.id), pauses: this.pauses.get(entry.id) ?? 0 };
    const prefetching = taken.prefetching && (this.pauses.get(entry.id) ?? 0) === taken.pauses;
    const plan = openingPlan(chunkCount(current), prefetching, this.fills(entry.id));
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
    this.pauses.delete(entryId);
    this.forgetSeeks(entryId);
  }

  forgetSeeks(entryId: string): void {
    for (const k of this.seekStarts.keys()) if (k.startsWith(`${entryId}:`)) this.seekStarts.delete(k);
  }
}
