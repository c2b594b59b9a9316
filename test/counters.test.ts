/**
 * The maintained entry counters (`cache.entryTotals()`: entries, entries by state, stored bytes)
 * never drift from the truth, and `/metrics` and `GET /api/stats` show them.
 *
 * fast-check generates short sequences of: add an entry, stream one whole or a range or abort a
 * stream early (through a real upstream), prefetch, gc under a small max size, bit rot then verify,
 * the upstream file replaced (new ETag) or gone, then read, pin, remove, restart on the same data
 * dir. After every step, once nothing downloads any more, the counters must equal a full recount
 * from `cache.listEntries()`, and `/metrics` must show the same numbers.
 *
 * Replay a failure: COUNTERS_SEED=<seed> [COUNTERS_PATH=<path>] node --import tsx --test test/counters.test.ts
 * (the seeds are printed as test diagnostics and in fast-check's failure report).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { setImmediate as turn, setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { seedRuns } from './helpers/seeds.js';
import { request } from 'undici';
import type { MediaCache } from '../src/cache.js';
import type { EntryTotals } from '../src/stats/entry-counters.js';
import { CacheMetrics } from '../src/server/metrics.js';
import { fetchBytes, getJson, startProxy, tempDir, waitUntil, type Proxy } from './helpers/harness.js';
import { makeData, startUpstream, type Upstream } from './helpers/upstream.js';
import { flipByte } from './helpers/seams.js';

const CHUNK = 16 * 1024;
const BIG = 1024 * 1024 * 1024;
/** Upstream files the entries point at (several entries may share one, by a different query). */
const FILES = 3;
const STATES = ['NotStarted', 'Initializing', 'Downloading', 'Paused', 'Complete', 'Failed'] as const;

/** The value of one sample line of a Prometheus text exposition. */
function sample(text: string, line: string): number {
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? Number.NaN : Number(found.slice(line.length + 1));
}

/** Keeps the event loop busy for `ms` milliseconds. */
function holdLoop(ms: number): void {
  const start = performance.now();
  while (performance.now() - start < ms) {
    // busy: nothing else runs
  }
}

/** The truth, read row by row: what the maintained counters must say. */
function recount(cache: MediaCache): Omit<EntryTotals, 'complete'> {
  const entries = cache.listEntries();
  const byState = Object.fromEntries(STATES.map((s) => [s, 0])) as EntryTotals['byState'];
  let storedBytes = 0;
  for (const e of entries) {
    byState[e.state]++;
    storedBytes += e.downloadedBytes;
  }
  return { entries: entries.length, byState, storedBytes };
}

/**
 * The per-entry columns kept by triggers (migration 6) against sums over the rows themselves:
 * the entries whose columns disagree (none, or the triggers missed a statement).
 */
function columnDrift(dataDir: string): unknown[] {
  const db = new Database(path.join(dataDir, 'cache.db'), { readonly: true });
  try {
    return db
      .prepare(
        `SELECT * FROM (SELECT id, stored_bytes, chunk_rows, pending_chunks,
           COALESCE((SELECT SUM(end_byte - start_byte + 1) FROM cache_chunks c WHERE c.cache_entry_id = e.id), 0) AS bytes,
           (SELECT COUNT(*) FROM cache_chunks c WHERE c.cache_entry_id = e.id) AS rows,
           (SELECT COUNT(*) FROM cache_download_queue q WHERE q.cache_entry_id = e.id) AS queued
         FROM cache_entries e) WHERE stored_bytes != bytes OR chunk_rows != rows OR pending_chunks != queued`,
      )
      .all();
  } finally {
    db.close();
  }
}

/** A read through the proxy; a response cut short (the upstream file changed under it) is an outcome too. */
async function read(url: string, range?: string): Promise<string> {
  try {
    const res = await fetchBytes(url, range === undefined ? {} : { headers: { range } });
    return `${res.status}, ${res.body.length} bytes`;
  } catch (err) {
    return `cut (${(err as Error).message})`;
  }
}

function maintained(cache: MediaCache): Omit<EntryTotals, 'complete'> {
  const { entries, byState, storedBytes } = cache.entryTotals();
  return { entries, byState: { ...byState }, storedBytes };
}

type Op =
  | { kind: 'add'; file: number }
  | { kind: 'stream'; entry: number }
  | { kind: 'range'; entry: number; start: number; length: number }
  | { kind: 'abort'; entry: number; start: number }
  | { kind: 'prefetch'; entry: number }
  | { kind: 'gc'; keepChunks: number }
  | { kind: 'rot'; entry: number; row: number; offset: number }
  | { kind: 'swap'; file: number; size: number }
  | { kind: 'gone'; file: number }
  | { kind: 'back'; file: number; entry: number; start: number }
  | { kind: 'pin'; entry: number; head: boolean }
  | { kind: 'remove'; entry: number }
  | { kind: 'restart' }
  | { kind: 'busy'; entry: number; then: Exclude<Op, { kind: 'busy' }> };

const stepArb: fc.Arbitrary<Exclude<Op, { kind: 'busy' }>> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('add' as const), file: fc.nat(FILES - 1) }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('stream' as const), entry: fc.nat() }), weight: 3 },
  {
    arbitrary: fc.record({
      kind: fc.constant('range' as const),
      entry: fc.nat(),
      start: fc.nat(5 * CHUNK),
      length: fc.integer({ min: 1, max: 3 * CHUNK }),
    }),
    weight: 3,
  },
  { arbitrary: fc.record({ kind: fc.constant('abort' as const), entry: fc.nat(), start: fc.nat(4 * CHUNK) }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('prefetch' as const), entry: fc.nat() }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('gc' as const), keepChunks: fc.nat(6) }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('rot' as const), entry: fc.nat(), row: fc.nat(), offset: fc.nat() }), weight: 2 },
  {
    arbitrary: fc.record({
      kind: fc.constant('swap' as const),
      file: fc.nat(FILES - 1),
      size: fc.integer({ min: 1, max: 5 * CHUNK + 999 }),
    }),
    weight: 2,
  },
  { arbitrary: fc.record({ kind: fc.constant('gone' as const), file: fc.nat(FILES - 1) }), weight: 1 },
  {
    arbitrary: fc.record({ kind: fc.constant('back' as const), file: fc.nat(FILES - 1), entry: fc.nat(), start: fc.nat(5 * CHUNK) }),
    weight: 1,
  },
  { arbitrary: fc.record({ kind: fc.constant('pin' as const), entry: fc.nat(), head: fc.boolean() }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('remove' as const), entry: fc.nat() }), weight: 2 },
  { arbitrary: fc.constant({ kind: 'restart' as const }), weight: 1 },
);

/** A step, or a step taken while a (slowed) prefetch of an entry is under way. */
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: stepArb, weight: 5 },
  { arbitrary: fc.record({ kind: fc.constant('busy' as const), entry: fc.nat(), then: stepArb }), weight: 2 },
);

interface Config {
  backgroundFill: boolean;
  maxConcurrentDownloads: number;
}

const configArb: fc.Arbitrary<Config> = fc.record({ backgroundFill: fc.boolean(), maxConcurrentDownloads: fc.integer({ min: 1, max: 3 }) });

/** One run: an upstream, a proxy on its own data dir, the entries registered so far. */
class World {
  proxy!: Proxy;
  readonly dataDir = tempDir('mediacache-counters-');
  readonly ids: string[] = [];
  private started = 0;
  private added = 0;
  private seed = 100;
  /** What each upstream path serves when present: its bytes and validators (`back` restores them). */
  private readonly files = new Map<number, { data: Buffer; etag: string; lastModified: string }>();
  readonly log: string[] = [];

  constructor(
    readonly upstream: Upstream,
    readonly config: Config,
  ) {}

  async open(): Promise<void> {
    this.proxy = await startProxy({
      dataDir: this.dataDir,
      chunkSize: CHUNK,
      backgroundFill: this.config.backgroundFill,
      maxConcurrentDownloads: this.config.maxConcurrentDownloads,
      maxSize: BIG,
      minFree: 0,
      waitTimeoutMs: 5_000,
    });
    this.proxy.cache.on('download-started', () => this.started++);
    // The counters are read in slices after open returns; they are only complete after that.
    for (let i = 0; !this.proxy.cache.entryTotals().complete; i++) {
      assert.ok(i < 100_000, 'the counters finish loading');
      await turn();
    }
  }

  get cache(): MediaCache {
    return this.proxy.cache;
  }

  pick(n: number): string | undefined {
    return this.ids.length === 0 ? undefined : this.ids[n % this.ids.length];
  }

  streamUrl(id: string): string {
    return `${this.proxy.server.url}/stream/${id}`;
  }

  /** A new version of an upstream file: new bytes, new ETag. */
  publish(file: number, size: number): void {
    const version = ++this.seed;
    const served = {
      data: makeData(size, version),
      etag: `"f${file}-v${version}"`,
      lastModified: new Date(Date.UTC(2025, 0, 1) + version * 1000).toUTCString(),
    };
    this.files.set(file, served);
    this.upstream.setFile(`/f${file}.mp4`, served.data, { etag: served.etag, lastModified: served.lastModified });
  }

  /** The same version served again (after `gone`). */
  restore(file: number): void {
    const served = this.files.get(file)!;
    this.upstream.setFile(`/f${file}.mp4`, served.data, { etag: served.etag, lastModified: served.lastModified });
  }

  /** An entry registered for the file, if any (else any entry). */
  entryOf(file: number, pick: number): string | undefined {
    const of = this.ids.filter((i) => this.cache.getEntry(i)?.url.includes(`/f${file}.mp4?`));
    return of.length > 0 ? of[pick % of.length] : this.pick(pick);
  }

  /** Waits until no transfer runs and the events of the last ones have been handled. */
  async settle(): Promise<void> {
    for (let round = 0; ; round++) {
      assert.ok(round < 1_000, 'downloads come to an end');
      if (this.cache.inspect().transfers.length > 0) {
        await new Promise<void>((resolve) => {
          const ended = (): void => {
            this.cache.off('download-ended', ended);
            resolve();
          };
          this.cache.on('download-ended', ended);
        });
        continue;
      }
      for (let i = 0; i < 10; i++) await turn();
      if (this.cache.inspect().transfers.length === 0 && this.upstream.activeResponses() === 0) return;
    }
  }

  /** Counters = recount, and /metrics says the same (re-checked if a download slipped in between). */
  async check(step: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      await this.settle();
      const startedBefore = this.started;
      const totals = this.cache.entryTotals();
      assert.equal(totals.complete, true);
      const want = recount(this.cache);
      assert.deepEqual(maintained(this.cache), want, `after ${step}, the maintained counters equal a recount\n${this.log.join('\n')}`);
      assert.deepEqual(columnDrift(this.dataDir), [], `after ${step}, each entry's stored bytes and row counts equal its rows`);
      const text = (await fetchBytes(`${this.proxy.server.url}/metrics`)).body.toString();
      if (this.started !== startedBefore || this.cache.inspect().transfers.length > 0) {
        assert.ok(attempt < 5, 'downloads stay quiet long enough to scrape');
        continue;
      }
      for (const state of STATES) {
        assert.equal(
          sample(text, `mediacache_entries{state="${state}"}`),
          want.byState[state],
          `/metrics entries in ${state} after ${step}`,
        );
      }
      assert.equal(sample(text, 'mediacache_stored_bytes'), want.storedBytes, `/metrics stored bytes after ${step}`);
      const stats = await getJson<{ entries: number }>(`${this.proxy.server.url}/api/stats`);
      assert.equal(stats.entries, want.entries, `/api/stats entries after ${step}`);
      return;
    }
  }

  async run(op: Op): Promise<string> {
    switch (op.kind) {
      case 'add': {
        const { entry, created } = this.cache.addEntry({ url: this.upstream.url(`/f${op.file}.mp4?n=${this.added++}`) });
        this.ids.push(entry.id);
        return `add f${op.file} → ${entry.id}${created ? '' : ' (known)'}`;
      }
      case 'stream': {
        const id = this.pick(op.entry);
        if (!id) return 'stream: no entry';
        return `stream ${id}: ${await read(this.streamUrl(id))}`;
      }
      case 'range': {
        const id = this.pick(op.entry);
        if (!id) return 'range: no entry';
        const range = `bytes=${op.start}-${op.start + op.length - 1}`;
        return `range ${id} ${range}: ${await read(this.streamUrl(id), range)}`;
      }
      case 'abort': {
        const id = this.pick(op.entry);
        if (!id) return 'abort: no entry';
        // A player that goes away after its first bytes.
        const stop = new AbortController();
        let got = 0;
        try {
          const res = await request(this.streamUrl(id), { headers: { range: `bytes=${op.start}-` }, signal: stop.signal });
          for await (const data of res.body) {
            got += (data as Buffer).length;
            stop.abort();
          }
        } catch {
          // aborted, as meant
        }
        return `abort ${id} from ${op.start} after ${got} bytes`;
      }
      case 'prefetch': {
        const id = this.pick(op.entry);
        if (!id) return 'prefetch: no entry';
        try {
          this.cache.prefetch(id);
          return `prefetch ${id}`;
        } catch (err) {
          return `prefetch ${id}: ${(err as Error).message}`;
        }
      }
      case 'gc': {
        this.cache.setLimits({ maxSize: op.keepChunks * CHUNK });
        const report = await this.cache.gc();
        this.cache.setLimits({ maxSize: BIG });
        return `gc at ${op.keepChunks} chunks: ${report.evictedEntries} entries, ${report.evictedRanges} ranges`;
      }
      case 'rot': {
        const id = this.pick(op.entry);
        const snap = id === undefined ? undefined : this.cache.inspect(id).entry;
        const row = snap && snap.rows.length > 0 ? snap.rows[op.row % snap.rows.length] : undefined;
        if (!id || !snap || !row) return 'rot: nothing stored';
        // Bit rot: one byte flipped, size and mtime as they were.
        const at = row.start + (op.offset % (row.end - row.start + 1));
        flipByte(snap.filePath, at);
        const report = await this.cache.verify(id);
        return `rot ${id} at ${at}; verify: ${report.damaged.length} damaged`;
      }
      case 'swap': {
        this.publish(op.file, op.size);
        // Then a read of an entry of that file, which may learn of the change.
        const id = this.entryOf(op.file, 0);
        if (!id) return `swap f${op.file} (${op.size} bytes)`;
        return `swap f${op.file} (${op.size} bytes); read ${id}: ${await read(this.streamUrl(id), 'bytes=0-999')}`;
      }
      case 'gone': {
        this.upstream.deleteFile(`/f${op.file}.mp4`);
        const id = this.entryOf(op.file, 0);
        if (!id) return `gone f${op.file}`;
        let outcome = 'prefetch';
        try {
          this.cache.prefetch(id);
        } catch (err) {
          outcome = (err as Error).message;
        }
        return `gone f${op.file}; ${id}: ${outcome}`;
      }
      case 'back': {
        this.restore(op.file);
        // Then a read of an entry of that file (a Failed one is retried by the read).
        const id = this.entryOf(op.file, op.entry);
        if (!id) return `back f${op.file}`;
        const before = this.cache.getEntry(id)?.state;
        const range = `bytes=${op.start}-${op.start + 99}`;
        return `back f${op.file}; read ${id} (${before}) ${range}: ${await read(this.streamUrl(id), range)}`;
      }
      case 'pin': {
        const id = this.pick(op.entry);
        if (!id) return 'pin: no entry';
        this.cache.pin(id, op.head ? CHUNK : null);
        return `pin ${id}${op.head ? ' (head)' : ''}`;
      }
      case 'remove': {
        const id = this.pick(op.entry);
        if (!id) return 'remove: no entry';
        this.ids.splice(this.ids.indexOf(id), 1);
        const res = await fetchBytes(`${this.proxy.server.url}/api/entries/${id}`, {
          method: 'DELETE',
          headers: { 'content-type': 'application/json' },
        });
        return `remove ${id}: ${res.status}`;
      }
      case 'restart': {
        await this.proxy.stop();
        await this.open();
        return 'restart';
      }
      case 'busy': {
        const id = this.pick(op.entry);
        if (!id) return 'busy: no entry';
        // Slow enough that the step below runs while the prefetch is still downloading.
        this.upstream.options.bytesPerSecond = 256 * 1024;
        try {
          try {
            this.cache.prefetch(id);
          } catch (err) {
            return `busy ${id}: ${(err as Error).message}`;
          }
          const cache = this.cache;
          if (cache.inspect().transfers.length > 0) {
            await new Promise<void>((resolve) => {
              const next = (): void => {
                cache.off('chunk-stored', next);
                cache.off('download-ended', next);
                resolve();
              };
              cache.on('chunk-stored', next);
              cache.on('download-ended', next);
            });
          }
          const during = cache.inspect().transfers.length;
          return `busy ${id} (${during} transfers): ${await this.run(op.then)}`;
        } finally {
          this.upstream.options.bytesPerSecond = undefined;
        }
      }
    }
  }

  async close(): Promise<void> {
    await this.proxy.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

const fileSizes = fc.array(fc.integer({ min: 1, max: 5 * CHUNK + 999 }), { minLength: FILES, maxLength: FILES });

async function runSequence(config: Config, sizes: number[], initial: number[], ops: Op[]): Promise<void> {
  const upstream = await startUpstream();
  const world = new World(upstream, config);
  try {
    sizes.forEach((size, file) => world.publish(file, size));
    await world.open();
    world.log.push(`config ${JSON.stringify(config)}, sizes ${JSON.stringify(sizes)}`);
    await world.check('open');
    for (const file of initial) world.log.push(await world.run({ kind: 'add', file }));
    await world.check('the first adds');
    for (const op of ops) {
      world.log.push(await world.run(op));
      await world.check(JSON.stringify(op));
      if (process.env.COUNTERS_DEBUG) console.log(world.log[world.log.length - 1], JSON.stringify(recount(world.cache).byState));
    }
  } finally {
    await world.close();
    await upstream.close();
  }
}

test('the maintained entry counters equal a full recount after random adds, downloads, evictions, rot, upstream changes, removals and restarts', async (t) => {
  const runs = seedRuns('COUNTERS', 20260113, 20);
  for (const { seed, numRuns } of runs) {
    t.diagnostic(`counters seed ${seed} (replay: COUNTERS_SEED=${seed} node --import tsx --test test/counters.test.ts)`);
    await fc.assert(
      fc.asyncProperty(
        configArb,
        fileSizes,
        fc.array(fc.nat(FILES - 1), { minLength: 1, maxLength: 4 }),
        fc.array(opArb, { minLength: 1, maxLength: 16 }),
        runSequence,
      ),
      { seed, numRuns, path: process.env.COUNTERS_PATH, includeErrorInReport: true },
    );
  }
});

test('a Failed entry that a player reads from its stored bytes is counted in its new state, not as Failed', async () => {
  // The sequence fast-check found: part of an entry stored, the upstream file gone (a prefetch
  // fails: Failed), then a read of the stored part clears the error (openReader) and serves it.
  const upstream = await startUpstream();
  upstream.setFile('/gone.mp4', makeData(2 * CHUNK + 1, 9));
  const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false });
  try {
    const { id, streamUrl } = await proxy.add(upstream.url('/gone.mp4'));
    assert.equal((await fetchBytes(streamUrl, { headers: { range: 'bytes=0-99' } })).status, 206);
    await waitUntil(proxy.cache, () => proxy.cache.getEntry(id)?.state === 'Paused' && proxy.cache.inspect().transfers.length === 0);
    upstream.deleteFile('/gone.mp4');
    proxy.cache.prefetch(id);
    await waitUntil(proxy.cache, () => proxy.cache.getEntry(id)?.state === 'Failed' && proxy.cache.inspect().transfers.length === 0);
    assert.equal(proxy.cache.entryTotals().byState.Failed, 1);

    const announced: string[] = [];
    proxy.cache.on('state-changed', (e) => {
      if (e.entryId === id) announced.push(e.state);
    });
    const res = await fetchBytes(streamUrl, { headers: { range: 'bytes=0-0' } });
    assert.equal(res.status, 206, 'the stored byte is served');
    for (let i = 0; i < 10; i++) await turn();
    assert.equal(proxy.cache.inspect().transfers.length, 0);
    const truth = proxy.cache.getEntry(id)!.state;
    assert.notEqual(truth, 'Failed', 'the read cleared the error');
    assert.deepEqual(maintained(proxy.cache), recount(proxy.cache), `the counters follow the entry from Failed to ${truth}`);
    const text = (await fetchBytes(`${proxy.server.url}/metrics`)).body.toString();
    assert.equal(sample(text, 'mediacache_entries{state="Failed"}'), 0);
    assert.equal(sample(text, `mediacache_entries{state="${truth}"}`), 1);
    assert.deepEqual(announced, [truth], 'state-changed announces the new state');
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

test('GET /api/stats counts the entries and /metrics exposes the event-loop delay by quantile', async () => {
  const proxy = await startProxy();
  try {
    const stats0 = await getJson<{ entries: number }>(`${proxy.server.url}/api/stats`);
    assert.equal(stats0.entries, 0);
    const ids: string[] = [];
    for (let i = 0; i < 37; i++) ids.push(proxy.cache.addEntry({ url: `http://127.0.0.1:9/s/${i}.mp4` }).entry.id);
    proxy.cache.addEntry({ url: 'http://127.0.0.1:9/s/3.mp4' }); // known: no new entry
    assert.equal((await getJson<{ entries: number }>(`${proxy.server.url}/api/stats`)).entries, 37);
    for (const id of ids.slice(0, 5)) await proxy.cache.removeEntry(id);
    assert.equal((await getJson<{ entries: number }>(`${proxy.server.url}/api/stats`)).entries, 32);

    const text = (await fetchBytes(`${proxy.server.url}/metrics`)).body.toString();
    assert.match(text, /^# TYPE mediacache_event_loop_delay_seconds gauge$/m);
    const quantiles = ['0.5', '0.99', '1'].map((q) => sample(text, `mediacache_event_loop_delay_seconds{quantile="${q}"}`));
    for (const v of quantiles) assert.ok(Number.isFinite(v) && v >= 0, `a delay in seconds: ${v}`);
    assert.ok(quantiles[0]! <= quantiles[1]! && quantiles[1]! <= quantiles[2]!, `quantiles in order: ${quantiles.join(' ≤ ')}`);
    assert.equal(sample(text, 'mediacache_entries{state="NotStarted"}'), 32);
    assert.equal(sample(text, 'mediacache_stored_bytes'), 0);

    // The gauge measures the loop: holding it for 100 ms shows up in the next scrape's maximum.
    await sleep(30); // a few of Node's 10 ms samples after that scrape
    holdLoop(100);
    const after = (await fetchBytes(`${proxy.server.url}/metrics`)).body.toString();
    const max = sample(after, 'mediacache_event_loop_delay_seconds{quantile="1"}');
    assert.ok(max >= 0.05, `a 100 ms stall is seen (max ${max} s)`);
  } finally {
    await proxy.close();
  }
});

test('a stall that begins right after a scrape shows in the next scrape', async () => {
  // Each scrape resets the delay histogram; the stall must not fall between two windows.
  const proxy = await startProxy();
  const metrics = new CacheMetrics(proxy.cache);
  try {
    await sleep(30);
    await metrics.render(); // a scrape: the window starts again
    holdLoop(100); // a stall at once, before Node's next 10 ms sample
    await sleep(30);
    const max = sample((await metrics.render()).body, 'mediacache_event_loop_delay_seconds{quantile="1"}');
    assert.ok(max >= 0.05, `the 100 ms stall is in the next scrape's maximum (got ${max} s)`);
  } finally {
    metrics.close();
    await proxy.close();
  }
});
