/**
 * Versioned migrations, applied in order inside one transaction each; `PRAGMA user_version`
 * records how far a database has come. Never edit a shipped migration: append a new one.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: the three tables of the cache.
  `
  CREATE TABLE cache_entries (
    id                  TEXT PRIMARY KEY,          -- 128-bit random, base64url: unguessable stream ids
    cache_key           TEXT NOT NULL UNIQUE,      -- (source, media, quality) or the URL: see cacheKeyOf()
    source_id           TEXT,
    media_id            TEXT,
    quality             TEXT,
    original_url        TEXT NOT NULL,             -- latest URL seen for the key (tokens rotate)
    file_path           TEXT NOT NULL,             -- sparse file, relative to the data dir
    chunk_size          INTEGER NOT NULL,          -- fixed per entry, so a changed --chunk-size keeps old data valid
    expected_total_size INTEGER,                   -- NULL until the first upstream reply tells it
    mime_type           TEXT,
    etag                TEXT,
    last_modified       TEXT,
    is_complete         INTEGER NOT NULL DEFAULT 0,
    error_message       TEXT,
    created_at          INTEGER NOT NULL,
    last_accessed       INTEGER NOT NULL,
    access_count        INTEGER NOT NULL DEFAULT 0
  ) STRICT;

  CREATE TABLE cache_chunks (
    cache_entry_id TEXT NOT NULL REFERENCES cache_entries(id) ON DELETE CASCADE,
    start_byte     INTEGER NOT NULL,
    end_byte       INTEGER NOT NULL,                 -- inclusive
    checksum       INTEGER NOT NULL,                 -- CRC-32 of the bytes [start_byte, end_byte]
    downloaded_at  INTEGER NOT NULL,
    PRIMARY KEY (cache_entry_id, start_byte),
    CHECK (end_byte >= start_byte)
  ) STRICT, WITHOUT ROWID;

  CREATE TABLE cache_download_queue (
    cache_entry_id TEXT NOT NULL REFERENCES cache_entries(id) ON DELETE CASCADE,
    chunk_index    INTEGER NOT NULL,
    priority       INTEGER NOT NULL,                 -- 0 CRITICAL, 1 HIGH, 2 MEDIUM, 3 LOW
    status         TEXT NOT NULL DEFAULT 'queued',   -- 'queued' | 'downloading'
    retry_count    INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (cache_entry_id, chunk_index),
    CHECK (status IN ('queued', 'downloading'))
  ) STRICT, WITHOUT ROWID;

  CREATE INDEX cache_download_queue_next ON cache_download_queue (status, priority, created_at);
  CREATE INDEX cache_entries_last_accessed ON cache_entries (last_accessed);
  `,
  // 2: pinning (never evicted; a head pin keeps only the first N bytes and the tail chunk) and
  // persisted statistics, so totals survive restarts.
  `
  ALTER TABLE cache_entries ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE cache_entries ADD COLUMN pin_head_bytes INTEGER;  -- NULL: the whole entry is pinned

  CREATE TABLE cache_stats (
    name  TEXT PRIMARY KEY,                         -- hits, misses, bytesFromCache, ...
    value INTEGER NOT NULL DEFAULT 0
  ) STRICT, WITHOUT ROWID;
  `,
  // 3: the media's bitrate when the caller knows it (media servers do), so lookahead can be
  // sized in seconds of playback rather than in chunks.
  `
  ALTER TABLE cache_entries ADD COLUMN bitrate INTEGER;  -- bits per second; NULL when unknown
  `,
  // 4: versions. An entry's bytes of one upstream version live in their own file; a change of
  // version is one transaction (rows and queue dropped, version bumped, a new file named), and a
  // transfer records its row only if its version is still current. Existing files are version 1.
  `
  ALTER TABLE cache_entries ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
  ALTER TABLE cache_chunks ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
  `,
  // 5: listing in pages: (created_at, id) is the stable order of GET /api/entries; eviction walks
  // (last_accessed, created_at, id) in slices.
  `
  CREATE INDEX cache_entries_created ON cache_entries (created_at, id);
  CREATE INDEX cache_entries_lru ON cache_entries (last_accessed, created_at, id);
  `,
  // 6: an entry's stored bytes, chunk rows and queued chunks, kept by triggers in the same
  // transaction as the rows they count: a page of 500 entries reads 500 rows instead of summing
  // 5,000 chunk rows (issue 13: 7 ms -> 3 ms a page at 100,000 entries). The tables stay the
  // truth; the columns cannot drift because no statement can change a row without its trigger.
  `
  ALTER TABLE cache_entries ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE cache_entries ADD COLUMN chunk_rows INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE cache_entries ADD COLUMN pending_chunks INTEGER NOT NULL DEFAULT 0;
  UPDATE cache_entries SET
    stored_bytes = COALESCE((SELECT SUM(end_byte - start_byte + 1) FROM cache_chunks c WHERE c.cache_entry_id = cache_entries.id), 0),
    chunk_rows = (SELECT COUNT(*) FROM cache_chunks c WHERE c.cache_entry_id = cache_entries.id),
    pending_chunks = (SELECT COUNT(*) FROM cache_download_queue q WHERE q.cache_entry_id = cache_entries.id);

  CREATE TRIGGER cache_chunks_added AFTER INSERT ON cache_chunks BEGIN
    UPDATE cache_entries SET stored_bytes = stored_bytes + (NEW.end_byte - NEW.start_byte + 1), chunk_rows = chunk_rows + 1
      WHERE id = NEW.cache_entry_id;
  END;
  CREATE TRIGGER cache_chunks_removed AFTER DELETE ON cache_chunks BEGIN
    UPDATE cache_entries SET stored_bytes = stored_bytes - (OLD.end_byte - OLD.start_byte + 1), chunk_rows = chunk_rows - 1
      WHERE id = OLD.cache_entry_id;
  END;
  CREATE TRIGGER cache_chunks_changed AFTER UPDATE OF cache_entry_id, start_byte, end_byte ON cache_chunks BEGIN
    UPDATE cache_entries SET stored_bytes = stored_bytes - (OLD.end_byte - OLD.start_byte + 1), chunk_rows = chunk_rows - 1
      WHERE id = OLD.cache_entry_id;
    UPDATE cache_entries SET stored_bytes = stored_bytes + (NEW.end_byte - NEW.start_byte + 1), chunk_rows = chunk_rows + 1
      WHERE id = NEW.cache_entry_id;
  END;
  CREATE TRIGGER cache_queue_added AFTER INSERT ON cache_download_queue BEGIN
    UPDATE cache_entries SET pending_chunks = pending_chunks + 1 WHERE id = NEW.cache_entry_id;
  END;
  CREATE TRIGGER cache_queue_removed AFTER DELETE ON cache_download_queue BEGIN
    UPDATE cache_entries SET pending_chunks = pending_chunks - 1 WHERE id = OLD.cache_entry_id;
  END;
  CREATE TRIGGER cache_queue_moved AFTER UPDATE OF cache_entry_id ON cache_download_queue BEGIN
    UPDATE cache_entries SET pending_chunks = pending_chunks - 1 WHERE id = OLD.cache_entry_id;
    UPDATE cache_entries SET pending_chunks = pending_chunks + 1 WHERE id = NEW.cache_entry_id;
  END;
  `,
];
