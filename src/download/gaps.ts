import type { CacheRepository, EntryRow } from '../db/repository.js';
import { chunkBounds } from '../model/geometry.js';

/** The first gap (not stored) of chunk `index` at or after byte `from`, inclusive; null if none. */
export function gapFrom(repo: CacheRepository, entry: EntryRow, index: number, from: number): { start: number; end: number } | null {
  const { first, last } = chunkBounds(entry, index);
  let pos = Math.max(first, from);
  if (pos > last) return null;
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
