import type { CacheRepository } from '../db/repository.js';
import { asError, type CoreEvents } from '../events.js';
import { deriveState, type EntryState } from '../state/entry-state.js';
import type { EntryCounters } from '../stats/entry-counters.js';

/**
 * `state-changed` events: an entry's state is derived from its rows after a change was
 * committed, and announced only when it differs from the last one announced. The same facts keep
 * the maintained counters (entries by state, stored bytes) true.
 */
export class StateEvents {
  private readonly last = new Map<string, EntryState>();

  constructor(
    private readonly repo: CacheRepository,
    private readonly events: CoreEvents,
    private readonly counters?: EntryCounters,
  ) {}

  /** Derives the entry's state and emits it if it changed; a database failure is only reported. */
  check(entryId: string): void {
    try {
      const facts = this.repo.entryFacts(entryId);
      if (facts) this.counters?.update(facts);
      else this.counters?.remove(entryId);
      const state = deriveState(facts);
      if (this.last.get(entryId) === state) return;
      this.last.set(entryId, state);
      this.events.emit('state-changed', { entryId, state });
    } catch (err) {
      this.events.emit('background-error', { error: asError(err) });
    }
  }

  forget(entryId: string): void {
    this.last.delete(entryId);
    this.counters?.remove(entryId);
  }
}
