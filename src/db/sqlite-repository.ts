import Database from 'better-sqlite3';
import { MIGRATIONS } from './schema.js';
import { summaryJsonSql } from './summary-json.js';
import { redactUrl } from '../entry-input.js';
import { ErrorCodes, MediaCacheError } from '../errors.js';
import type {
  CacheRepository,
  ChunkRow,
  EntriesPageQuery,
  EntryFacts,
  EntryMetadata,
  EntryRow,
  LastAccessCursor,
  ListedFacts,
  ListedJsonSlice,
  NewEntry,
  Priority,
  QueueRow,
} from './repository.js';
import {
  CHUNK_COLUMNS,
  ENTRY_COLUMNS,
  FACTS_SELECT,
  LISTED_SELECT,
  toEntry,
  toFacts,
  toListed,
  toQueue,
  type EntryTuple,
  type FactsTuple,
  type ListedTuple,
  type QueueDbRow,
} from './rows.js';

type PageParams = { c: number; i: string; pinned: number | null; q: string | null; limit: number };
const PAGE_WHERE = `WHERE (e.created_at, e.id) > (@c, @i)
  AND (@pinned IS NULL OR e.pinned = @pinned)
  AND (@q IS NULL OR instr(fold(redacted(e.original_url)), @q) > 0 OR instr(fold(coalesce(e.source_id, '') || ' ' ||
       coalesce(e.media_id, '') || ' ' || coalesce(e.quality, '')), @q) > 0)
  ORDER BY e.created_at, e.id LIMIT @limit`;
const pageParams = ({ after, limit, pinned, q }: EntriesPageQuery): PageParams => ({
  c: after?.createdAt ?? -1,
  i: after?.id ?? '',
  pinned: pinned === undefined ? null : pinned ? 1 : 0,
  q: q === undefined || q === '' ? null : q.toLowerCase(),
  limit,
});

/** Milliseconds a statement may wait for another connection's lock (on the main thread). */
export const DEFAULT_BUSY_TIMEOUT_MS = 10;

/** Opens (creating if needed) and migrates a SQLite database file. */
export function openDatabase(file: string, busyTimeoutMs = DEFAULT_BUSY_TIMEOUT_MS): Database.Database {
  let db: Database.Database | undefined;
  try {
    db = new Database(file);
    db.pragma('journal_mode = WAL');
    // NORMAL is durable across process crashes in WAL mode; chunk bytes are fsynced before their row.
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
    migrate(db);
  } catch (err) {
    db?.close(); // a corrupt file must not stay open: --reset-db moves it aside and retries
    throw new MediaCacheError(ErrorCodes.DATABASE, `cannot open the cache database ${file}: ${(err as Error).message}`, { cause: err });
  }
  return db;
}

function migrate(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > MIGRATIONS.length) {
    throw new Error(`database schema version ${version} is newer than this mediacache (${MIGRATIONS.length})`);
  }
  for (let v = version; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v] as string);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

/**
 * The SQLite implementation of CacheRepository: every statement prepared once. Rules it keeps:
 * - a chunk row is inserted only inside the transaction that checks its version is current;
 * - a change of version drops the old rows and queue in the same transaction that bumps it;
 * - a busy database fails fast (short busy timeout): better-sqlite3 waits on the main thread,
 *   so a long timeout would freeze every stream. Callers retry asynchronously or answer 503.
 */
export class SqliteRepository implements CacheRepository {
  readonly db: Database.Database;
  // Prepared once: the stream path runs these per request.
  private readonly stmts;

  /** `busyTimeoutMs`: how long a statement waits for another connection's lock before failing. */
  constructor(file: string, busyTimeoutMs?: number) {
    this.db = openDatabase(file, busyTimeoutMs);
    // SQLite's lower() folds ASCII only: `q=amélie` must find `AMÉLIE`, as the caller lowercases in JS.
    this.db.function('fold', { deterministic: true }, (v: unknown) => (typeof v === 'string' ? v.toLowerCase() : null));
    // `q=` searches the URL as listings show it: a search must not reveal a redacted credential.
    this.db.function('redacted', { deterministic: true }, (v: unknown) => (typeof v === 'string' ? redactUrl(v) : null));
    const db = this.db;
    this.stmts = {
      insertEntry: db.prepare(`INSERT INTO cache_entries
        (id, cache_key, source_id, media_id, quality, original_url, file_path, chunk_size, created_at, last_accessed, bitrate)
        VALUES (@id, @cacheKey, @sourceId, @mediaId, @quality, @originalUrl, @filePath, @chunkSize, @createdAt, @lastAccessed, @bitrate)`),
      getEntry: db.prepare<[string], EntryTuple>(`SELECT ${ENTRY_COLUMNS} FROM cache_entries WHERE id = ?`).raw(true),
      findByKey: db.prepare<[string], EntryTuple>(`SELECT ${ENTRY_COLUMNS} FROM cache_entries WHERE cache_key = ?`).raw(true),
      listEntries: db.prepare<[], EntryTuple>(`SELECT ${ENTRY_COLUMNS} FROM cache_entries ORDER BY created_at, id`).raw(true),
      updateUrl: db.prepare('UPDATE cache_entries SET original_url = ? WHERE id = ?'),
      setBitrate: db.prepare('UPDATE cache_entries SET bitrate = ? WHERE id = ?'),
      setMeta: db.prepare(`UPDATE cache_entries SET expected_total_size = @expectedTotalSize,
        mime_type = @mimeType, etag = @etag, last_modified = @lastModified
        WHERE id = @id AND version = @version AND expected_total_size IS NULL`),
      setError: db.prepare('UPDATE cache_entries SET error_message = ? WHERE id = ?'),
      touch: db.prepare('UPDATE cache_entries SET last_accessed = ?, access_count = access_count + 1 WHERE id = ?'),
      deleteEntry: db.prepare('DELETE FROM cache_entries WHERE id = ?'),
      facts: db.prepare<[string], FactsTuple>(`${FACTS_SELECT} WHERE e.id = ?`).raw(true),
      allFacts: db.prepare<[], FactsTuple>(`${FACTS_SELECT} ORDER BY e.created_at, e.id`).raw(true),
      chunkCovering: db.prepare<[string, number], ChunkRow & { version: number }>(`SELECT ${CHUNK_COLUMNS}, version
        FROM cache_chunks WHERE cache_entry_id = ? AND start_byte <= ? ORDER BY start_byte DESC LIMIT 1`),
      chunksIn: db.prepare<[string, number, number], ChunkRow>(`SELECT ${CHUNK_COLUMNS} FROM cache_chunks
        WHERE cache_entry_id = ? AND start_byte <= ? AND end_byte >= ? ORDER BY start_byte`),
      listChunks: db.prepare<[string], ChunkRow>(`SELECT ${CHUNK_COLUMNS} FROM cache_chunks
        WHERE cache_entry_id = ? ORDER BY start_byte`),
      // An upsert, not INSERT OR REPLACE: REPLACE's implicit delete would skip the delete trigger
      // that keeps cache_entries.stored_bytes (migration 6).
      insertChunk: db.prepare(`INSERT INTO cache_chunks
        (cache_entry_id, start_byte, end_byte, checksum, downloaded_at, version) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (cache_entry_id, start_byte) DO UPDATE SET end_byte = excluded.end_byte,
          checksum = excluded.checksum, downloaded_at = excluded.downloaded_at, version = excluded.version`),
      storedBytes: db.prepare<[string], { total: number }>('SELECT stored_bytes AS total FROM cache_entries WHERE id = ?'),
      markComplete: db.prepare('UPDATE cache_entries SET is_complete = 1 WHERE id = ?'),
      deleteChunks: db.prepare('DELETE FROM cache_chunks WHERE cache_entry_id = ?'),
      bumpVersion: db.prepare(`UPDATE cache_entries SET is_complete = 0, expected_total_size = NULL,
        etag = NULL, last_modified = NULL, version = ?, file_path = ? WHERE id = ?`),
      enqueue: db.prepare(`INSERT INTO cache_download_queue (cache_entry_id, chunk_index, priority, created_at)
        VALUES (?, ?, ?, ?)
        ON CONFLICT (cache_entry_id, chunk_index) DO UPDATE SET priority = MIN(priority, excluded.priority)`),
      setPriority: db.prepare('UPDATE cache_download_queue SET priority = ? WHERE cache_entry_id = ? AND chunk_index = ?'),
      dequeue: db.prepare('DELETE FROM cache_download_queue WHERE cache_entry_id = ? AND chunk_index = ?'),
      dequeueEntry: db.prepare('DELETE FROM cache_download_queue WHERE cache_entry_id = ?'),
      getQueueRow: db.prepare<[string, number], QueueDbRow>(`SELECT * FROM cache_download_queue
        WHERE cache_entry_id = ? AND chunk_index = ?`),
      queueFor: db.prepare<[string], QueueDbRow>(`SELECT * FROM cache_download_queue
        WHERE cache_entry_id = ? ORDER BY priority, created_at, chunk_index`),
      nextQueued: db.prepare<[], QueueDbRow>(`SELECT * FROM cache_download_queue
        WHERE status = 'queued' ORDER BY priority, created_at, chunk_index LIMIT 1`),
      setStatus: db.prepare('UPDATE cache_download_queue SET status = ? WHERE cache_entry_id = ? AND chunk_index = ?'),
      incRetry: db.prepare<[string, number], { retry_count: number }>(`UPDATE cache_download_queue
        SET retry_count = retry_count + 1 WHERE cache_entry_id = ? AND chunk_index = ? RETURNING retry_count`),
      requeueDownloading: db.prepare<[], { id: string }>(`UPDATE cache_download_queue SET status = 'queued'
        WHERE status = 'downloading' RETURNING cache_entry_id AS id`),
      setPin: db.prepare('UPDATE cache_entries SET pinned = ?, pin_head_bytes = ? WHERE id = ?'),
      byLastAccess: db.prepare<[], FactsTuple>(`${FACTS_SELECT} ORDER BY e.last_accessed, e.created_at, e.id`).raw(true),
      recentIds: db.prepare<[number], { id: string }>(`SELECT id FROM cache_entries
        ORDER BY last_accessed DESC, created_at DESC, id DESC LIMIT ?`),
      byLastAccessPage: db
        .prepare<[number, number, string, number], FactsTuple>(
          `${FACTS_SELECT}
        WHERE (e.last_accessed, e.created_at, e.id) > (?, ?, ?)
        ORDER BY e.last_accessed, e.created_at, e.id LIMIT ?`,
        )
        .raw(true),
      page: db.prepare<PageParams, FactsTuple>(`${FACTS_SELECT} ${PAGE_WHERE}`).raw(true),
      listedPage: db.prepare<PageParams, ListedTuple>(`${LISTED_SELECT} ${PAGE_WHERE}`).raw(true),
      listedJson: db.prepare<PageParams & { streamBase: string }, [Buffer | null, string]>(summaryJsonSql(PAGE_WHERE)).raw(true),
      queuedAtOrAbove: db.prepare<[number], { id: string }>(`SELECT DISTINCT cache_entry_id AS id
        FROM cache_download_queue WHERE priority <= ?`),
      evictSpan: db.prepare<[string, number, number], { bytes: number }>(`DELETE FROM cache_chunks
        WHERE cache_entry_id = ? AND start_byte >= ? AND end_byte <= ? RETURNING end_byte - start_byte + 1 AS bytes`),
      markIncomplete: db.prepare('UPDATE cache_entries SET is_complete = 0 WHERE id = ?'),
      dequeueAtOrBelow: db.prepare(`DELETE FROM cache_download_queue
        WHERE cache_entry_id = ? AND status = 'queued' AND priority >= ?`),
      readStats: db.prepare<[], { name: string; value: number }>('SELECT name, value FROM cache_stats'),
      addStat: db.prepare(`INSERT INTO cache_stats (name, value) VALUES (?, ?)
        ON CONFLICT (name) DO UPDATE SET value = value + excluded.value`),
    };
    this.recordChunkTx = db.transaction((id: string, version: number, chunkIndex: number | null, c: ChunkRow) => {
      const entry = this.getEntry(id);
      if (!entry || entry.version !== version) return false;
      this.stmts.insertChunk.run(id, c.start, c.end, c.checksum, c.downloadedAt, version);
      if (chunkIndex !== null) this.stmts.dequeue.run(id, chunkIndex);
      const stored = this.stmts.storedBytes.get(id)?.total ?? 0;
      if (entry.expectedTotalSize !== null && stored >= entry.expectedTotalSize) this.stmts.markComplete.run(id);
      return true;
    });
    this.newVersionTx = db.transaction((id: string, fromVersion: number, nextFile: (version: number) => string) => {
      const entry = this.getEntry(id);
      if (!entry || entry.version !== fromVersion) return entry;
      this.stmts.deleteChunks.run(id);
      this.stmts.dequeueEntry.run(id);
      this.stmts.bumpVersion.run(fromVersion + 1, nextFile(fromVersion + 1), id);
      return this.getEntry(id);
    });
  }

  private readonly recordChunkTx: (id: string, version: number, chunkIndex: number | null, c: ChunkRow) => boolean;
  private readonly newVersionTx: (id: string, fromVersion: number, nextFile: (version: number) => string) => EntryRow | undefined;
  private evictTx?: (id: string, spans: ReadonlyArray<readonly [number, number]>) => number;
  private addStatsTx?: (deltas: Readonly<Record<string, number>>) => void;

  insertEntry(entry: NewEntry): EntryRow {
    this.stmts.insertEntry.run(entry);
    return this.getEntry(entry.id) as EntryRow;
  }
  getEntry(id: string): EntryRow | undefined {
    const r = this.stmts.getEntry.get(id);
    return r && toEntry(r);
  }
  findEntryByKey(cacheKey: string): EntryRow | undefined {
    const r = this.stmts.findByKey.get(cacheKey);
    return r && toEntry(r);
  }
  listEntries(): EntryRow[] {
    return this.stmts.listEntries.all().map(toEntry);
  }
  updateEntryUrl(id: string, url: string): void {
    this.stmts.updateUrl.run(url, id);
  }
  setEntryBitrate(id: string, bitrate: number | null): void {
    this.stmts.setBitrate.run(bitrate, id);
  }
  setEntryMetadata(id: string, version: number, meta: EntryMetadata): boolean {
    return this.stmts.setMeta.run({ id, version, ...meta }).changes > 0;
  }
  setEntryError(id: string, message: string | null): void {
    this.stmts.setError.run(message, id);
  }
  touchEntry(id: string, now: number): void {
    this.stmts.touch.run(now, id);
  }
  deleteEntry(id: string): boolean {
    return this.stmts.deleteEntry.run(id).changes > 0;
  }
  entryFacts(id: string): EntryFacts | undefined {
    const r = this.stmts.facts.get(id);
    return r && toFacts(r);
  }
  allEntryFacts(): EntryFacts[] {
    return this.stmts.allFacts.all().map(toFacts);
  }
  chunkCovering(id: string, version: number, position: number): ChunkRow | undefined {
    const c = this.stmts.chunkCovering.get(id, position);
    return c && c.end >= position && c.version === version ? c : undefined;
  }
  chunksIn(id: string, start: number, end: number): ChunkRow[] {
    return this.stmts.chunksIn.all(id, end, start);
  }
  listChunks(id: string): ChunkRow[] {
    return this.stmts.listChunks.all(id);
  }
  recordChunk(id: string, version: number, chunkIndex: number | null, chunk: ChunkRow): boolean {
    return this.recordChunkTx(id, version, chunkIndex, chunk);
  }
  newVersion(id: string, fromVersion: number, nextFile: (version: number) => string): EntryRow | undefined {
    return this.newVersionTx(id, fromVersion, nextFile);
  }
  enqueueMany(id: string, chunkIndexes: readonly number[], priority: Priority, now: number): void {
    this.db.transaction(() => {
      for (const index of chunkIndexes) this.stmts.enqueue.run(id, index, priority, now);
    })();
  }
  enqueue(id: string, chunkIndex: number, priority: Priority, now: number): void {
    this.stmts.enqueue.run(id, chunkIndex, priority, now);
  }
  setQueuePriority(id: string, chunkIndex: number, priority: Priority): void {
    this.stmts.setPriority.run(priority, id, chunkIndex);
  }
  dequeue(id: string, chunkIndex: number): void {
    this.stmts.dequeue.run(id, chunkIndex);
  }
  dequeueEntry(id: string): void {
    this.stmts.dequeueEntry.run(id);
  }
  getQueueRow(id: string, chunkIndex: number): QueueRow | undefined {
    const r = this.stmts.getQueueRow.get(id, chunkIndex);
    return r && toQueue(r);
  }
  queueFor(id: string): QueueRow[] {
    return this.stmts.queueFor.all(id).map(toQueue);
  }
  nextQueued(): QueueRow | undefined {
    const r = this.stmts.nextQueued.get();
    return r && toQueue(r);
  }
  setQueueStatus(id: string, chunkIndex: number, status: QueueRow['status']): void {
    this.stmts.setStatus.run(status, id, chunkIndex);
  }
  incrementRetry(id: string, chunkIndex: number): number {
    return this.stmts.incRetry.get(id, chunkIndex)?.retry_count ?? 0;
  }
  requeueDownloading(): string[] {
    return [...new Set(this.stmts.requeueDownloading.all().map((r) => r.id))];
  }
  setEntryPin(id: string, pinned: boolean, headBytes: number | null): void {
    this.stmts.setPin.run(pinned ? 1 : 0, pinned ? headBytes : null, id);
  }
  entriesPage(query: EntriesPageQuery): EntryFacts[] {
    return this.stmts.page.all(pageParams(query)).map(toFacts);
  }
  listedPage(query: EntriesPageQuery): ListedFacts[] {
    return this.stmts.listedPage.all(pageParams(query)).map(toListed);
  }
  listedJsonPage(query: EntriesPageQuery, streamBase: string): ListedJsonSlice {
    const [json, rows] = this.stmts.listedJson.get({ ...pageParams(query), streamBase }) ?? [null, '[]'];
    return { json: json ?? Buffer.alloc(0), rows: JSON.parse(rows) as ListedJsonSlice['rows'] };
  }
  entriesByLastAccessPage(after: LastAccessCursor | null, limit: number): EntryFacts[] {
    const a = after ?? { lastAccessed: -1, createdAt: -1, id: '' };
    return this.stmts.byLastAccessPage.all(a.lastAccessed, a.createdAt, a.id, limit).map(toFacts);
  }
  recentEntryIds(limit: number): string[] {
    return this.stmts.recentIds.all(limit).map((r) => r.id);
  }
  entriesByLastAccess(): EntryFacts[] {
    return this.stmts.byLastAccess.all().map(toFacts);
  }
  entriesQueuedAtOrAbove(priority: Priority): Set<string> {
    return new Set(this.stmts.queuedAtOrAbove.all(priority).map((r) => r.id));
  }
  evictChunks(id: string, spans: ReadonlyArray<readonly [number, number]>): number {
    this.evictTx ??= this.db.transaction((entryId: string, list: ReadonlyArray<readonly [number, number]>) => {
      let bytes = 0;
      for (const [start, end] of list) {
        for (const r of this.stmts.evictSpan.all(entryId, start, end)) bytes += r.bytes;
      }
      this.stmts.markIncomplete.run(entryId);
      return bytes;
    });
    return this.evictTx(id, spans);
  }
  dequeueAtOrBelow(id: string, priority: Priority): number {
    return this.stmts.dequeueAtOrBelow.run(id, priority).changes;
  }
  readStats(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.stmts.readStats.all()) out[r.name] = r.value;
    return out;
  }
  addStats(deltas: Readonly<Record<string, number>>): void {
    this.addStatsTx ??= this.db.transaction((d: Readonly<Record<string, number>>) => {
      for (const [name, value] of Object.entries(d)) if (value !== 0) this.stmts.addStat.run(name, value);
    });
    this.addStatsTx(deltas);
  }
  close(): void {
    if (this.db.open) this.db.close();
  }
}
