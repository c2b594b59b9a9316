/**
 * The data dirs of rows 10–14 (bench/scale.ts): the players' entries filled through a proxy, and
 * generated entries and chunk rows written straight into SQLite.
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Upstream } from '../test/helpers/upstream.js';
import { fixtureFile, startProxyChild, timeBody } from './lib.js';

const MiB = 1024 * 1024;
export const PLAYERS = 5;
/** Chunk size of the generated entries. */
const GEN_CHUNK = MiB;
/** Chunks of a generated entry (its last one short): complete entries have this many rows. */
const GEN_CHUNKS = 20;

/** A stream id like the proxy's (22 base64url characters, never a leading '-'), deterministic. */
function genId(i: number): string {
  const id = createHash('sha256').update(`mediacache-bench-entry-${i}`).digest().subarray(0, 16).toString('base64url');
  return id.startsWith('-') ? `A${id.slice(1)}` : id;
}

/**
 * Inserts `count` generated entries and exactly `rowBudget` chunk rows: every 4th entry complete
 * (GEN_CHUNKS rows), the others share the rest (their first chunks and the tail chunk, as a player's
 * opening leaves them). Version 1, file `<id>.v1.bin` (absent), 1 MiB chunks, sizes set.
 */
export function generate(dbFile: string, count: number, rowBudget: number): void {
  const db = new Database(dbFile);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  const insEntry = db.prepare(
    `INSERT INTO cache_entries (id, cache_key, original_url, file_path, chunk_size, expected_total_size, mime_type, etag,
       is_complete, created_at, last_accessed, access_count, version)
     VALUES (?, ?, ?, ?, ?, ?, 'video/x-matroska', ?, ?, ?, ?, ?, 1)`,
  );
  const insChunk = db.prepare(
    'INSERT INTO cache_chunks (cache_entry_id, start_byte, end_byte, checksum, downloaded_at, version) VALUES (?, ?, ?, ?, ?, 1)',
  );
  const complete = Math.ceil(count / 4);
  const partial = count - complete;
  const spare = rowBudget - complete * GEN_CHUNKS;
  if (spare < partial || spare > partial * (GEN_CHUNKS - 1)) throw new Error(`cannot spread ${rowBudget} rows over ${count} entries`);
  const now = Date.now();
  const start = now - count * 60_000;
  let j = 0; // partial entries so far
  const batch = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const id = genId(i);
      const url = `http://127.0.0.1:9/library/show-${i % 500}/episode-${i}.mkv`;
      const size = (GEN_CHUNKS - 1) * GEN_CHUNK + 1 + ((i * 7919) % (GEN_CHUNK - 1));
      const isComplete = i % 4 === 0;
      let rows = GEN_CHUNKS;
      if (!isComplete) {
        rows = Math.floor(((j + 1) * spare) / partial) - Math.floor((j * spare) / partial);
        j++;
      }
      const createdAt = start + i * 60_000;
      insEntry.run(
        id,
        JSON.stringify(['url', url]),
        url,
        `${id}.v1.bin`,
        GEN_CHUNK,
        size,
        `"e${i}"`,
        isComplete ? 1 : 0,
        createdAt,
        createdAt + ((i * 7_777) % 86_400_000),
        i % 7,
      );
      // Partial: chunks 0 … rows-2 and the tail chunk.
      const chunks = isComplete ? [...Array(GEN_CHUNKS).keys()] : [...Array(rows - 1).keys(), GEN_CHUNKS - 1];
      for (const c of chunks) {
        insChunk.run(id, c * GEN_CHUNK, Math.min((c + 1) * GEN_CHUNK, size) - 1, (i * 31 + c) >>> 0, createdAt);
      }
    }
  });
  for (let i = 0; i < count; i += 10_000) batch(i, Math.min(count, i + 10_000));
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

export function countRows(dbFile: string): { entries: number; chunkRows: number } {
  const db = new Database(dbFile, { readonly: true });
  try {
    const one = (sql: string): number => (db.prepare(sql).pluck().get() as number) ?? 0;
    return { entries: one('SELECT COUNT(*) FROM cache_entries'), chunkRows: one('SELECT COUNT(*) FROM cache_chunks') };
  } finally {
    db.close();
  }
}

/** Fills the players' entries through a proxy at full upstream speed; returns their stream paths. */
export async function fillReal(up: Upstream, dir: string, size: number): Promise<string[]> {
  const file = fixtureFile('scale', size, 13);
  const saved = { ...up.options };
  up.options.bytesPerSecond = undefined;
  up.options.latencyMs = 0;
  const proxy = await startProxyChild(dir);
  try {
    const ids: string[] = [];
    const paths: string[] = [];
    for (let k = 0; k < PLAYERS; k++) {
      const p = `/scale/player-${k}.mkv`;
      up.setFileFromDisk(p, file, { contentType: 'video/x-matroska' });
      const entry = await proxy.add(up.url(p));
      // One full play stores every byte it reads (row 4 checks a replay fetches nothing).
      const played = await timeBody(entry.streamUrl);
      if (played.bytes !== size) throw new Error(`player entry: played ${played.bytes} of ${size} bytes`);
      ids.push(entry.id);
      paths.push(new URL(entry.streamUrl).pathname);
    }
    const until = performance.now() + 120_000;
    for (const id of ids) {
      for (;;) {
        const e = await proxy.entry(id);
        if (e.totalBytes !== null && e.downloadedBytes >= e.totalBytes) break;
        if (performance.now() > until) throw new Error(`player entry not complete: ${JSON.stringify(e)}`);
        await sleep(100);
      }
    }
    return paths;
  } finally {
    await proxy.stop();
    Object.assign(up.options, saved);
  }
}

/** The real entries' database and files, copied (not linked: each proxy owns its files). */
export function copyDataDir(from: string, to: string): void {
  for (const f of ['cache.db', 'cache.db-wal']) if (existsSync(path.join(from, f))) copyFileSync(path.join(from, f), path.join(to, f));
  mkdirSync(path.join(to, 'files'), { recursive: true });
  for (const f of readdirSync(path.join(from, 'files'))) copyFileSync(path.join(from, 'files', f), path.join(to, 'files', f));
}
