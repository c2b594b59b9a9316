import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { CacheRepository, ListedFacts } from '../db/repository.js';
import { deriveState, EntryState } from '../state/entry-state.js';

/** Entries a start-up slice reads before it yields to the event loop. */
const LOAD_SLICE = 500;

export interface EntryTotals {
  entries: number;
  byState: Record<EntryState, number>;
  storedBytes: number;
  /** False until the start-up scan has read every entry (the figures then only grow toward the truth). */
  complete: boolean;
}

/**
 * Entry counts by state and stored bytes, maintained as entries change (the core reports each
 * entry it touched), so a metrics scrape or `GET /api/stats` costs the same with 10 entries or
 * 100,000. At start-up the figures are read once, in slices that yield, after the server listens.
 */
export class EntryCounters {
  private readonly byEntry = new Map<string, { state: EntryState; stored: number }>();
  private readonly byState = new Map<EntryState, number>();
  private stored = 0;
  private loaded = false;

  /** The entry's current facts (after a committed change). */
  update(facts: ListedFacts): void {
    const state = deriveState(facts);
    this.remove(facts.entry.id);
    this.byEntry.set(facts.entry.id, { state, stored: facts.storedBytes });
    this.byState.set(state, (this.byState.get(state) ?? 0) + 1);
    this.stored += facts.storedBytes;
  }

  remove(entryId: string): void {
    const old = this.byEntry.get(entryId);
    if (!old) return;
    this.byEntry.delete(entryId);
    this.byState.set(old.state, (this.byState.get(old.state) ?? 1) - 1);
    this.stored -= old.stored;
  }

  totals(): EntryTotals {
    const byState = Object.fromEntries(Object.values(EntryState).map((s) => [s, this.byState.get(s) ?? 0])) as Record<EntryState, number>;
    return { entries: this.byEntry.size, byState, storedBytes: this.stored, complete: this.loaded };
  }

  /**
   * Reads every entry once, a slice at a time. Entries the core reported meanwhile are read again
   * here or were already fresher: either way each slice is one synchronous read of current rows.
   */
  async load(repo: CacheRepository, signal?: AbortSignal): Promise<void> {
    let after = null;
    for (;;) {
      if (signal?.aborted) return;
      const page = repo.listedPage({ limit: LOAD_SLICE, after });
      for (const facts of page) this.update(facts);
      const last = page[page.length - 1];
      if (!last || page.length < LOAD_SLICE) break;
      after = { createdAt: last.entry.createdAt, id: last.entry.id };
      await yieldToLoop();
    }
    this.loaded = true;
  }
}
