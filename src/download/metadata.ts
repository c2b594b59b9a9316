import type { CacheRepository, EntryRow } from '../db/repository.js';
import { ErrorCodes, MediaCacheError } from '../errors.js';
import type { UpstreamMetadata } from './downloader.js';
import type { Transfer } from './transfer.js';

/**
 * Takes a file's size, type and validators from the first verified reply of a version; a later
 * reply that disagrees (size, ETag) means the upstream file changed: MC_ERR_UPSTREAM_CHANGED.
 * `first` is true for the reply that set them (the opening work is queued once).
 */
export function acceptMetadata(
  repo: CacheRepository,
  t: Transfer,
  entry: EntryRow,
  meta: UpstreamMetadata,
): { entry: EntryRow; first: boolean } {
  if (entry.expectedTotalSize === null) {
    const { totalSize: expectedTotalSize, mimeType, etag, lastModified } = meta;
    const first = repo.setEntryMetadata(entry.id, t.version, { expectedTotalSize, mimeType, etag, lastModified });
    // The update matched this version with no size yet: the row is `entry` with these four set
    // (not read back: this is on the way to a cold request's first byte).
    if (first && entry.version === t.version) return { entry: { ...entry, expectedTotalSize, mimeType, etag, lastModified }, first };
    const updated = repo.getEntry(entry.id);
    if (!updated || updated.version !== t.version) {
      t.stop('invalidated');
      throw new MediaCacheError(ErrorCodes.ABORTED, 'version no longer current');
    }
    if (first) return { entry: updated, first };
    entry = updated; // another transfer's first reply was first: compare with it
  }
  const etagChanged = entry.etag !== null && meta.etag !== null && entry.etag !== meta.etag;
  if (meta.totalSize !== entry.expectedTotalSize || etagChanged) {
    throw new MediaCacheError(ErrorCodes.UPSTREAM_CHANGED, 'upstream file changed (size or ETag differs)');
  }
  return { entry, first: false };
}
