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
];
