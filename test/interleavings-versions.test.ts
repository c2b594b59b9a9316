/**
 * Issue 9: one test per concurrency defect, each injecting its interleaving for real through a
 * seam (a store whose fsync is held, an upstream whose file is swapped at a chosen byte, a
 * throwing or re-entrant listener, a second connection holding a write lock) and asserting the
 * outcome the rebuilt core must produce. This file: versions (defects 1, 2).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync, statSync, utimesSync, writeSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fetchBytes, getRange, nextEvent, startProxy, waitComplete } from './helpers/harness.js';
import { HeldStore } from './helpers/seams.js';
import { CHUNK, assertOneVersion, assertRowsAre, fetchWhole, pausableGet, until, versionMap } from './helpers/interleaving.js';
import { makeData, sha256, startUpstream, type Upstream } from './helpers/upstream.js';

describe('defect 1: one version per file', () => {
  let upstream: Upstream;
  before(async () => {
    upstream = await startUpstream();
  });
  after(() => upstream.close());

  test('a transfer held in its fsync while the upstream changes never records old bytes into the new version', async () => {
    const v1 = makeData(8 * CHUNK, 901);
    const v2 = makeData(8 * CHUNK, 902);
    upstream.setFile('/held-sync.mp4', v1);
    let held!: HeldStore;
    const proxy = await startProxy({
      chunkSize: CHUNK,
      backgroundFill: false,
      maxConcurrentDownloads: 6,
      waitTimeoutMs: 3000,
      createStore: (root) => (held = new HeldStore(root)),
    });
    try {
      const { id, streamUrl } = await proxy.add(upstream.url('/held-sync.mp4'));
      // Every transfer of v1 writes its bytes, then waits in its fsync. (v1's file is the first one
      // synced; a new version's own file is not held.)
      let v1File: string | undefined;
      const gate = held.holdSync((file) => (v1File ??= file) === file);
      // A player starts before the change; readers are fed from memory, so its head arrives.
      upstream.options.bytesPerSecond = 256 * 1024;
      const early = await pausableGet(streamUrl, CHUNK, { range: `bytes=0-${2 * CHUNK - 1}` });
      assert.equal(early.status, 206);
      await held.whenSyncHeld(1); // chunk 0 of v1 is written and blocked before its row
      // The player's next chunk is on its way from the upstream (v1) when the file changes.
      await until(() => proxy.cache.inspect().transfers.some((t) => t.chunkIndex === 1 && t.received > 0));

      // The file is replaced like a rename; a request at another chunk meets If-Range → 200.
      upstream.options.bytesPerSecond = undefined;
      upstream.setFile('/held-sync.mp4', v2);
      const invalidated = nextEvent(proxy.cache, 'entry-invalidated');
      const other = await getRange(streamUrl, `bytes=${5 * CHUNK}-${5 * CHUNK + 999}`);
      await Promise.race([invalidated, sleep(3000)]);
      const foundByIfRange = upstream.requests.some((r) => r.ifRange !== undefined && r.status === 200);

      // The held v1 transfers now finish their fsync and try to record their rows.
      gate.release();
      const first = await early.resume();
      assertOneVersion(first, v1.subarray(0, 2 * CHUNK), 'the response begun before the change');
      await upstream.waitQuiet();

      const full = await fetchWhole(streamUrl);
      assert.equal(sha256(full), sha256(v2), `a full read after the change is exactly v2; chunks by version: ${versionMap(full, v1, v2)}`);
      await waitComplete(proxy, id);
      await upstream.waitQuiet();
      assert.equal(assertRowsAre(proxy.cache, id, v2) > 0, true);
      assert.equal(sha256(readFileSync(proxy.cache.inspect(id).entry?.filePath ?? '')), sha256(v2), 'the current file is v2');
      assert.ok(foundByIfRange, 'the change was found by If-Range answered 200 while the v1 transfers were held');
      assert.equal(other.status, 206, `the request after the change: ${other.body.toString().slice(0, 200)}`);
      assert.equal(sha256(other.body), sha256(v2.subarray(5 * CHUNK, 5 * CHUNK + 1000)), 'a request after the change gets v2');
    } finally {
      held?.releaseAll();
      upstream.options.bytesPerSecond = undefined;
      await proxy.close();
    }
  });

  test('the upstream-change replay, scaled down: read the head, swap mid-transfer, read all: only the new version', async () => {
    const size = 24 * CHUNK;
    const v1 = makeData(size, 911);
    const v2 = makeData(size, 912);
    upstream.setFile('/replay.mp4', v1);
    upstream.options.bytesPerSecond = 4 * 1024 * 1024;
    let held!: HeldStore;
    const proxy = await startProxy({
      chunkSize: CHUNK,
      lookaheadChunks: 4,
      // Slots to spare beside the held transfers: background fill goes on and meets the change.
      maxConcurrentDownloads: 8,
      waitTimeoutMs: 3000,
      createStore: (root) => (held = new HeldStore(root)),
    });
    try {
      const { id, streamUrl } = await proxy.add(upstream.url('/replay.mp4'));
      upstream.resetStats();
      // The file is swapped while background fill and lookahead transfers are mid-body. Transfers
      // under way finish with v1 bytes; from the swap on their fsyncs are held until the change is
      // found (a transfer started after the swap meets If-Range → 200), so they finish after it.
      const invalidated = nextEvent(proxy.cache, 'entry-invalidated');
      let gate: { release(): void } | undefined;
      const swapped = upstream.swapAt('/replay.mp4', { afterBytes: 6 * CHUNK + 12_345 }, v2).then(() => {
        const v1File = path.basename(proxy.cache.inspect(id).entry?.filePath ?? '');
        gate = held.holdSync((file) => path.basename(file) === v1File);
      });
      const head = await pausableGet(streamUrl, 4 * CHUNK);
      await swapped;
      await Promise.race([invalidated, sleep(2000)]);
      gate?.release();
      const first = await head.resume();
      assertOneVersion(first, v1, 'the response begun before the swap');

      const full = await fetchWhole(streamUrl);
      assert.equal(sha256(full), sha256(v2), `a full read after the swap is exactly v2; chunks by version: ${versionMap(full, v1, v2)}`);
      await waitComplete(proxy, id);
      await upstream.waitQuiet();
      assertRowsAre(proxy.cache, id, v2);
      upstream.options.bytesPerSecond = undefined;
      upstream.resetStats();
      assert.equal(sha256(await fetchWhole(streamUrl)), sha256(v2), 'served from the cache, still v2');
      assert.equal(upstream.requests.length, 0);
    } finally {
      held?.releaseAll();
      upstream.options.bytesPerSecond = undefined;
      await proxy.close();
    }
  });
});

describe('defect 2: verify drops a chunk ahead of a reader', () => {
  test('a reader paused on a complete entry gets exact bytes after verify drops a chunk ahead of it', async () => {
    const upstream = await startUpstream();
    const data = makeData(4 * CHUNK, 921);
    upstream.setFile('/rot-ahead.mp4', data);
    const proxy = await startProxy({ chunkSize: CHUNK, waitTimeoutMs: 2000 });
    const controller = new AbortController();
    try {
      const { id, streamUrl } = await proxy.add(upstream.url('/rot-ahead.mp4'));
      assert.equal(sha256((await fetchBytes(streamUrl)).body), sha256(data));
      await waitComplete(proxy, id);
      await upstream.waitQuiet();

      const reader = proxy.cache.openReader(id, controller.signal);
      await reader.ensureSize(0);
      const parts: Buffer[] = [];
      const it = reader.read(0, data.length - 1);
      const firstPart = await it.next();
      assert.equal(firstPart.done, false);
      parts.push(Buffer.from(firstPart.value as Buffer));
      assert.ok(parts[0]!.length <= 2 * CHUNK, 'the reader is still before the chunk about to rot');

      // Bit rot in chunk 3 that leaves size and mtime alone; the scrub finds it and drops the row.
      const file = proxy.cache.inspect(id).entry?.filePath ?? '';
      const before = statSync(file);
      const fd = openSync(file, 'r+');
      writeSync(fd, Buffer.from([(data[3 * CHUNK + 5] ?? 0) ^ 0x40]), 0, 1, 3 * CHUNK + 5);
      closeSync(fd);
      utimesSync(file, before.atime, before.mtime);
      const report = await proxy.cache.verify(id);
      assert.deepEqual(report.damaged, [{ id, start: 3 * CHUNK, end: 4 * CHUNK - 1 }]);

      // The reader goes on and reaches the dropped chunk: it must be downloaded again for it.
      try {
        for (let next = await it.next(); !next.done; next = await it.next()) parts.push(Buffer.from(next.value));
      } finally {
        reader.close();
      }
      const body = Buffer.concat(parts);
      assert.equal(body.length, data.length);
      assert.equal(sha256(body), sha256(data));
      await upstream.waitQuiet();
      assertRowsAre(proxy.cache, id, data);
    } finally {
      controller.abort();
      await proxy.close();
      await upstream.close();
    }
  });
});
