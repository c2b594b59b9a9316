import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { MediaCache } from '../src/cache.js';
import { planEviction } from '../src/store/eviction-plan.js';
import type { EntryRow } from '../src/db/repository.js';
import { makeData, sha256, startUpstream, type Upstream } from './helpers/upstream.js';
import { flipByte } from './helpers/seams.js';
import { fetchBytes, getRange, nextEvent, startProxy, waitUntil, type Proxy } from './helpers/harness.js';

const CHUNK = 64 * 1024;
const FILE = 4 * CHUNK;

/** Allocated bytes of every cached file, as the evictor measures them (blocks, not apparent size). */
function diskUsage(dataDir: string): number {
  const dir = path.join(dataDir, 'files');
  return readdirSync(dir).reduce((sum, name) => sum + statSync(path.join(dir, name)).blocks * 512, 0);
}

async function reachState(cache: MediaCache, id: string, state: string): Promise<void> {
  while (cache.getEntry(id)?.state !== state) await nextEvent(cache, 'state-changed');
}

describe('eviction', () => {
  let upstream: Upstream;
  let proxy: Proxy;
  const files = new Map<string, Buffer>();

  before(async () => {
    upstream = await startUpstream();
    for (let i = 0; i < 9; i++) {
      const data = makeData(i === 7 ? 8 * CHUNK + 100 : i === 8 ? 16 * CHUNK : FILE, 100 + i);
      files.set(`/e${i}.mp4`, data);
      upstream.setFile(`/e${i}.mp4`, data);
    }
  });
  after(async () => {
    await upstream.close();
  });

  /** A fresh cache with `names` fully cached, last accessed in the given order (first = oldest). */
  async function cached(names: string[]): Promise<string[]> {
    proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false, maxSize: 1e9, minFree: 0 });
    const ids: string[] = [];
    for (const name of names) {
      const { id } = await proxy.add(upstream.url(name));
      proxy.cache.prefetch(id);
      await reachState(proxy.cache, id, 'Complete');
      // Complete is recorded a moment before the last download leaves the in-flight set, and
      // an entry with a download under way is never evicted: wait for it to settle.
      await waitUntil(proxy.cache, () => !proxy.cache.inspect().transfers.some((t) => t.entryId === id));
      ids.push(id);
    }
    // A deterministic LRU order: a reader's open records the access; one per millisecond.
    for (const id of ids) {
      const now = Date.now();
      while (Date.now() === now) await new Promise((r) => setTimeout(r, 1));
      proxy.cache.openReader(id, new AbortController().signal).close();
    }
    return ids;
  }

  /** Silent bit rot in the chunk at `start` (size and mtime kept), found and dropped by verify. */
  async function rotChunk(id: string, start: number): Promise<void> {
    flipByte(proxy.cache.inspect(id).entry?.filePath ?? '', start + 5);
    const report = await proxy.cache.verify(id);
    assert.deepEqual(report.damaged, [{ id, start, end: start + CHUNK - 1 }]);
  }

  const stored = (id: string): number => proxy.cache.getEntry(id)?.downloadedBytes ?? -1;

  test('least recently accessed entries go first, whole chunks from the end of the file', async () => {
    const [oldest, middle, newest] = await cached(['/e0.mp4', '/e1.mp4', '/e2.mp4']);
    try {
      const before = diskUsage(proxy.dataDir);
      assert.ok(before >= 3 * FILE);
      // Room for a bit more than two files: the oldest must go entirely.
      proxy.cache.setLimits({ maxSize: 2 * FILE + 16 * 1024 });
      const report = await proxy.cache.gc();
      assert.equal(stored(oldest as string), 0);
      assert.equal(proxy.cache.getEntry(oldest as string)?.state, 'NotStarted');
      assert.equal(stored(middle as string), FILE);
      assert.equal(stored(newest as string), FILE);
      assert.ok(report.freedBytes >= FILE);
      assert.ok(diskUsage(proxy.dataDir) <= 2 * FILE + 16 * 1024);

      // One chunk over: the next oldest loses exactly its last chunk; its file is cut there.
      proxy.cache.setLimits({ maxSize: diskUsage(proxy.dataDir) - 1 });
      await proxy.cache.gc();
      assert.equal(stored(middle as string), FILE - CHUNK);
      assert.deepEqual(proxy.cache.getEntry(middle as string)?.chunks, [[0, FILE - CHUNK - 1]]);
      assert.equal(proxy.cache.getEntry(middle as string)?.state, 'Paused');
      assert.equal(stored(newest as string), FILE);
      const file = proxy.cache.inspect(middle as string).entry?.filePath ?? '';
      assert.equal(statSync(file).size, FILE - CHUNK);
      assert.equal(proxy.cache.stats.totals().evictions, 2);

      // Evicted bytes come back from the upstream on demand, byte-exact.
      const { streamUrl } = await proxy.add(upstream.url('/e1.mp4'));
      const res = await fetchBytes(streamUrl);
      assert.equal(sha256(res.body), sha256(files.get('/e1.mp4') as Buffer));
    } finally {
      await proxy.close();
    }
  });

  test('pinned entries, a pre-cache under way and what a reader still needs are never evicted', async () => {
    const [a, b, c, d] = await cached(['/e0.mp4', '/e1.mp4', '/e2.mp4', '/e3.mp4']);
    try {
      proxy.cache.pin(a as string);
      // b is being read: its reader, at byte 0, still needs the chunk it reads (its lookahead
      // starts after 1 MiB); the chunks behind and beyond that may go.
      const controller = new AbortController();
      const reader = proxy.cache.openReader(b as string, controller.signal);
      const iter = reader.read(0, FILE - 1);
      await iter.next();
      // c is being pre-cached: its missing chunk is queued at MEDIUM and nothing may take its bytes.
      upstream.options.bytesPerSecond = 1; // keeps c's download running
      await rotChunk(c as string, 3 * CHUNK); // c lost its last chunk
      proxy.cache.prefetch(c as string);
      try {
        proxy.cache.setLimits({ maxSize: CHUNK });
        await proxy.cache.gc();
        assert.equal(stored(a as string), FILE, 'pinned');
        assert.equal(stored(b as string), CHUNK, 'being streamed: the chunk its reader is in stays');
        assert.deepEqual(proxy.cache.getEntry(b as string)?.chunks, [[0, CHUNK - 1]]);
        assert.equal(stored(c as string), 3 * CHUNK, 'being prefetched');
        assert.equal(stored(d as string), 0, 'the only candidate went, though newest');

        // Once released and unpinned, the same pass takes them in LRU order.
        await iter.return(undefined);
        reader.close();
        proxy.cache.unpin(a as string);
        await proxy.cache.pausePrefetch(c as string);
        await proxy.cache.gc();
        assert.equal(stored(a as string), 0);
        assert.equal(stored(c as string), 0);
        assert.ok(stored(b as string) <= CHUNK, 'the newest keeps at most what fits');
        assert.ok(diskUsage(proxy.dataDir) <= CHUNK);
      } finally {
        upstream.options.bytesPerSecond = undefined;
      }
    } finally {
      await proxy.close();
    }
  });

  test('a head pin keeps the head and the tail chunk; the middle is reclaimed from the sparse file', async () => {
    const [big] = await cached(['/e7.mp4']);
    const id = big as string;
    const data = files.get('/e7.mp4') as Buffer;
    try {
      proxy.cache.pin(id, CHUNK + 1); // the head spans two chunks
      const before = diskUsage(proxy.dataDir);
      proxy.cache.setLimits({ maxSize: CHUNK });
      await proxy.cache.gc();
      const entry = proxy.cache.getEntry(id);
      assert.deepEqual(entry?.chunks, [
        [0, 2 * CHUNK - 1],
        [8 * CHUNK, data.length - 1],
      ]);
      assert.equal(entry?.state, 'Paused');
      const after = diskUsage(proxy.dataDir);
      assert.ok(after < before - 4 * CHUNK, `allocated ${after} after ${before}`);
      assert.equal(statSync(proxy.cache.inspect(id).entry?.filePath ?? '').size, data.length, 'apparent size unchanged: sparse');

      upstream.resetStats();
      const head = await getRange(`${proxy.server.url}/stream/${id}`, `bytes=0-${2 * CHUNK - 1}`);
      assert.equal(sha256(head.body), sha256(data.subarray(0, 2 * CHUNK)));
      const tail = await getRange(`${proxy.server.url}/stream/${id}`, 'bytes=-50');
      assert.equal(sha256(tail.body), sha256(data.subarray(data.length - 50)));
      assert.equal(upstream.bytesSent(), 0, 'head and tail play from the cache');
    } finally {
      await proxy.close();
    }
  });

  test('the size limit holds at every stored chunk: downloads wait for room and older data makes way', async () => {
    const maxSize = 6 * CHUNK + 48 * 1024;
    proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false, maxSize, minFree: 0, maxConcurrentDownloads: 3 });
    let peak = 0;
    const onStored = (): void => {
      peak = Math.max(peak, diskUsage(proxy.dataDir));
    };
    proxy.cache.on('chunk-stored', onStored);
    try {
      for (const name of ['/e0.mp4', '/e1.mp4', '/e2.mp4', '/e3.mp4']) {
        const { streamUrl } = await proxy.add(upstream.url(name));
        const res = await fetchBytes(streamUrl);
        assert.equal(res.status, 200);
        assert.equal(sha256(res.body), sha256(files.get(name) as Buffer), name);
        onStored();
      }
      assert.ok(peak <= maxSize, `peak allocated ${peak} > max ${maxSize}`);
      assert.ok(proxy.cache.stats.totals().evictions >= 2);

      // A seek far into a large file allocates only what was fetched: the file is sparse, so
      // nothing else has to go although its apparent size exceeds the room left.
      await proxy.cache.gc(); // re-measure: the worker's figures and the test's agree from here
      const before = proxy.cache.stats.totals().evictions;
      // Room for six chunks (admission counts each running download in full, plus a margin).
      proxy.cache.setLimits({ maxSize: diskUsage(proxy.dataDir) + 6 * CHUNK });
      const big = await proxy.add(upstream.url('/e8.mp4'));
      const data = files.get('/e8.mp4') as Buffer;
      const res = await getRange(big.streamUrl, `bytes=${12 * CHUNK}-${12 * CHUNK + 99}`);
      assert.equal(sha256(res.body), sha256(data.subarray(12 * CHUNK, 12 * CHUNK + 100)));
      const file = proxy.cache.inspect(big.id).entry?.filePath ?? '';
      await reachState(proxy.cache, big.id, 'Paused');
      assert.ok(statSync(file).size >= 13 * CHUNK, 'apparent size: at least up to the chunk read, beyond the room left');
      // The chunk read, and the head and tail chunks when the manager fetches them on opening.
      assert.ok(statSync(file).blocks * 512 <= 3 * CHUNK + 16384, 'allocated: only what was fetched');
      await proxy.cache.gc();
      assert.equal(proxy.cache.stats.totals().evictions, before);
    } finally {
      proxy.cache.off('chunk-stored', onStored);
      await proxy.close();
    }
  });
});

describe('planEviction', () => {
  const entry = (over: Partial<EntryRow> = {}): EntryRow => ({
    id: 'x',
    cacheKey: 'k',
    sourceId: null,
    mediaId: null,
    quality: null,
    originalUrl: 'http://h/x',
    filePath: 'x.bin',
    chunkSize: 100,
    expectedTotalSize: 1000,
    mimeType: null,
    etag: null,
    lastModified: null,
    isComplete: true,
    errorMessage: null,
    createdAt: 0,
    lastAccessed: 0,
    accessCount: 0,
    pinned: false,
    pinHeadBytes: null,
    bitrate: null,
    version: 1,
    ...over,
  });
  const rows = Array.from({ length: 10 }, (_, i) => ({ start: i * 100, end: i * 100 + 99, checksum: 0, downloadedAt: 0 }));

  test('drops whole chunks from the end until the need is met, then truncates', () => {
    const plan = planEviction(entry(), rows, 150, 1000);
    assert.deepEqual(
      plan.drop.map((r) => r.start),
      [900, 800],
    );
    assert.deepEqual(plan.action, { kind: 'truncate', length: 800 });
  });
  test('everything → delete; a whole pin → nothing', () => {
    assert.equal(planEviction(entry(), rows, 5000, 1000).action.kind, 'delete');
    assert.equal(planEviction(entry({ pinned: true }), rows, 5000, 1000).action.kind, 'none');
  });
  test('a head pin keeps head chunks and the tail chunk and rewrites', () => {
    const plan = planEviction(entry({ pinned: true, pinHeadBytes: 150 }), rows, 5000, 1000);
    assert.deepEqual(
      plan.drop.map((r) => r.start),
      [800, 700, 600, 500, 400, 300, 200],
    );
    assert.equal(plan.action.kind, 'rewrite');
  });
});
