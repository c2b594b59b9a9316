/**
 * Issue 9: one test per concurrency defect, each injecting its interleaving for real through a
 * seam (a store whose fsync is held, an upstream whose file is swapped at a chosen byte, a
 * throwing or re-entrant listener, a second connection holding a write lock) and asserting the
 * outcome the rebuilt core must produce. This file: sockets, listeners, files, a busy database (defects 5–8).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { fetchBytes, getRange, startProxy, waitComplete, waitUntil } from './helpers/harness.js';
import { CHUNK, assertRowsAre, fetchWhole, pausableGet } from './helpers/interleaving.js';
import { makeData, sha256, startUpstream, type Upstream } from './helpers/upstream.js';

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
