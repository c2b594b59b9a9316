import type { CacheRepository, EntryRow, Priority } from '../db/repository.js';
import { ErrorCodes, MediaCacheError } from '../errors.js';
import type { UpstreamMetadata } from './downloader.js';
import type { QueueWork } from './queue-work.js';
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

/** What follows a version's first reply needs from the scheduler. */
export interface FirstReplyHost {
  readonly queue: QueueWork;
  readonly isClosed: boolean;
  /** Wakes the readers waiting on the entry. */
  wake(entryId: string): void;
  raise(entry: EntryRow, index: number, priority: Priority, now: number): void;
  emitState(entryId: string): void;
  pump(): void;
  report(err: unknown): void;
}

/**
 * After the reply that set a version's size. Readers wake with the first body piece (it came with
 * the headers and is read right after the reply's callback): waking them at the headers made them
 * look twice, and the piece wait behind their first look; a reply without a body wakes them a
 * moment later. The opening work (a dozen writes, a request) and the state event come in the next
 * callback of the same turn: microtasks run between the two, so the first bytes are on their way
 * first, and a reader cannot have left yet (its release takes its chunk's opening request with it).
 * `background`: the reply came to a pre-cache's transfer, not a reader's.
 */
export function afterFirstReply(host: FirstReplyHost, entry: EntryRow, background: boolean): void {
  setImmediate(() => host.wake(entry.id));
  setImmediate(() => {
    if (host.isClosed) return;
    try {
      host.queue.queueOpening(entry, (e, i, p, now) => host.raise(e, i, p, now), background);
    } catch (err) {
      host.report(err);
    }
    host.emitState(entry.id);
    host.pump();
  });
}
