/**
 * Rows 10–14: the index at scale (issue 13). Two data dirs are prepared side by side:
 *
 * - "small": 5 real entries (filled through a proxy over the test upstream, so their files, chunk
 *   rows and CRC-32 checksums are the proxy's own) plus 5 generated ones: 10 entries;
 * - "big": a copy of the same 5 real entries plus generated ones up to `entries` (100,000 in the
 *   full run) and 10 chunk rows per entry on average (1,000,000), written straight into SQLite with
 *   prepared statements in large transactions. Generated entries have no files (nothing reads them).
 *
 * A proxy is started on each the way the other rows start it (`dist/cli.js serve`, its own process)
 * and the same measurements are taken on both; the small one is the baseline column.
 */
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Upstream } from '../test/helpers/upstream.js';
import {
  cpuSecondsOf,
  fixtureFile,
  hasCurl,
  median,
  memoryOf,
  percentile,
  startProxyChild,
  timeBody,
  type ProxyChild,
  type Row,
} from './lib.js';

const MiB = 1024 * 1024;
const PLAYERS = 5;
/** The pager asks for the next page of `GET /api/entries` this often (row 11 and 12's load). */
const PAGE_EVERY_MS = 100;
/** Chunk size of the generated entries. */
const GEN_CHUNK = MiB;
/** Chunks of a generated entry (its last one short): complete entries have this many rows. */
const GEN_CHUNKS = 20;

export interface ScaleSizes {
  entries: number;
  /** Size of each of the 5 players' files. */
  playSize: number;
  /** Load rounds per side (ABBA pairs: short ones follow the machine's other load closely), their length, and the untimed warm-up round's. */
  rounds: number;
  roundMs: number;
  warmUpMs: number;
  /** Timed requests per endpoint (row 10) and timed start-ups per data dir (row 13). */
  scrapeTrials: number;
  starts: number;
  /** How long after the start-up work ends the idle RSS is read (row 14). */
  idleWaitMs: number;
}

export const scaleSizes = (quick: boolean): ScaleSizes =>
  quick
    ? { entries: 2_000, playSize: 16 * MiB, rounds: 2, roundMs: 1_500, warmUpMs: 1_500, scrapeTrials: 5, starts: 2, idleWaitMs: 2_000 }
    : { entries: 100_000, playSize: 64 * MiB, rounds: 8, roundMs: 4_000, warmUpMs: 8_000, scrapeTrials: 9, starts: 3, idleWaitMs: 15_000 };

export const SCALE_ROWS = [10, 11, 12, 13, 14];

interface Side {
  label: string;
  /** The pager's walk through all entries, carried over from round to round. */
  walk: { cursor: string | null; seen: Set<string>; ms: number };
  dir: string;
  entries: number;
  chunkRows: number;
  proxy?: ProxyChild;
  streamUrls: string[];
  startMs: number[];
  /** RSS once the start-up work is done (CPU quiet for 1 s), and `idleWaitMs` later. */
  quietRss: number;
  idleRss: number;
  settleMs: number;
  scrape: Record<string, number[]>;
  rounds: Round[];
  /** The untimed warm-up round: its walk errors count, its figures only go to row 12's data. */
  warmUp?: Round;
}

interface Round {
  seconds: number;
  bytes: number;
  reads: number;
  /** The proxy's own metric per scrape (the first of a round dropped: it covers the idle gap). */
  loopP99: number[];
  loopMax: number[];
  scrapeMs: number[];
  pageMs: number[];
  walks: number;
  walkMs: number[];
  walkErrors: string[];
  /** `mediacache_event_loop_lag_seconds` buckets at the round's first and last scrape. */
  lagFrom: Map<string, number>;
  lagTo: Map<string, number>;
}

const log = (s: string): void => void process.stderr.write(`[bench] ${s}\n`);
const ms = (x: number): string => `${x.toFixed(1)} ms`;
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

/** GET with a keep-alive connection; resolves with status, body and ms until the body's end. */
async function get(url: string): Promise<{ status: number; body: string; ms: number }> {
  const r = await getBytes(url);
  return { ...r, body: r.body.toString('utf8') };
}

function getBytes(url: string): Promise<{ status: number; body: Buffer; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    http
      .get(url, { agent }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts), ms: performance.now() - t0 }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

const ENTRY_START = Buffer.from('{"id":"');
const NEXT_KEY = Buffer.from('"next":');

/**
 * A page's ids and `next`, read from the bytes without JSON.parse: parsing 300 KB cost the bench
 * client ~1.3 ms a page on the cores the players use (~0.3 ms this way), a cost only the big side
 * paid. Exact for this API's pages: every entry object starts with its `id`, and a quote inside a
 * JSON string is always escaped, so `{"id":"` and the last `"next":` occur nowhere else.
 */
export function pageIds(body: Buffer): { ids: string[]; next: string | null } {
  const ids: string[] = [];
  for (let i = body.indexOf(ENTRY_START); i >= 0; i = body.indexOf(ENTRY_START, i + ENTRY_START.length)) {
    const from = i + ENTRY_START.length;
    ids.push(body.toString('latin1', from, body.indexOf('"', from)));
  }
  const at = body.lastIndexOf(NEXT_KEY);
  if (at < 0) throw new Error(`not a page of entries: ${body.toString('utf8', 0, 200)}`);
  return { ids, next: JSON.parse(body.toString('utf8', at + NEXT_KEY.length, body.length - 1)) as string | null };
}

// ---- data dirs ----------------------------------------------------------------------------------

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

function countRows(dbFile: string): { entries: number; chunkRows: number } {
  const db = new Database(dbFile, { readonly: true });
  try {
    const one = (sql: string): number => (db.prepare(sql).pluck().get() as number) ?? 0;
    return { entries: one('SELECT COUNT(*) FROM cache_entries'), chunkRows: one('SELECT COUNT(*) FROM cache_chunks') };
  } finally {
    db.close();
  }
}

/** Fills the players' entries through a proxy at full upstream speed; returns their stream paths. */
async function fillReal(up: Upstream, dir: string, size: number): Promise<string[]> {
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
function copyDataDir(from: string, to: string): void {
  for (const f of ['cache.db', 'cache.db-wal']) if (existsSync(path.join(from, f))) copyFileSync(path.join(from, f), path.join(to, f));
  mkdirSync(path.join(to, 'files'), { recursive: true });
  for (const f of readdirSync(path.join(from, 'files'))) copyFileSync(path.join(from, 'files', f), path.join(to, 'files', f));
}

// ---- measurements -------------------------------------------------------------------------------

/** Spawn to the first `/healthz` 200. */
async function timedStart(side: Side): Promise<ProxyChild> {
  const t0 = performance.now();
  const proxy = await startProxyChild(side.dir);
  for (;;) {
    const t = await timeBody(`${proxy.url}/healthz`).catch(() => null);
    if (t?.status === 200) break;
    await sleep(2);
  }
  side.startMs.push(performance.now() - t0);
  return proxy;
}

/**
 * Waits until the counters have read every entry (`/api/stats` counts them all) and the process
 * has used under 10 ms of CPU per 250 ms for a second; reads its RSS then and `idleWaitMs` later.
 */
async function settle(side: Side, proxy: ProxyChild, idleWaitMs: number): Promise<void> {
  const t0 = performance.now();
  let cpu = cpuSecondsOf(proxy.pid);
  let quietSince = -1;
  for (;;) {
    await sleep(250);
    const stats = JSON.parse((await get(`${proxy.url}/api/stats`)).body) as { entries?: number };
    const now = cpuSecondsOf(proxy.pid);
    const counted = stats.entries === side.entries;
    if (counted && now - cpu < 0.01) {
      if (quietSince < 0) quietSince = performance.now();
      if (performance.now() - quietSince >= 1000) break;
    } else quietSince = -1;
    cpu = now;
    if (performance.now() - t0 > 60_000) throw new Error(`${side.label}: not settled after 60 s (entries ${stats.entries})`);
  }
  side.settleMs = performance.now() - t0;
  side.quietRss = memoryOf(proxy.pid)?.rss ?? NaN;
  // The start-up scan leaves garbage in the old generation that no allocation collects while the
  // process idles; V8's memory reducer collects it ~8 s after activity stops.
  await sleep(idleWaitMs);
  side.idleRss = memoryOf(proxy.pid)?.rss ?? NaN;
}

const ENDPOINTS = ['/metrics', '/api/stats', '/api/entries'];

async function scrapeTimes(side: Side, proxy: ProxyChild, trials: number): Promise<void> {
  for (const e of ENDPOINTS) {
    const times: number[] = [];
    for (let i = -2; i < trials; i++) {
      const r = await get(proxy.url + e);
      if (r.status !== 200) throw new Error(`${side.label} ${e}: ${r.status}`);
      if (i >= 0) times.push(r.ms);
    }
    side.scrape[e] = times;
  }
}

/** One player: reads its whole file with curl (a lean native client) again and again until `deadline`. */
async function player(url: string, deadline: number): Promise<{ bytes: number; reads: number }> {
  let bytes = 0;
  let reads = 0;
  while (performance.now() < deadline) {
    if (hasCurlCached) {
      const out = await new Promise<string>((resolve, reject) => {
        const c = spawn('curl', ['-s', '-o', '/dev/null', '-w', '%{size_download} %{http_code}', url], {
          stdio: ['ignore', 'pipe', 'ignore'],
        });
        let s = '';
        c.stdout.on('data', (d: Buffer) => (s += d.toString()));
        c.on('close', (code) => (code === 0 ? resolve(s) : reject(new Error(`curl exited ${code}`))));
      });
      const [n, code] = out.trim().split(' ').map(Number);
      if (code !== 200) throw new Error(`player: status ${code}`);
      bytes += n ?? 0;
    } else {
      bytes += (await timeBody(url)).bytes;
    }
    reads++;
  }
  return { bytes, reads };
}
let hasCurlCached = false;

const LOOP_RE = /^mediacache_event_loop_delay_seconds\{quantile="([^"]+)"\} (\S+)$/gm;
const LAG_RE = /^mediacache_event_loop_lag_seconds_bucket\{le="([^"]+)"\} (\S+)$/gm;

/** The cumulative lag histogram's buckets (`le` → samples at or under it) from one scrape. */
function lagBuckets(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of text.matchAll(LAG_RE)) out.set(m[1] ?? '', Number(m[2]));
  return out;
}

/**
 * One round: 5 players read their cached files at full speed while a client scrapes `/metrics`
 * every 100 ms and pages through all entries (a page every PAGE_EVERY_MS on both sides).
 */
async function loadRound(side: Side, proxy: ProxyChild, roundMs: number): Promise<Round> {
  const round: Round = {
    seconds: 0,
    bytes: 0,
    reads: 0,
    loopP99: [],
    loopMax: [],
    scrapeMs: [],
    pageMs: [],
    walks: 0,
    walkMs: [],
    walkErrors: [],
    lagFrom: new Map(),
    lagTo: new Map(),
  };
  const t0 = performance.now();
  const deadline = t0 + roundMs;
  const scraper = async (): Promise<void> => {
    for (let k = 0; performance.now() < deadline; k++) {
      const r = await get(`${proxy.url}/metrics`);
      const buckets = lagBuckets(r.body);
      if (k === 0) round.lagFrom = buckets;
      round.lagTo = buckets;
      const q: Record<string, number> = {};
      for (const m of r.body.matchAll(LOOP_RE)) q[m[1] ?? ''] = Number(m[2]);
      // A window without samples (a scrape under 10 ms after the previous one) reads 0: skipped.
      if (k > 0 && (q['1'] ?? 0) > 0) {
        round.scrapeMs.push(r.ms);
        round.loopP99.push(q['0.99'] ?? NaN);
        round.loopMax.push(q['1'] ?? NaN);
      }
      await sleep(Math.max(0, t0 + (k + 1) * 100 - performance.now()));
    }
  };
  // One page every PAGE_EVERY_MS on both sides (the same requests; only their size differs): 5,000
  // entries a second, a dashboard or `ls` walking the index. A walk cut by the end of a round goes
  // on in the side's next round; its time counts only rounds.
  const pager = async (): Promise<void> => {
    const walk = side.walk;
    for (let k = 0; performance.now() < deadline; k++) {
      const p0 = performance.now();
      const r = await getBytes(`${proxy.url}/api/entries${walk.cursor ? `?cursor=${encodeURIComponent(walk.cursor)}` : ''}`);
      if (r.status !== 200) throw new Error(`${side.label} /api/entries: ${r.status}`);
      round.pageMs.push(r.ms);
      walk.ms += performance.now() - p0;
      const page = pageIds(r.body);
      for (const id of page.ids) walk.seen.add(id);
      walk.cursor = page.next;
      if (walk.cursor === null) {
        round.walks++;
        round.walkMs.push(walk.ms);
        if (walk.seen.size !== side.entries) round.walkErrors.push(`walk saw ${walk.seen.size} of ${side.entries} entries`);
        Object.assign(walk, { seen: new Set<string>(), ms: 0 });
      }
      await sleep(Math.max(0, t0 + (k + 1) * PAGE_EVERY_MS - performance.now()));
    }
  };
  const players = side.streamUrls.map((u) => player(u, deadline));
  const [played] = await Promise.all([Promise.all(players), scraper(), pager()]);
  round.seconds = (performance.now() - t0) / 1000;
  for (const p of played) {
    round.bytes += p.bytes;
    round.reads += p.reads;
  }
  return round;
}

// ---- rows ---------------------------------------------------------------------------------------

/**
 * The lag histogram's growth over the rounds (last scrape minus first, summed): how many samples,
 * the share over 10 ms, and the smallest bucket bound holding 99 % of them (p99 ≤ that bound).
 */
function lagOver(rounds: Round[]): { buckets: Map<string, number>; samples: number; over10: number; p99Bound: number } {
  const buckets = new Map<string, number>();
  for (const r of rounds) {
    for (const [le, n] of r.lagTo) buckets.set(le, (buckets.get(le) ?? 0) + n - (r.lagFrom.get(le) ?? 0));
  }
  const samples = buckets.get('+Inf') ?? 0;
  const at10 = buckets.get('0.01') ?? 0;
  const bounds = [...buckets.entries()].filter(([le]) => le !== '+Inf').sort((a, b) => Number(a[0]) - Number(b[0]));
  const p99Bound = Number(bounds.find(([, n]) => samples > 0 && n / samples >= 0.99)?.[0] ?? Infinity);
  return { buckets, samples, over10: samples ? (samples - at10) / samples : 1, p99Bound };
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

function rowsOf(small: Side, big: Side, want: (n: number) => boolean, { playSize, idleWaitMs, warmUpMs }: ScaleSizes): Row[] {
  const out: Row[] = [];
  const N = big.entries.toLocaleString('en-US');
  const rowsN = big.chunkRows.toLocaleString('en-US');
  const at = `${N} entries, ${rowsN} chunk rows`;
  if (want(10)) {
    const m = (s: Side): number[] => ENDPOINTS.map((e) => median(s.scrape[e] ?? []));
    const [bm, sm] = [m(big), m(small)];
    out.push({
      id: 10,
      scenario: `Scrape at ${at}: \`/metrics\` / \`GET /api/stats\` / first page of \`GET /api/entries\` (500), median of ${big.scrape['/metrics']?.length}`,
      proxy: bm.map(ms).join(' / '),
      baseline: `${sm.map(ms).join(' / ')} at ${small.entries} entries`,
      diff: `max ${ms(Math.max(...bm))}`,
      target: 'each ≤ 50 ms',
      pass: bm.every((x) => x <= 50),
      data: { big: big.scrape, small: small.scrape },
    });
  }
  const loop = (s: Side) => {
    const p99 = s.rounds.flatMap((r) => r.loopP99);
    const max = s.rounds.flatMap((r) => r.loopMax);
    return { ...lagOver(s.rounds), worstWindowP99: Math.max(...p99), worstMax: Math.max(...max), medianWindowP99: median(p99) };
  };
  const [bl, sl] = [loop(big), loop(small)];
  const pages = big.rounds.flatMap((r) => r.pageMs).sort((a, b) => a - b);
  const walks = sum(big.rounds.map((r) => r.walks));
  const walkErrors = [big, small].flatMap((s) => [...(s.warmUp?.walkErrors ?? []), ...s.rounds.flatMap((r) => r.walkErrors)]);
  const rounds = big.rounds.length;
  const roundS = rounds ? big.rounds[0]?.seconds.toFixed(0) : '0';
  const load = `5 players streaming cached files at full speed, \`/metrics\` every 100 ms, paging through all entries (a page of 500 every ${PAGE_EVERY_MS} ms); ${rounds} rounds of ${roundS} s per side in ABBA order with the 10-entry proxy, after an untimed ${(warmUpMs / 1000).toFixed(0)} s warm-up round on each`;
  if (want(11)) {
    const d = (x: number): number => x * 1000;
    const pct = (x: number): string => `${(x * 100).toFixed(2)} %`;
    out.push({
      id: 11,
      scenario: `Event-loop delay at ${at} (${load}): p99 of all ${bl.samples} samples of the proxy's 10 ms sampler under load (\`mediacache_event_loop_lag_seconds\` bucket deltas); per-scrape windows (~10 samples each) beside it`,
      proxy: `p99 ≤ ${ms(d(bl.p99Bound))} (${pct(bl.over10)} of samples over 10 ms); windows: median p99 ${ms(d(bl.medianWindowP99))}, worst ${ms(d(bl.worstWindowP99))}, max ${ms(d(bl.worstMax))}; ${walks} full walks, page p50 ${ms(percentile(pages, 50))} p99 ${ms(percentile(pages, 99))}`,
      baseline: `10 entries: p99 ≤ ${ms(d(sl.p99Bound))} (${pct(sl.over10)} over 10 ms), worst window ${ms(d(sl.worstWindowP99))}`,
      diff: `${pct(bl.over10 - sl.over10)} over 10 ms`,
      target: 'p99 ≤ 10 ms',
      pass: walkErrors.length === 0 && walks > 0 && bl.samples > 0 && bl.over10 <= 0.01,
      data: {
        big: {
          lag: Object.fromEntries(bl.buckets),
          windowP99: big.rounds.flatMap((r) => r.loopP99),
          windowMax: big.rounds.flatMap((r) => r.loopMax),
          walks,
          walkMs: big.rounds.flatMap((r) => r.walkMs),
          pageMs: { p50: percentile(pages, 50), p99: percentile(pages, 99), max: pages.at(-1) },
        },
        small: { lag: Object.fromEntries(sl.buckets), windowP99: small.rounds.flatMap((r) => r.loopP99) },
        walkErrors,
        scrapeMs: big.rounds.flatMap((r) => r.scrapeMs),
      },
    });
  }
  if (want(12)) {
    const rate = (s: Side): number => sum(s.rounds.map((r) => r.bytes)) / sum(s.rounds.map((r) => r.seconds));
    const [b, s] = [rate(big), rate(small)];
    // Round r of each side ran back to back (ABBA): their ratio compares like with like, whatever
    // the machine did in between; the median of the pairs is what the target reads.
    const perRound = (side: Side): number[] => side.rounds.map((r) => r.bytes / r.seconds);
    const [bigRounds, smallRounds] = [perRound(big), perRound(small)];
    const ratios = bigRounds.map((x, i) => x / (smallRounds[i] ?? NaN));
    const ratio = median(ratios);
    const gbps = (x: number): string => `${(x / 1e9).toFixed(2)} GB/s`;
    out.push({
      id: 12,
      scenario: `Players' throughput at ${at} (${load}; ${(playSize / MiB).toFixed(0)} MiB files): median over the ${ratios.length} ABBA pairs of a round's bytes/s at ${N} entries ÷ the adjacent round's at 10 entries; totals beside it`,
      proxy: `${gbps(b)} (${sum(big.rounds.map((r) => r.reads))} reads)`,
      baseline: `${gbps(s)} at 10 entries (${sum(small.rounds.map((r) => r.reads))} reads)`,
      diff: `median ${ratio.toFixed(2)} × (pairs ${ratios.map((x) => x.toFixed(2)).join(', ')}; totals ${(b / s).toFixed(2)} ×)`,
      target: '≥ 0.95 ×',
      pass: ratio >= 0.95,
      data: {
        big: bigRounds,
        small: smallRounds,
        ratios,
        bigTotal: b,
        smallTotal: s,
        warmUp: {
          big: big.warmUp && big.warmUp.bytes / big.warmUp.seconds,
          small: small.warmUp && small.warmUp.bytes / small.warmUp.seconds,
        },
      },
    });
  }
  if (want(13)) {
    const [b, s] = [median(big.startMs), median(small.startMs)];
    out.push({
      id: 13,
      scenario: `Start-up at ${at}: process spawn to first \`/healthz\` 200, median of ${big.startMs.length}`,
      proxy: `${(b / 1000).toFixed(3)} s`,
      baseline: `${(s / 1000).toFixed(3)} s at 10 entries`,
      diff: `+${(b - s).toFixed(0)} ms`,
      target: '≤ 0.5 s',
      pass: b <= 500,
      data: { bigMs: big.startMs, smallMs: small.startMs },
    });
  }
  if (want(14)) {
    const m = (x: number): string => `${(x / MiB).toFixed(1)} MiB`;
    const idleS = (idleWaitMs / 1000).toFixed(0);
    out.push({
      id: 14,
      scenario: `Idle RSS at ${at}, ${idleS} s after the start-up work ended (counters read, then CPU quiet for 1 s)`,
      proxy: `${m(big.idleRss)} (${m(big.quietRss)} when the work ended, ${(big.settleMs / 1000).toFixed(1)} s after \`/healthz\`)`,
      baseline: `${m(small.idleRss)} at 10 entries (${m(small.quietRss)})`,
      diff: `+${m(big.idleRss - small.idleRss)}`,
      target: '≤ 120 MiB',
      pass: big.idleRss <= 120 * MiB,
      data: {
        bigRss: big.idleRss,
        smallRss: small.idleRss,
        bigQuietRss: big.quietRss,
        smallQuietRss: small.quietRss,
        bigSettleMs: big.settleMs,
        smallSettleMs: small.settleMs,
      },
    });
  }
  return out;
}

/** Rows 10–14 (those `want` asks for). */
export async function scaleRows(up: Upstream, sizes: ScaleSizes, want: (n: number) => boolean): Promise<Row[]> {
  hasCurlCached = hasCurl();
  const mk = (label: string): Side => ({
    label,
    walk: { cursor: null, seen: new Set<string>(), ms: 0 },
    dir: mkdtempSync(path.join(tmpdir(), `mediacache-bench-scale-${label}-`)),
    entries: 0,
    chunkRows: 0,
    streamUrls: [],
    startMs: [],
    quietRss: NaN,
    idleRss: NaN,
    settleMs: NaN,
    scrape: {},
    rounds: [],
  });
  const small = mk('small');
  const big = mk('big');
  try {
    const streamPaths = await fillReal(up, small.dir, sizes.playSize);
    copyDataDir(small.dir, big.dir);
    const real = countRows(path.join(small.dir, 'cache.db'));
    let t0 = performance.now();
    generate(path.join(small.dir, 'cache.db'), 10 - real.entries, 10 * 10 - real.chunkRows);
    generate(path.join(big.dir, 'cache.db'), sizes.entries - real.entries, 10 * sizes.entries - real.chunkRows);
    for (const s of [small, big]) Object.assign(s, countRows(path.join(s.dir, 'cache.db')));
    log(`scale: generated ${big.entries} entries / ${big.chunkRows} chunk rows in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    // Start-ups, alternating; the last one of each side stays up for the other rows.
    for (let i = 0; i < sizes.starts; i++) {
      for (const s of [small, big]) {
        const p = await timedStart(s);
        if (i < sizes.starts - 1) await p.stop();
        else s.proxy = p;
      }
    }
    await Promise.all([small, big].map((s) => settle(s, s.proxy as ProxyChild, sizes.idleWaitMs)));
    for (const s of [small, big]) {
      const p = s.proxy as ProxyChild;
      s.streamUrls = streamPaths.map((sp) => p.url + sp);
      if (want(10)) await scrapeTimes(s, p, sizes.scrapeTrials);
    }
    if (want(11) || want(12)) {
      t0 = performance.now();
      // Untimed: the players' files enter the page cache and both processes' JIT warms up, so the
      // side that runs first is not the one that pays for it (first rounds ran ~15 % slower).
      for (const s of [small, big]) s.warmUp = await loadRound(s, s.proxy as ProxyChild, sizes.warmUpMs);
      // ABBA: S B, B S, S B, … — round r of each side is a pair that ran back to back.
      for (let r = 0; r < sizes.rounds; r++) {
        for (const s of r % 2 ? [big, small] : [small, big]) {
          const round = await loadRound(s, s.proxy as ProxyChild, sizes.roundMs);
          s.rounds.push(round);
          if (process.env.BENCH_DEBUG)
            log(`scale round ${r} ${s.label}: ${JSON.stringify({ ...round, pageMs: round.pageMs.length, scrapeMs: undefined })}`);
        }
      }
      log(`scale: load rounds took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    return rowsOf(small, big, want, sizes);
  } finally {
    for (const s of [small, big]) {
      await s.proxy?.stop();
      // BENCH_SCALE_KEEP=1 keeps the data dirs, to start a proxy on them by hand (profiling).
      if (process.env.BENCH_SCALE_KEEP) log(`scale: kept ${s.dir}`);
      else rmSync(s.dir, { recursive: true, force: true });
    }
    agent.destroy();
  }
}
