import type { EntryFacts, EntryRow, ListedFacts, Priority, QueueRow } from './repository.js';

/** Rows as SQLite gives them, and their mapping to the repository's plain data. */

/** An entry's identity columns, in the order both row shapes below read them. */
type IdentityColumns = [sourceId: string | null, mediaId: string | null, quality: string | null, originalUrl: string];
/** Its state and bookkeeping columns, likewise. */
type StateColumns = [
  isComplete: number,
  errorMessage: string | null,
  createdAt: number,
  lastAccessed: number,
  accessCount: number,
  pinned: number,
  pinHeadBytes: number | null,
  bitrate: number | null,
  version: number,
];
type CountedColumns = [storedBytes: number, chunkRows: number, pendingChunks: number];

/**
 * A facts row as an array (better-sqlite3's raw mode): building plain objects in JS costs a third
 * of letting the driver build named-column objects, which is most of a page of 500 (issue 13).
 * The order is ENTRY_COLUMNS' (then the three counted columns).
 */
export type EntryTuple = [
  id: string,
  cacheKey: string,
  ...IdentityColumns,
  filePath: string,
  chunkSize: number,
  expectedTotalSize: number | null,
  mimeType: string | null,
  etag: string | null,
  lastModified: string | null,
  ...StateColumns,
];
export type FactsTuple = [...EntryTuple, ...CountedColumns];
export const ENTRY_COLUMNS = `id, cache_key, source_id, media_id, quality, original_url, file_path, chunk_size,
  expected_total_size, mime_type, etag, last_modified, is_complete, error_message, created_at, last_accessed,
  access_count, pinned, pin_head_bytes, bitrate, version`;
const FACTS_COLUMNS = `${ENTRY_COLUMNS}, stored_bytes, chunk_rows, pending_chunks`;

/** A listed row (LISTED_COLUMNS' order): FactsTuple without cache_key, file_path, etag and last_modified. */
export type ListedTuple = [
  id: string,
  ...IdentityColumns,
  chunkSize: number,
  expectedTotalSize: number | null,
  mimeType: string | null,
  ...StateColumns,
  ...CountedColumns,
];
const LISTED_COLUMNS = `id, source_id, media_id, quality, original_url, chunk_size, expected_total_size, mime_type,
  is_complete, error_message, created_at, last_accessed, access_count, pinned, pin_head_bytes, bitrate, version,
  stored_bytes, chunk_rows, pending_chunks`;

export interface QueueDbRow {
  cache_entry_id: string;
  chunk_index: number;
  priority: number;
  status: 'queued' | 'downloading';
  retry_count: number;
  created_at: number;
}

export const toEntry = (r: EntryTuple | FactsTuple): EntryRow => ({
  id: r[0],
  cacheKey: r[1],
  sourceId: r[2],
  mediaId: r[3],
  quality: r[4],
  originalUrl: r[5],
  filePath: r[6],
  chunkSize: r[7],
  expectedTotalSize: r[8],
  mimeType: r[9],
  etag: r[10],
  lastModified: r[11],
  isComplete: r[12] === 1,
  errorMessage: r[13],
  createdAt: r[14],
  lastAccessed: r[15],
  accessCount: r[16],
  pinned: r[17] === 1,
  pinHeadBytes: r[18],
  bitrate: r[19],
  version: r[20],
});

export const toFacts = (r: FactsTuple): EntryFacts => ({ entry: toEntry(r), storedBytes: r[21], chunkRows: r[22], pendingChunks: r[23] });

export const toListed = (r: ListedTuple): ListedFacts => ({
  entry: {
    id: r[0],
    sourceId: r[1],
    mediaId: r[2],
    quality: r[3],
    originalUrl: r[4],
    chunkSize: r[5],
    expectedTotalSize: r[6],
    mimeType: r[7],
    isComplete: r[8] === 1,
    errorMessage: r[9],
    createdAt: r[10],
    lastAccessed: r[11],
    accessCount: r[12],
    pinned: r[13] === 1,
    pinHeadBytes: r[14],
    bitrate: r[15],
    version: r[16],
  },
  storedBytes: r[17],
  chunkRows: r[18],
  pendingChunks: r[19],
});

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
export const LISTED_SELECT = `SELECT ${LISTED_COLUMNS} FROM cache_entries e`;
