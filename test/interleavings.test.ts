/**
 * Issue 9: one test per concurrency defect, each injecting its interleaving for real through a
 * seam (a store whose fsync is held, an upstream whose file is swapped at a chosen byte, a
 * throwing or re-entrant listener, a second connection holding a write lock) and asserting the
 * outcome the rebuilt core must produce.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync, readlinkSync, statSync, utimesSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { crc32 } from 'node:zlib';
import Database from 'better-sqlite3';
import { request as undiciRequest } from 'undici';
import type { MediaCache } from '../src/cache.js';
import { fetchBytes, getRange, nextEvent, startProxy, waitComplete, waitUntil } from './helpers/harness.js';
import { HeldStore } from './helpers/seams.js';
import { makeData, sha256, startUpstream, type Upstream } from './helpers/upstream.js';

const CHUNK = 64 * 1024;

/** Every recorded row's CRC-32 matches both the bytes in the entry's current file and `data`. */
function assertRowsAre(cache: MediaCache, id: string, data: Buffer): number {
  const entry = cache.inspect(id).entry;
  assert.ok(entry, 'entry exists');
  const file = readFileSync(entry.filePath);
  for (const r of entry.rows) {
    assert.ok(r.end < file.length, `row ${r.start}-${r.end} past the file end ${file.length}`);
    assert.equal(crc32(data.subarray(r.start, r.end + 1)), r.checksum, `row ${r.start}-${r.end} is of the current version`);
    assert.equal(crc32(file.subarray(r.start, r.end + 1)), r.checksum, `row ${r.start}-${r.end} matches its file`);
  }
  return entry.rows.length;
}

/**
 * A streamed GET the test can pause: reads up to `pauseAt` bytes (or until the body ends or is
 * cut), then resume() reads the rest.
 */
async function pausableGet(url: string, pauseAt: number, headers: Record<string, string> = {}) {
  const res = await undiciRequest(url, { headers });
  const parts: Buffer[] = [];
  let got = 0;
  let cut = false;
  let ended = false;
  const body = res.body as unknown as AsyncIterable<Buffer>;
  const it = body[Symbol.asyncIterator]();
  try {
    while (got < pauseAt) {
      const next = await it.next();
      if (next.done) {
        ended = true;
        break;
      }
      parts.push(next.value);
      got += next.value.length;
    }
  } catch {
    cut = true;
  }
  return {
    status: res.statusCode,
    received: () => Buffer.concat(parts),
    /** Reads to the end; ok=false when the body was cut. */
    async resume(): Promise<{ body: Buffer; ok: boolean }> {
      if (cut || ended) return { body: Buffer.concat(parts), ok: !cut };
      try {
        for (;;) {
          const next = await it.next();
          if (next.done) break;
          parts.push(next.value);
        }
        return { body: Buffer.concat(parts), ok: true };
      } catch {
        return { body: Buffer.concat(parts), ok: false };
      }
    },
  };
}

/** Polls `cond` every 5 ms for up to `ms` (for state no event announces, like a transfer's first bytes). */
async function until(cond: () => boolean, ms = 3000): Promise<void> {
  for (const start = performance.now(); !cond(); await sleep(5)) {
    if (performance.now() - start > ms) throw new Error(`condition not met within ${ms} ms: ${cond.toString()}`);
  }
}

/** Fetches the whole body, retrying a response that was cut or refused (an invalidation under way). */
async function fetchWhole(url: string, attempts = 5): Promise<Buffer> {
  let last = '';
  for (let i = 0; i < attempts; i++) {
    try {
      const res = await fetchBytes(url);
      if (res.status === 200) return res.body;
      last = `${res.status} ${res.body.toString().slice(0, 200)}`;
    } catch (err) {
      last = String(err);
    }
    await sleep(50);
  }
  throw new Error(`no complete 200 after ${attempts} attempts: ${last}`);
}

/** Which version each chunk of `body` matches: '1', '2', or '?' (neither), e.g. "2221111". */
function versionMap(body: Buffer, v1: Buffer, v2: Buffer): string {
  let map = '';
  for (let pos = 0; pos < body.length; pos += CHUNK) {
    const part = body.subarray(pos, pos + CHUNK);
    const end = pos + part.length;
    map += part.equals(v2.subarray(pos, end)) ? '2' : part.equals(v1.subarray(pos, end)) ? '1' : '?';
  }
  return map;
}

/** Asserts one response holds only bytes of `data`: a prefix when cut, all of it when complete. */
function assertOneVersion(got: { body: Buffer; ok: boolean }, data: Buffer, what: string): void {
  assert.equal(sha256(got.body), sha256(data.subarray(0, got.body.length)), `${what}: only bytes of the version it began with`);
  if (got.ok) assert.equal(got.body.length, data.length, `${what}: a response that ended cleanly is complete`);
}

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

      const pre = await fetchBytes(`${proxy.server.url}/api/entries/${a.id}/prefetch`, { method: 'POST' });
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

describe('defect 5: an aborted download never leaves a socket without an error listener', () => {
  test('a download cancelled as its reply completes, then a reset of the keep-alive socket: the process lives', () => {
    const script = path.join(import.meta.dirname, 'helpers', 'abort-race.ts');
    const run = spawnSync(process.execPath, ['--import', 'tsx', script], {
      cwd: path.join(import.meta.dirname, '..'),
      encoding: 'utf8',
      timeout: 60_000,
    });
    const output = `${run.stdout}\n${run.stderr}`.slice(-3000);
    assert.equal(run.signal, null, `killed by ${run.signal}: ${output}`);
    assert.equal(run.status, 0, `the embedding process died: ${output}`);
    assert.match(run.stdout, /survived \d+ rounds/);
  });
});

describe('defect 6: listeners run after bookkeeping', () => {
  let upstream: Upstream;
  before(async () => {
    upstream = await startUpstream();
  });
  after(() => upstream.close());

  test('a chunk-stored listener that throws changes nothing: exact bytes, the entry ends Complete', async () => {
    const data = makeData(4 * CHUNK + 123, 961);
    upstream.setFile('/throwing-listener.mp4', data);
    const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false });
    let calls = 0;
    const throwing = (): void => {
      calls++;
      throw new Error('listener bug');
    };
    try {
      const { id, streamUrl } = await proxy.add(upstream.url('/throwing-listener.mp4'));
      proxy.cache.on('chunk-stored', throwing);
      const res = await fetchBytes(streamUrl);
      assert.equal(res.status, 200);
      assert.equal(sha256(res.body), sha256(data));
      await waitComplete(proxy, id);
      await upstream.waitQuiet();
      assert.ok(calls >= 5, `the listener ran for every chunk (${calls})`);
      const status = proxy.cache.getEntry(id);
      assert.equal(status?.state, 'Complete');
      assert.equal(status?.error, null);
      assertRowsAre(proxy.cache, id, data);
    } finally {
      proxy.cache.off('chunk-stored', throwing);
      await proxy.close();
    }
  });

  test('a chunk-stored listener that calls prefetch() leaves no transfer the scheduler cannot see', async () => {
    const data = makeData(8 * CHUNK, 962);
    upstream.setFile('/reentrant.mp4', data);
    const max = 3;
    const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false, maxConcurrentDownloads: max });
    const { id, streamUrl } = await proxy.add(upstream.url('/reentrant.mp4'));
    const reentrant = (): void => {
      proxy.cache.prefetch(id);
    };
    // Every few ms: upstream requests open vs what the scheduler counts and shows.
    const samples: Array<{ upstream: number; slots: number; transfers: number }> = [];
    const sampler = setInterval(() => {
      const snap = proxy.cache.inspect();
      samples.push({ upstream: upstream.activeResponses(), slots: snap.slotsUsed, transfers: snap.transfers.length });
    }, 2);
    let closed = false;
    try {
      upstream.options.bytesPerSecond = 256 * 1024;
      proxy.cache.on('chunk-stored', reentrant);
      // A read that starts near the end of chunk 1 stores its tail: the listener's prefetch queues
      // the rest of chunk 1 while the transfer that stored the tail is still finishing.
      const from = 2 * CHUNK - 1000;
      const seek = await getRange(streamUrl, `bytes=${from}-${2 * CHUNK + 10}`);
      assert.equal(seek.status, 206);
      assert.equal(sha256(seek.body), sha256(data.subarray(from, 2 * CHUNK + 11)));
      await waitComplete(proxy, id);
      await upstream.waitQuiet(50);
      clearInterval(sampler);

      const quiet = proxy.cache.inspect();
      assert.equal(quiet.slotsUsed, 0, 'every slot returned once quiet');
      assert.deepEqual(quiet.transfers, []);
      const over = samples.filter((s) => s.upstream > max);
      assert.deepEqual(over.slice(0, 3), [], `upstream requests beyond the limit of ${max} (${over.length} samples)`);
      // A transfer the scheduler lost would show as an upstream request nobody counts, for as long as it runs.
      const unseen = samples.filter((s) => s.upstream > s.slots);
      assert.ok(unseen.length <= 5, `upstream requests the scheduler did not count in ${unseen.length} samples`);
      proxy.cache.off('chunk-stored', reentrant);
      assert.equal(sha256(await fetchWhole(streamUrl)), sha256(data));
      upstream.options.bytesPerSecond = undefined;
      await proxy.close();
      closed = true;
      await upstream.waitQuiet(20);
      assert.equal(upstream.activeResponses(), 0);
    } finally {
      clearInterval(sampler);
      upstream.options.bytesPerSecond = undefined;
      if (!closed) await proxy.close();
    }
  });

  test('a re-entrant prefetch while transfers run: close() ends every upstream request it started', async () => {
    const big = 4 * CHUNK;
    const data = makeData(4 * big, 963);
    upstream.setFile('/reentrant-close.mp4', data);
    const proxy = await startProxy({ chunkSize: big, backgroundFill: false, maxConcurrentDownloads: 3 });
    let closed = false;
    try {
      const { id, streamUrl } = await proxy.add(upstream.url('/reentrant-close.mp4'));
      let stored = 0;
      const reentrant = (): void => {
        stored++;
        proxy.cache.prefetch(id);
      };
      proxy.cache.on('chunk-stored', reentrant);
      upstream.options.bytesPerSecond = 256 * 1024;
      const seek = await getRange(streamUrl, `bytes=${2 * big - 1000}-${2 * big - 1}`);
      assert.equal(seek.status, 206);
      await waitUntil(proxy.cache, () => stored >= 1);
      await sleep(20);
      const snap = proxy.cache.inspect();
      assert.ok(upstream.activeResponses() <= snap.slotsUsed, `upstream ${upstream.activeResponses()} vs slots ${snap.slotsUsed}`);
      await proxy.close();
      closed = true;
      const sentAtClose = upstream.bytesSent('/reentrant-close.mp4');
      await upstream.waitQuiet(20);
      assert.ok(
        upstream.bytesSent('/reentrant-close.mp4') - sentAtClose <= 64 * 1024,
        `bytes the upstream sent after close(): ${upstream.bytesSent('/reentrant-close.mp4') - sentAtClose}`,
      );
    } finally {
      upstream.options.bytesPerSecond = undefined;
      if (!closed) await proxy.close();
    }
  });
});

describe('defect 7: file handles are bounded', () => {
  test('40 entries read once leave at most 20 handles open into the data dir', async () => {
    const upstream = await startUpstream();
    const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false });
    try {
      const files = Array.from({ length: 40 }, (_, i) => makeData(10_000 + i, 970 + i));
      for (const [i, data] of files.entries()) {
        upstream.setFile(`/fd${i}.mp4`, data);
        const { streamUrl } = await proxy.add(upstream.url(`/fd${i}.mp4`));
        const res = await fetchBytes(streamUrl);
        assert.equal(sha256(res.body), sha256(data), `entry ${i}`);
      }
      await upstream.waitQuiet();
      await waitUntil(proxy.cache, () => proxy.cache.inspect().transfers.length === 0);
      const dir = path.join(proxy.dataDir, 'files');
      const intoDataDir = readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir);
        } catch {
          return false; // closed meanwhile
        }
      }).length;
      assert.ok(intoDataDir <= 20, `fds into the data dir: ${intoDataDir}`);
      assert.ok(proxy.cache.inspect().openFiles <= 20, `openFiles ${proxy.cache.inspect().openFiles}`);
    } finally {
      await proxy.close();
      await upstream.close();
    }
  });
});

describe('defect 8: a busy database never freezes the proxy', () => {
  test('while another process holds the write lock: no event-loop stall, a quick 503, cached streams go on', async () => {
    const upstream = await startUpstream();
    const cached = makeData(40 * CHUNK, 981);
    upstream.setFile('/cached.mp4', cached);
    // The default busy timeout: this test checks it.
    const proxy = await startProxy({ chunkSize: CHUNK });
    // Event-loop stalls: the longest gap between ticks of a 5 ms interval, beyond its period.
    let lastTick = 0;
    let maxStallMs = 0;
    let monitor: NodeJS.Timeout | undefined;
    let worker: Worker | undefined;
    try {
      const { id, streamUrl } = await proxy.add(upstream.url('/cached.mp4'));
      assert.equal(sha256((await fetchBytes(streamUrl)).body), sha256(cached));
      await waitComplete(proxy, id);
      await upstream.waitQuiet();

      // A stream of the cached entry is under way, its client reading slowly.
      const stream = await pausableGet(streamUrl, CHUNK);
      assert.equal(stream.status, 200);

      // Another connection holds the write lock for 1.5 s, from a thread of its own.
      const require = createRequire(import.meta.url);
      worker = new Worker(
        `const { parentPort, workerData } = require('node:worker_threads');
         const Database = require(workerData.module);
         const db = new Database(workerData.file);
         db.exec('BEGIN IMMEDIATE');
         parentPort.postMessage('locked');
         setTimeout(() => { db.exec('COMMIT'); db.close(); parentPort.postMessage('released'); }, 1500);`,
        { eval: true, workerData: { module: require.resolve('better-sqlite3'), file: path.join(proxy.dataDir, 'cache.db') } },
      );
      const messages: string[] = [];
      const released = new Promise<void>((resolve) =>
        worker?.on('message', (m: string) => {
          messages.push(m);
          if (m === 'released') resolve();
        }),
      );
      await new Promise<void>((resolve) => worker?.once('message', () => resolve()));
      assert.deepEqual(messages, ['locked']);

      lastTick = performance.now();
      monitor = setInterval(() => {
        const now = performance.now();
        maxStallMs = Math.max(maxStallMs, now - lastTick - 5);
        lastTick = now;
      }, 5);
      const startedAt = performance.now();
      const post = await fetchBytes(`${proxy.server.url}/api/entries`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ url: upstream.url('/new-while-busy.mp4') }),
      });
      const answeredIn = performance.now() - startedAt;
      const rest = await stream.resume();
      clearInterval(monitor);
      const stillLocked = !messages.includes('released');
      await released;

      const seen = `POST ${post.status} in ${answeredIn.toFixed(0)} ms, max event-loop stall ${maxStallMs.toFixed(0)} ms`;
      assert.ok(maxStallMs < 200, `the event loop stalled: ${seen}`);
      assert.equal(post.status, 503, `${seen}: ${post.body.toString().slice(0, 200)}`);
      assert.ok(post.headers['retry-after'] !== undefined, 'Retry-After');
      assert.equal((JSON.parse(post.body.toString()) as { error: { code: string } }).error.code, 'MC_ERR_DATABASE');
      assert.ok(answeredIn < 500, `the write-needing request was answered in ${answeredIn.toFixed(0)} ms`);
      assert.equal(rest.ok, true, 'the cached stream was not cut');
      assert.equal(sha256(rest.body), sha256(cached), 'the cached stream is exact');
      assert.ok(stillLocked, 'all of this happened while the lock was held');
    } finally {
      clearInterval(monitor);
      await worker?.terminate();
      await proxy.close();
      await upstream.close();
    }
  });
});
