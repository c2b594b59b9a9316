/**
 * The clients of rows 10–14 (bench/scale.ts): timed start-ups, the settle and RSS reads, scrapes,
 * and the load rounds (players, the `/metrics` scraper, the pager).
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuSecondsOf, memoryOf, startProxyChild, timeBody, type ProxyChild } from './lib.js';

/** The pager asks for the next page of `GET /api/entries` this often (row 11 and 12's load). */
export const PAGE_EVERY_MS = 100;

export interface Side {
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

export interface Round {
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

export const log = (s: string): void => void process.stderr.write(`[bench] ${s}\n`);
export const ms = (x: number): string => `${x.toFixed(1)} ms`;
export const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

/** GET with a keep-alive connection; resolves with status, body and ms until the body's end. */
export async function get(url: string): Promise<{ status: number; body: string; ms: number }> {
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

/** Spawn to the first `/healthz` 200. */
export async function timedStart(side: Side): Promise<ProxyChild> {
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
export async function settle(side: Side, proxy: ProxyChild, idleWaitMs: number): Promise<void> {
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

export const ENDPOINTS = ['/metrics', '/api/stats', '/api/entries'];

export async function scrapeTimes(side: Side, proxy: ProxyChild, trials: number): Promise<void> {
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
/** Whether players read with curl (when installed) or in process. */
export function useCurl(on: boolean): void {
  hasCurlCached = on;
}

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
export async function loadRound(side: Side, proxy: ProxyChild, roundMs: number): Promise<Round> {
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
