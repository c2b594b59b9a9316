/**
 * Issue 9: one test per concurrency defect, each injecting its interleaving for real through a
 * seam (a store whose fsync is held, an upstream whose file is swapped at a chosen byte, a
 * throwing or re-entrant listener, a second connection holding a write lock) and asserting the
 * outcome the rebuilt core must produce. This file: eviction and demand (defects 3, 4).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { fetchBytes, getRange, startProxy, waitUntil } from './helpers/harness.js';
import { CHUNK } from './helpers/interleaving.js';
import { makeData, sha256, startUpstream, type Upstream } from './helpers/upstream.js';

describe('defect 3: eviction makes progress under --max-size', () => {
  let upstream: Upstream;
  before(async () => {
    upstream = await startUpstream();
  });
  after(() => upstream.close());

  test('a film three times the size limit plays to the end with background fill on', async () => {
    const film = makeData(12 * CHUNK, 931);
    upstream.setFile('/film.mp4', film);
    // Allocated blocks are counted: leave a little slack over four chunks.
    const proxy = await startProxy({
      chunkSize: CHUNK,
      maxSize: 4 * CHUNK + 32 * 1024,
      minFree: 0,
      lookaheadChunks: 1,
      waitTimeoutMs: 2000,
    });
    try {
      const { streamUrl } = await proxy.add(upstream.url('/film.mp4'));
      const res = await fetchBytes(streamUrl);
      assert.equal(res.status, 200);
      assert.equal(res.body.length, film.length, 'the whole film arrived');
      assert.equal(sha256(res.body), sha256(film));
    } finally {
      await proxy.close();
    }
  });

  test('a pre-cache larger than the limit is refused with 507 and never stalls other entries', async () => {
    const big = makeData(12 * CHUNK, 932);
    const small = makeData(2 * CHUNK, 933);
    upstream.setFile('/big.mp4', big);
    upstream.setFile('/small.mp4', small);
    const proxy = await startProxy({
      chunkSize: CHUNK,
      backgroundFill: false,
      maxSize: 4 * CHUNK + 32 * 1024,
      minFree: 0,
      waitTimeoutMs: 2000,
    });
    try {
      const a = await proxy.add(upstream.url('/big.mp4'));
      const b = await proxy.add(upstream.url('/small.mp4'));
      // One byte makes the size known.
      const oneByte = await getRange(a.streamUrl, 'bytes=0-0');
      assert.equal(oneByte.status, 206);
      await upstream.waitQuiet();
      assert.equal(proxy.cache.inspect(a.id).entry?.expectedTotalSize, big.length);

      const pre = await fetchBytes(`${proxy.server.url}/api/entries/${a.id}/prefetch`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
      });
      // Whatever the pre-cache did, give it time to fill (or stall) before another entry plays.
      await upstream.waitQuiet(200);
      const other = await fetchBytes(b.streamUrl);
      assert.equal(other.status, 200, `another entry streams: ${other.body.toString().slice(0, 200)}`);
      assert.equal(sha256(other.body), sha256(small));

      assert.equal(pre.status, 507, pre.body.toString());
      const error = (JSON.parse(pre.body.toString()) as { error: { code: string; message: string } }).error;
      assert.equal(error.code, 'MC_ERR_INSUFFICIENT_STORAGE');
      assert.ok(error.message.length > 0);
      assert.deepEqual(
        proxy.cache.inspect(a.id).entry?.queue.filter((r) => r.priority === 2),
        [],
        'nothing was queued for the refused pre-cache',
      );
    } finally {
      await proxy.close();
    }
  });
});

describe('defect 4: demand is released when want() throws', () => {
  test('a reader that meets a busy database mid-stream leaves no demand behind', async () => {
    const upstream = await startUpstream();
    const data = makeData(4 * CHUNK, 941);
    upstream.setFile('/busy-demand.mp4', data);
    const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false, databaseBusyTimeoutMs: 20, waitTimeoutMs: 3000 });
    const other = new Database(path.join(proxy.dataDir, 'cache.db'));
    const controller = new AbortController();
    try {
      const { id, streamUrl } = await proxy.add(upstream.url('/busy-demand.mp4'));
      // Chunk 0 stored, the rest missing: moving to chunk 1 needs a queue write.
      assert.equal((await getRange(streamUrl, `bytes=0-${CHUNK - 1}`)).status, 206);
      await upstream.waitQuiet();
      await waitUntil(proxy.cache, () => proxy.cache.inspect().transfers.length === 0);
      const rows = proxy.cache.inspect(id).entry?.rows ?? [];
      assert.ok(
        rows.some((r) => r.start === 0 && r.end === CHUNK - 1),
        'chunk 0 stored',
      );
      assert.ok(!rows.some((r) => r.end >= CHUNK && r.start < 2 * CHUNK), 'chunk 1 missing');

      const reader = proxy.cache.openReader(id, controller.signal);
      await reader.ensureSize(0);
      const it = reader.read(0, data.length - 1);
      const head = await it.next();
      assert.equal(head.done, false);
      assert.equal((head.value as Buffer).length, CHUNK, 'the stored chunk, up to where the next one starts');

      other.exec('BEGIN IMMEDIATE'); // another writer holds the database
      let outcome: unknown;
      try {
        outcome = await Promise.race([
          it.next().then(
            () => 'read',
            (err: unknown) => err,
          ),
          sleep(3000).then(() => 'still waiting'),
        ]);
      } finally {
        other.exec('COMMIT');
      }
      // The route turns this into 503 + Retry-After; what matters here is what the failure leaves behind.
      assert.ok(outcome instanceof Error, `the read failed while the database was busy: ${String(outcome)}`);
      await it.return(undefined);
      reader.close();

      const demand = proxy.cache.inspect().demand;
      assert.deepEqual(demand, [], 'no demand handle or wanted chunk left for the closed reader');
      // Nothing protects the entry any more: a size limit below it evicts all of it.
      await upstream.waitQuiet();
      await waitUntil(proxy.cache, () => proxy.cache.inspect().transfers.length === 0);
      proxy.cache.setLimits({ maxSize: 1, minFree: 0 });
      await proxy.cache.gc();
      assert.equal(proxy.cache.getEntry(id)?.downloadedBytes, 0, 'the entry was evicted');
      assert.equal(proxy.cache.inspect(id).entry?.rows.length, 0);
    } finally {
      controller.abort();
      other.close();
      await proxy.close();
      await upstream.close();
    }
  });
});
