/** Download priorities: lower is more urgent (this is also the SQL sort order). */
export const Priority = { CRITICAL: 0, HIGH: 1, MEDIUM: 2, LOW: 3 } as const;
export type Priority = (typeof Priority)[keyof typeof Priority];

export interface EntryRow {
  id: string;
  cacheKey: string;
  sourceId: string | null;
  mediaId: string | null;
  quality: string | null;
  originalUrl: string;
  filePath: string;
  chunkSize: number;
  expectedTotalSize: number | null;
  mimeType: string | null;
  etag: string | null;
  lastModified: string | null;
  isComplete: boolean;
  errorMessage: string | null;
  createdAt: number;
  lastAccessed: number;
  accessCount: number;
  /** Never evicted (all of it, or with pinHeadBytes only the head and the tail chunk). */
  pinned: boolean;
  /** Head pin: bytes from the start kept; null pins the whole entry. Set only when pinned. */
  pinHeadBytes: number | null;
  /** The media's bitrate in bits per second, when the caller knows it. */
  bitrate: number | null;
  /** The current version: bumped when the upstream file changes; its bytes live in `filePath`. */
  version: number;
}

/** A stored byte range, `end` inclusive. */
export interface ChunkRow {
  start: number;
  end: number;
  checksum: number;
  downloadedAt: number;
}

export interface QueueRow {
  entryId: string;
  chunkIndex: number;
  priority: Priority;
  status: 'queued' | 'downloading';
  retryCount: number;
  createdAt: number;
}

/** What the state of an entry is derived from: one row per entry, straight from the tables. */
export interface EntryFacts {
  entry: EntryRow;
  storedBytes: number;
  chunkRows: number;
  pendingChunks: number;
}

/** An entry as a listing reads it: the row without the columns only downloads and verify use. */
export type ListedEntry = Omit<EntryRow, 'cacheKey' | 'filePath' | 'etag' | 'lastModified'>;
/** EntryFacts with a ListedEntry: what pages of entries and the start-up count read. */
export interface ListedFacts extends Omit<EntryFacts, 'entry'> {
  entry: ListedEntry;
}

/** Where a page of entries starts: after this (created_at, id). */
export interface EntryCursor {
  createdAt: number;
  id: string;
}

export interface EntriesPageQuery {
  limit: number;
  after: EntryCursor | null;
  pinned?: boolean;
  q?: string;
}

/** A slice of a page written as JSON by the database (src/db/summary-json.ts). */
export interface ListedJsonSlice {
  /** The rows' summaries as JSON objects joined by commas; empty when no row matched. */
  json: Buffer;
  /** Per row, in order: id, URL as stored, created_at, and 1 when `json` is exactly the JS rendering of it. */
  rows: Array<[id: string, url: string, createdAt: number, exact: 0 | 1]>;
}

export interface LastAccessCursor {
  lastAccessed: number;
  createdAt: number;
  id: string;
}

export interface EntryMetadata {
  expectedTotalSize: number;
  mimeType: string | null;
  etag: string | null;
  lastModified: string | null;
}

export type NewEntry = Omit<
  EntryRow,
  | 'isComplete'
  | 'errorMessage'
  | 'accessCount'
  | 'expectedTotalSize'
  | 'mimeType'
  | 'etag'
  | 'lastModified'
  | 'pinned'
  | 'pinHeadBytes'
  | 'version'
>;

/**
 * The only code that speaks SQL. Everything above it passes plain rows. The interface is
 * synchronous because better-sqlite3 is, and the hot path (one indexed lookup per stored range)
 * profits from it; a PostgreSQL implementation would sit behind an async twin of this interface.
 */
export interface CacheRepository {
  insertEntry(entry: NewEntry): EntryRow;
  getEntry(id: string): EntryRow | undefined;
  findEntryByKey(cacheKey: string): EntryRow | undefined;
  listEntries(): EntryRow[];
  updateEntryUrl(id: string, url: string): void;
  setEntryBitrate(id: string, bitrate: number | null): void;
  /** Sets size and validators learnt from the first reply of `version`; false when that is no longer current or already known. */
  setEntryMetadata(id: string, version: number, meta: EntryMetadata): boolean;
  setEntryError(id: string, message: string | null): void;
  touchEntry(id: string, now: number): void;
  deleteEntry(id: string): boolean;

  entryFacts(id: string): EntryFacts | undefined;
  allEntryFacts(): EntryFacts[];
  /**
   * A page of entries with their facts, in (created_at, id) order after `after` (exclusive), with
   * optional filters: pinned, and `q` matched as a substring of the URL, source, media or quality.
   * One indexed range scan: a page costs the same with 10 entries or 100,000.
   */
  entriesPage(query: EntriesPageQuery): EntryFacts[];
  /**
   * entriesPage() with the listed columns only: a quarter fewer values for the driver to convert,
   * which is most of what a page of 500 costs in the database (issue 13).
   */
  listedPage(query: EntriesPageQuery): ListedFacts[];
  /**
   * listedPage()'s rows as the API lists them, written as JSON by SQLite (a third of the main
   * thread's time per page), with `streamUrl` = `streamBase` + id. Exact for idle entries with a
   * plain URL; the caller renders the others (see ListedJsonSlice.rows).
   */
  listedJsonPage(query: EntriesPageQuery, streamBase: string): ListedJsonSlice;
  /** Entries in eviction order (last_accessed, created_at, id) after `after`: passes walk it in slices. */
  entriesByLastAccessPage(after: LastAccessCursor | null, limit: number): EntryFacts[];

  /** The stored row of `version` covering `position` (one indexed lookup: the stream path). */
  chunkCovering(id: string, version: number, position: number): ChunkRow | undefined;
  chunksIn(id: string, start: number, end: number): ChunkRow[];
  listChunks(id: string): ChunkRow[];
  /**
   * In one transaction: checks that `version` is still the entry's current one, records the
   * stored bytes, drops the chunk's queue row (when given) and marks the entry complete when it
   * is. False, with nothing written, when the version is no longer current.
   */
  recordChunk(id: string, version: number, chunkIndex: number | null, chunk: ChunkRow): boolean;
  /**
   * The upstream file changed: if `fromVersion` is still current, one transaction drops every
   * row and queued chunk, forgets size and validators, and makes version + 1 current with its
   * own file `nextFile`. Returns the entry as it is afterwards (unchanged when another caller
   * already moved it on), or undefined when it is gone.
   */
  newVersion(id: string, fromVersion: number, nextFile: (version: number) => string): EntryRow | undefined;

  enqueue(id: string, chunkIndex: number, priority: Priority, now: number): void;
  /** enqueue() for many chunks in one transaction (one commit, not one per row). */
  enqueueMany(id: string, chunkIndexes: readonly number[], priority: Priority, now: number): void;
  setQueuePriority(id: string, chunkIndex: number, priority: Priority): void;
  dequeue(id: string, chunkIndex: number): void;
  dequeueEntry(id: string): void;
  getQueueRow(id: string, chunkIndex: number): QueueRow | undefined;
  queueFor(id: string): QueueRow[];
  nextQueued(): QueueRow | undefined;
  setQueueStatus(id: string, chunkIndex: number, status: QueueRow['status']): void;
  incrementRetry(id: string, chunkIndex: number): number;
  /** After a restart nothing is downloading: every claimed row goes back to the queue. Returns the entries whose rows did. */
  requeueDownloading(): string[];

  /** Pins (headBytes null: all of it) or unpins an entry. */
  setEntryPin(id: string, pinned: boolean, headBytes: number | null): void;
  /** Ids of the `limit` most recently accessed entries, most recent first (what a dashboard opens with; one index scan). */
  recentEntryIds(limit: number): string[];
  /** Entries, least recently accessed first: the eviction order. */
  entriesByLastAccess(): EntryFacts[];
  /** Entries with queued or running work at `priority` or more urgent (e.g. a pre-cache). */
  entriesQueuedAtOrAbove(priority: Priority): Set<string>;
  /**
   * Eviction: drops the stored ranges lying inside the given inclusive spans and the complete
   * mark, in one transaction. Returns the bytes the dropped rows covered.
   */
  evictChunks(id: string, spans: ReadonlyArray<readonly [number, number]>): number;
  /** Drops queued (not running) rows at `priority` or less urgent; returns how many. */
  dequeueAtOrBelow(id: string, priority: Priority): number;

  /** Persisted counters, by name. */
  readStats(): Record<string, number>;
  /** Adds to persisted counters (creating them at 0). */
  addStats(deltas: Readonly<Record<string, number>>): void;

  close(): void;
}
