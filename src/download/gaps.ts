import type { CacheRepository, EntryRow } from '../db/repository.js';
import { chunkBounds } from '../model/geometry.js';

/**
 * The first gap (not stored) of chunk `index` at or after byte `from`, inclusive; null if none.
 * A version whose size is not known yet has no rows (they are recorded only after its first reply
 * set the size, and a new version drops the old rows in the transaction that clears the size), so
 * a cold entry costs no query here: this runs twice on every cold request's way to the upstream.
 */
export function gapFrom(repo: CacheRepository, entry: EntryRow, index: number, from: number): { start: number; end: number } | null {
  const { first, last } = chunkBounds(entry, index);
  let pos = Math.max(first, from);
  if (pos > last) return null;
  if (entry.expectedTotalSize === null) return { start: pos, end: last };
  for (const row of repo.chunksIn(entry.id, pos, last)) {
    if (row.start > pos) return { start: pos, end: row.start - 1 };
    pos = Math.max(pos, row.end + 1);
  }
  return pos <= last ? { start: pos, end: last } : null;
}

/** First byte of chunk `index` that is not stored, or null when the whole chunk is. */
export function missingStart(repo: CacheRepository, entry: EntryRow, index: number): number | null {
  return gapFrom(repo, entry, index, 0)?.start ?? null;
}
