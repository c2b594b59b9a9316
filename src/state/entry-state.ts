import type { ListedFacts } from '../db/repository.js';

export const EntryState = {
  NotStarted: 'NotStarted',
  Initializing: 'Initializing',
  Downloading: 'Downloading',
  Paused: 'Paused',
  Complete: 'Complete',
  Failed: 'Failed',
} as const;
export type EntryState = (typeof EntryState)[keyof typeof EntryState];

/**
 * The state of an entry, derived from its rows alone (never kept in memory), so it is the same
 * before and after a restart. Order matters: an error outranks everything, then completeness.
 */
export function deriveState(facts: ListedFacts | undefined): EntryState {
  if (!facts) return EntryState.NotStarted;
  const { entry, storedBytes, chunkRows, pendingChunks } = facts;
  if (entry.errorMessage !== null) return EntryState.Failed;
  const total = entry.expectedTotalSize;
  if (entry.isComplete || (total !== null && storedBytes >= total)) return EntryState.Complete;
  if (chunkRows === 0 && pendingChunks === 0) return EntryState.NotStarted;
  if (total === null) return EntryState.Initializing;
  if (pendingChunks > 0) return EntryState.Downloading;
  return EntryState.Paused;
}

/** Coalesces sorted inclusive ranges that touch or overlap, for display and availability maps. */
export function coalesceRanges(ranges: ReadonlyArray<{ start: number; end: number }>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const { start, end } of ranges) {
    const last = out[out.length - 1];
    if (last && start <= last[1] + 1) last[1] = Math.max(last[1], end);
    else out.push([start, end]);
  }
  return out;
}
