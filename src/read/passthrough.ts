import type { EntryRow } from '../db/repository.js';
import { ifRangeValidator, type Downloader } from '../download/downloader.js';
import { ErrorCodes, MediaCacheError } from '../errors.js';

/**
 * Streams bytes [start, end] of an entry straight from the upstream, bypassing the store: the
 * last resort when the cache cannot write (disk full). If-Range keeps the version the same.
 */
export async function passthrough(
  downloader: Downloader,
  entry: EntryRow,
  range: { start: number; end: number },
  signal: AbortSignal,
  onData: (data: Buffer) => Promise<void>,
): Promise<void> {
  await downloader.fetchRange({
    url: entry.originalUrl,
    start: range.start,
    end: range.end,
    validator: ifRangeValidator(entry.etag, entry.lastModified),
    signal,
    onMetadata: (meta) => {
      if (entry.expectedTotalSize !== null && meta.totalSize !== entry.expectedTotalSize) {
        throw new MediaCacheError(ErrorCodes.UPSTREAM_CHANGED, 'upstream file changed (size differs)');
      }
    },
    onData: (_position, data) => onData(data),
  });
}
