/**
 * Pages of `GET /api/entries` written as JSON by SQLite (src/db/summary-json.ts) are byte for
 * byte what JSON.stringify of the JS summaries gives: the SQL's times and percents against
 * isoTime() and the JS arithmetic over their whole ranges, every state and awkward value (quotes,
 * control characters, emoji, nulls, head pins, zero and unknown sizes) at the repository, the rows
 * the SQL must leave to JS flagged, and whole pages through HTTP with URLs to redact among them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { SqliteRepository } from '../src/db/sqlite-repository.js';
import { SQL_FOR_TESTS } from '../src/db/summary-json.js';
import { Priority, type EntriesPageQuery } from '../src/db/repository.js';
import { isoTime } from '../src/model/iso-time.js';
import { entrySummary } from '../src/status.js';
import { isPlainUrl } from '../src/entry-input.js';
import { fetchBytes, startProxy, tempDir, waitUntil } from './helpers/harness.js';
import { makeData, startUpstream } from './helpers/upstream.js';

const BASE = 'http://127.0.0.1:1/stream/';

test('SQL times are isoTime() and SQL percents are the JS ones, over their ranges', () => {
  const db = new Database(':memory:');
  try {
    const LAST = 253_402_300_799_999;
    const times = [0, 1, 999, 1000, 59_999, 86_399_999, 86_400_000, 951_782_400_000, 4_107_542_399_999, LAST];
    let seed = 7;
    const rand = (): number => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 20_000; i++) times.push(Math.floor(rand() * LAST), 1_700_000_000_000 + Math.floor(rand() * 1e11));
    const sqlTimes = db
      .prepare(`SELECT json_group_array(${SQL_FOR_TESTS.iso('value')}) FROM json_each(?)`)
      .pluck()
      .get(JSON.stringify(times)) as string;
    assert.deepEqual(JSON.parse(sqlTimes), times.map(isoTime));

    // k: hundredths of a percent, as the SQL computes them (up to 100 × the size: `exact` caps there).
    const percents = db
      .prepare(
        `WITH RECURSIVE n(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM n WHERE k < 1000000)
         SELECT json_group_array(${SQL_FOR_TESTS.PERCENT('k')}) FROM n`,
      )
      .pluck()
      .get() as string;
    assert.equal(percents, JSON.stringify(Array.from({ length: 1_000_001 }, (_, k) => k / 100)));
  } finally {
    db.close();
  }
});

/** Inserts an entry with everything given, and `chunks` stored 1 KiB chunks, `queued` queue rows. */
function addEntry(
  repo: SqliteRepository,
  i: number,
  over: { url?: string; sourceId?: string | null; mediaId?: string | null; quality?: string | null; bitrate?: number | null },
  state: {
    total?: number | null;
    chunks?: number;
    queued?: number;
    error?: string | null;
    complete?: boolean;
    pin?: number | null | false;
  },
): string {
  const id = `entry${String(i).padStart(17, '0')}`;
  const url = over.url ?? `http://media.lan:8096/videos/${i}/stream.mkv`;
  repo.insertEntry({
    id,
    cacheKey: `k${i}`,
    sourceId: over.sourceId ?? null,
    mediaId: over.mediaId ?? null,
    quality: over.quality ?? null,
    originalUrl: url,
    filePath: `${id}.v1.bin`,
    chunkSize: 1024,
    createdAt: 1_700_000_000_000 + i * 1_001,
    lastAccessed: 1_700_000_000_000 + i * 7_777,
    bitrate: over.bitrate ?? null,
  });
  if (state.total !== undefined && state.total !== null) {
    repo.setEntryMetadata(id, 1, { expectedTotalSize: state.total, mimeType: i % 2 ? 'video/mp4' : null, etag: null, lastModified: null });
  }
  for (let c = 0; c < (state.chunks ?? 0); c++) {
    const end = Math.min((c + 1) * 1024, state.total ?? Infinity) - 1;
    repo.recordChunk(id, 1, null, { start: c * 1024, end, checksum: c, downloadedAt: 1 });
  }
  for (let q = 0; q < (state.queued ?? 0); q++) repo.enqueue(id, 100 + q, Priority.MEDIUM, 1);
  if (state.error !== undefined) repo.setEntryError(id, state.error);
  if (state.complete) repo.db.prepare('UPDATE cache_entries SET is_complete = 1 WHERE id = ?').run(id);
  if (state.pin !== undefined && state.pin !== false) repo.setEntryPin(id, true, state.pin);
  return id;
}

test('the repository writes every idle entry with a plain URL as the JS does, and flags the rest', () => {
  const dir = tempDir();
  const repo = new SqliteRepository(path.join(dir, 'cache.db'));
  try {
    const odd = 'quote " backslash \\ slash / tab \t newline \n nul-ish \u0001 del \u007f é 😀 \u2028';
    const cases: Array<[Parameters<typeof addEntry>[2], Parameters<typeof addEntry>[3]]> = [
      [{}, {}], // NotStarted
      [
        { sourceId: 'jellyfin', mediaId: odd, quality: '1080p' },
        { total: 10_000, chunks: 3 },
      ], // Paused
      [{ bitrate: 8_000_000 }, { total: 10_000, chunks: 2, queued: 3 }], // Downloading
      [{}, { chunks: 1 }], // Initializing
      [{}, { queued: 1 }], // Initializing, nothing stored
      [{ sourceId: odd }, { total: 3_000, chunks: 3 }], // Complete by size
      [{}, { total: 5_000, chunks: 1, complete: true }], // Complete by mark
      [{}, { total: 0 }], // Complete, empty
      [{}, { total: 10_000, chunks: 2, error: odd }], // Failed
      [{}, { total: 1_000_003, chunks: 7, pin: 4096 }], // head pin, an odd percent
      [{ quality: '' }, { total: 3, chunks: 0, pin: null }], // whole pin
      [{ url: 'http://user:secret@media.lan/a.mkv' }, {}], // to redact (exact in SQL, not plain)
      [{ url: 'HTTP://Media.LAN:80/a.mkv?api_key=s3cret' }, { total: 10 }],
    ];
    const ids = cases.map(([over, state], i) => addEntry(repo, i, over, state));
    // Beyond what the SQL writes exactly: a time before 1970, one past 9999, sizes past 900 GB.
    const flagged = [ids[1], ids[3], ids[5]] as string[];
    const set = repo.db.prepare('UPDATE cache_entries SET created_at = created_at - 1800000000000 WHERE id = ?');
    set.run(flagged[0]);
    repo.db.prepare('UPDATE cache_entries SET last_accessed = 253402300800000 WHERE id = ?').run(flagged[1]);
    repo.db.prepare('UPDATE cache_entries SET expected_total_size = 1000000000000 WHERE id = ?').run(flagged[2]);

    const checked = new Set<string>();
    for (const limit of [1, 2, 5, 500]) {
      for (const pinned of [undefined, true, false]) {
        let after: EntriesPageQuery['after'] = null;
        for (;;) {
          const query: EntriesPageQuery = { limit, after, pinned };
          const { json, rows } = repo.listedJsonPage(query, BASE);
          const facts = repo.listedPage(query);
          assert.deepEqual(
            rows.map(([id]) => id),
            facts.map((f) => f.entry.id),
          );
          const js = facts.map((f) => JSON.stringify({ ...entrySummary(f, [], 0), streamUrl: BASE + f.entry.id }));
          const exact = rows.every(([id, url, , ok]) => ok === 1 && isPlainUrl(url) && !flagged.includes(id));
          if (exact) assert.equal(json.toString(), js.join(','), `limit ${limit} after ${JSON.stringify(after)}`);
          for (const [i, [id, url, createdAt, ok]] of rows.entries()) {
            assert.equal(ok, flagged.includes(id) ? 0 : 1, `exact flag of ${id}`);
            assert.equal(createdAt, facts[i]?.entry.createdAt);
            assert.equal(url, facts[i]?.entry.originalUrl);
            if (rows.length === 1 && ok === 1 && isPlainUrl(url)) checked.add(id);
          }
          const last = rows[rows.length - 1];
          if (!last || rows.length < limit) break;
          after = { createdAt: last[2], id: last[0] };
        }
      }
    }
    // Every entry the SQL may write was compared on its own (limit 1), not only inside a page.
    assert.deepEqual([...checked].sort(), ids.filter((id, i) => !flagged.includes(id) && i < 11).sort());
    const states = new Set(repo.listedPage({ limit: 100, after: null }).map((f) => entrySummary(f, [], 0).state));
    assert.deepEqual([...states].sort(), ['Complete', 'Downloading', 'Failed', 'Initializing', 'NotStarted', 'Paused']);
  } finally {
    repo.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('GET /api/entries pages are the JSON of listPage() with stream URLs, written by SQLite or in JS', async () => {
  const dir = tempDir();
  const repo = new SqliteRepository(path.join(dir, 'cache.db'));
  for (let i = 0; i < 40; i++) {
    // Some URLs carry a token or credentials to redact, or are not in normal form: replaced in the SQL's text.
    let url = i % 7 === 3 ? `http://media.lan/v/${i}.mkv?api_key=secret${i}` : `http://media.lan/v/${i}.mkv`;
    if (i % 13 === 5) url = `http://user:pw@Media.LAN:80/v/${i}.mkv?x="${i}"`;
    addEntry(repo, i, { url, sourceId: i % 3 ? null : `src "${i}"` }, { total: 4_096 + i, chunks: i % 5, pin: i % 11 ? false : null });
  }
  repo.close();
  const proxy = await startProxy({ dataDir: dir });
  try {
    const queries: Array<Record<string, string>> = [
      {},
      { limit: '1' },
      { limit: '6' },
      { limit: '6', pinned: 'false' },
      { limit: '4', q: 'v/1' },
      { limit: '9', state: 'Paused' },
    ];
    for (const params of queries) {
      let cursor: string | null = null;
      let pages = 0;
      do {
        const query: URLSearchParams = new URLSearchParams(cursor === null ? params : { ...params, cursor });
        const res = await fetchBytes(`${proxy.server.url}/api/entries?${query.toString()}`);
        assert.equal(res.status, 200);
        const limit = params.limit === undefined ? undefined : Number(params.limit);
        const page = await proxy.cache.listPage({
          limit,
          pinned: params.pinned === undefined ? undefined : params.pinned === 'true',
          q: params.q,
          state: params.state as 'Paused' | undefined,
          ...(cursor === null ? {} : { cursor }),
        });
        const entries = page.entries.map((e) => ({ ...e, streamUrl: `${proxy.server.url}/stream/${e.id}` }));
        assert.equal(res.body.toString(), JSON.stringify({ entries, next: page.next }), `${query.toString()}`);
        assert.equal(res.headers['content-length'], String(res.body.length));
        cursor = page.next;
        pages++;
      } while (cursor !== null);
      assert.ok(pages >= 1);
    }
  } finally {
    await proxy.close();
  }
});

test('an entry with a transfer running is listed with it: its slice is written in JS', async () => {
  const up = await startUpstream({ bytesPerSecond: 256 * 1024 });
  const proxy = await startProxy();
  try {
    up.setFile('/slow.mkv', makeData(2 * 1024 * 1024, 5));
    await proxy.add(`${up.url('/idle.mkv')}`);
    const { id, streamUrl } = await proxy.add(up.url('/slow.mkv'));
    const reading = fetchBytes(streamUrl);
    await waitUntil(proxy.cache, () => (proxy.cache.getEntry(id)?.downloading.length ?? 0) > 0);
    const res = await fetchBytes(`${proxy.server.url}/api/entries`);
    const page = JSON.parse(res.body.toString()) as { entries: Array<{ id: string; downloading: unknown[]; state: string }> };
    const entry = page.entries.find((e) => e.id === id);
    assert.ok(entry && entry.downloading.length > 0, res.body.toString());
    assert.equal(page.entries.length, 2);
    await proxy.server.close(); // ends the stream
    await reading.catch(() => undefined);
  } finally {
    await proxy.close();
    await up.close();
  }
});
