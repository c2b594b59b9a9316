import type { EntryFacts, EntryRow, Priority, QueueRow } from './repository.js';

/** Rows as SQLite gives them, and their mapping to the repository's plain data. */

export interface EntryDbRow {
  id: string;
  cache_key: string;
  source_id: string | null;
  media_id: string | null;
  quality: string | null;
  original_url: string;
  file_path: string;
  chunk_size: number;
  expected_total_size: number | null;
  mime_type: string | null;
  etag: string | null;
  last_modified: string | null;
  is_complete: number;
  error_message: string | null;
  created_at: number;
  last_accessed: number;
  access_count: number;
  pinned: number;
  pin_head_bytes: number | null;
  bitrate: number | null;
  version: number;
}

/**
 * A facts row as an array (better-sqlite3's raw mode): building plain objects in JS costs a third
 * of letting the driver build named-column objects, which is most of a page of 500 (issue 13).
 * The order is FACTS_COLUMNS'.
 */
export type FactsTuple = [
  id: string,
  cacheKey: string,
  sourceId: string | null,
  mediaId: string | null,
  quality: string | null,
  originalUrl: string,
  filePath: string,
  chunkSize: number,
  expectedTotalSize: number | null,
  mimeType: string | null,
  etag: string | null,
  lastModified: string | null,
  isComplete: number,
  errorMessage: string | null,
  createdAt: number,
  lastAccessed: number,
  accessCount: number,
  pinned: number,
  pinHeadBytes: number | null,
  bitrate: number | null,
  version: number,
  storedBytes: number,
  chunkRows: number,
  pendingChunks: number,
];
export const FACTS_COLUMNS = `id, cache_key, source_id, media_id, quality, original_url, file_path, chunk_size,
  expected_total_size, mime_type, etag, last_modified, is_complete, error_message, created_at, last_accessed,
  access_count, pinned, pin_head_bytes, bitrate, version, stored_bytes, chunk_rows, pending_chunks`;

export interface QueueDbRow {
  cache_entry_id: string;
  chunk_index: number;
  priority: number;
  status: 'queued' | 'downloading';
  retry_count: number;
  created_at: number;
}

export const toEntry = (r: EntryDbRow): EntryRow => ({
  id: r.id,
  cacheKey: r.cache_key,
  sourceId: r.source_id,
  mediaId: r.media_id,
  quality: r.quality,
  originalUrl: r.original_url,
  filePath: r.file_path,
  chunkSize: r.chunk_size,
  expectedTotalSize: r.expected_total_size,
  mimeType: r.mime_type,
  etag: r.etag,
  lastModified: r.last_modified,
  isComplete: r.is_complete === 1,
  errorMessage: r.error_message,
  createdAt: r.created_at,
  lastAccessed: r.last_accessed,
  accessCount: r.access_count,
  pinned: r.pinned === 1,
  pinHeadBytes: r.pin_head_bytes,
  bitrate: r.bitrate,
  version: r.version,
});

export const toFacts = (r: FactsTuple): EntryFacts => {
  const [
    id,
    cacheKey,
    sourceId,
    mediaId,
    quality,
    originalUrl,
    filePath,
    chunkSize,
    expectedTotalSize,
    mimeType,
    etag,
    lastModified,
    isComplete,
    errorMessage,
    createdAt,
    lastAccessed,
    accessCount,
    pinned,
    pinHeadBytes,
    bitrate,
    version,
    storedBytes,
    chunkRows,
    pendingChunks,
  ] = r;
  const entry: EntryRow = {
    id,
    cacheKey,
    sourceId,
    mediaId,
    quality,
    originalUrl,
    filePath,
    chunkSize,
    expectedTotalSize,
    mimeType,
    etag,
    lastModified,
    isComplete: isComplete === 1,
    errorMessage,
    createdAt,
    lastAccessed,
    accessCount,
    pinned: pinned === 1,
    pinHeadBytes,
    bitrate,
    version,
  };
  return { entry, storedBytes, chunkRows, pendingChunks };
};

export const toQueue = (r: QueueDbRow): QueueRow => ({
  entryId: r.cache_entry_id,
  chunkIndex: r.chunk_index,
  priority: r.priority as Priority,
  status: r.status,
  retryCount: r.retry_count,
  createdAt: r.created_at,
});

export const CHUNK_COLUMNS = 'start_byte AS start, end_byte AS end, checksum, downloaded_at AS downloadedAt';
// stored_bytes, chunk_rows and pending_chunks are kept by triggers (migration 6): one row per entry.
export const FACTS_SELECT = `SELECT ${FACTS_COLUMNS} FROM cache_entries e`;
