import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { EntryStatus, MediaCache } from '../src/cache.js';
import { makeData, sha256, startUpstream, type Upstream } from './helpers/upstream.js';
import { fetchBytes, getJson, nextEvent, startProxy, tempDir, waitUntil, type Proxy } from './helpers/harness.js';

const CHUNK = 64 * 1024;

/** Resolves once the entry reaches `state` (event-based: checks, then waits for state-changed). */
async function reachState(cache: MediaCache, id: string, state: string): Promise<void> {
  while (cache.getEntry(id)?.state !== state) {
    await nextEvent(cache, 'state-changed');
  }
}

/** Resolves once at least `bytes` of the entry are recorded. */
async function storedAtLeast(cache: MediaCache, id: string, bytes: number): Promise<void> {
  while ((cache.getEntry(id)?.downloadedBytes ?? 0) < bytes) {
    await nextEvent(cache, 'chunk-stored');
  }
}

describe('pre-cache (download for offline)', () => {
  let upstream: Upstream;
  const data = makeData(20 * CHUNK + 999, 11);

  before(async () => {
    upstream = await startUpstream();
    upstream.setFile('/film.mkv', data, { contentType: 'video/x-matroska' });
  });
  after(async () => {
    await upstream.close();
  });

  test('POST prefetch → 202, progress while it runs, Complete at the end, byte-exact offline', async () => {
    const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false, maxSize: 1e9, minFree: 0 });
    try {
      const { id, streamUrl } = await proxy.add(upstream.url('/film.mkv'));
      upstream.options.bytesPerSecond = 4 * 1024 * 1024;
      const res = await fetchBytes(`${proxy.server.url}/api/entries/${id}/prefetch`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(res.status, 202);
      await storedAtLeast(proxy.cache, id, 2 * CHUNK);
      const mid = await getJson<EntryStatus>(`${proxy.server.url}/api/entries/${id}`);
      assert.equal(mid.state, 'Downloading');
      assert.ok(mid.progress.percent !== null && mid.progress.percent > 0 && mid.progress.percent < 100);
      assert.ok(mid.progress.bytesPerSecond > 0, 'a rate while bytes arrive');
      assert.ok(mid.progress.etaSeconds !== null && mid.progress.etaSeconds > 0);
      upstream.options.bytesPerSecond = undefined;
      await reachState(proxy.cache, id, 'Complete');
      const done = await getJson<EntryStatus>(`${proxy.server.url}/api/entries/${id}`);
      assert.equal(done.progress.percent, 100);
      assert.equal(done.progress.etaSeconds, 0);
      assert.equal(done.downloadedBytes, data.length);

      upstream.resetStats();
      const full = await fetchBytes(streamUrl);
      assert.equal(sha256(full.body), sha256(data));
      assert.equal(upstream.bytesSent(), 0, 'a pre-cached entry plays without the upstream');
      const totals = proxy.cache.stats.totals();
      assert.equal(totals.bytesFromUpstream, data.length);
      assert.ok(totals.hits >= 1);
    } finally {
      upstream.options.bytesPerSecond = undefined;
      await proxy.close();
    }
  });

  test('pause leaves the entry Paused with its prefix; after a restart a re-run fetches only the rest', async () => {
    const dataDir = tempDir();
    let proxy: Proxy = await startProxy({ dataDir, chunkSize: CHUNK, backgroundFill: false, maxSize: 1e9, minFree: 0 });
    const { id, streamUrl } = await proxy.add(upstream.url('/film.mkv'));
    upstream.options.bytesPerSecond = 2 * 1024 * 1024;
    try {
      proxy.cache.prefetch(id);
      await storedAtLeast(proxy.cache, id, 3 * CHUNK);
      const paused = await fetchBytes(`${proxy.server.url}/api/entries/${id}/prefetch`, {
        method: 'DELETE',
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(paused.status, 200);
      const status = JSON.parse(paused.body.toString()) as EntryStatus;
      assert.equal(status.state, 'Paused');
      assert.equal(status.pendingChunks, 0);
      assert.equal(status.downloading.length, 0);
      const kept = status.downloadedBytes;
      assert.ok(kept >= 3 * CHUNK && kept < data.length);
      await proxy.stop();
      await upstream.waitQuiet();

      upstream.options.bytesPerSecond = undefined;
      upstream.resetStats();
      proxy = await startProxy({ dataDir, chunkSize: CHUNK, backgroundFill: false, maxSize: 1e9, minFree: 0 });
      assert.equal(proxy.cache.getEntry(id)?.state, 'Paused', 'state is derived from the database after a restart');
      const again = await fetchBytes(`${proxy.server.url}/api/entries/${id}/prefetch`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(again.status, 202);
      await reachState(proxy.cache, id, 'Complete');
      await upstream.waitQuiet();
      assert.equal(upstream.bytesSent(), data.length - kept, 'only the missing bytes are fetched');
      const full = await fetchBytes(streamUrl.replace(/^http:\/\/[^/]+/, proxy.server.url));
      assert.equal(sha256(full.body), sha256(data));
    } finally {
      upstream.options.bytesPerSecond = undefined;
      await proxy.close();
    }
  });

  // The opening work (the rest of a pre-cache) comes a moment after the first reply; these two put
  // that moment far away, so the first chunk's download ends, or the pause comes, before it.
  const settled = (proxy: Proxy, id: string) => (): boolean => {
    const snap = proxy.cache.inspect(id);
    return snap.transfers.every((t) => t.entryId !== id) && (snap.entry?.queue.length ?? 0) === 0;
  };

  test('a pre-cache whose first chunk is stored before its opening work is due still fetches the rest', async () => {
    const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false, maxSize: 1e9, minFree: 0, openingDelayMs: 60_000 });
    try {
      const { id } = await proxy.add(upstream.url('/film.mkv'));
      proxy.cache.prefetch(id);
      await waitUntil(proxy.cache, () => (proxy.cache.getEntry(id)?.downloadedBytes ?? 0) > 0 && settled(proxy, id)());
      // Its first row was gone with chunk 0 stored: the opening work knew a pre-cache was under way.
      assert.equal(proxy.cache.getEntry(id)?.state, 'Complete');
    } finally {
      await proxy.close();
    }
  });

  test('a pre-cache paused before its opening work is due queues nothing more', async () => {
    const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false, maxSize: 1e9, minFree: 0, openingDelayMs: 60_000 });
    upstream.options.bytesPerSecond = 64 * 1024; // chunk 0 takes about a second
    try {
      const { id } = await proxy.add(upstream.url('/film.mkv'));
      proxy.cache.prefetch(id);
      // The first body bytes came (so did the size): the opening work is pending.
      while ((proxy.cache.getEntry(id)?.totalBytes ?? null) === null) await nextEvent(proxy.cache, 'download-progress');
      await proxy.cache.pausePrefetch(id);
      await waitUntil(proxy.cache, settled(proxy, id));
      const entry = proxy.cache.getEntry(id);
      assert.equal(entry?.state, 'Paused');
      assert.ok((entry?.downloadedBytes ?? 0) < CHUNK, `stored ${entry?.downloadedBytes}`);
    } finally {
      upstream.options.bytesPerSecond = undefined;
      await proxy.close();
    }
  });

  test('pin and unpin over the API, with and without a head size', async () => {
    const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false, maxSize: 1e9, minFree: 0 });
    try {
      const { id } = await proxy.add(upstream.url('/film.mkv'));
      const base = `${proxy.server.url}/api/entries/${id}/pin`;
      const whole = await fetchBytes(base, { method: 'POST', headers: { 'content-type': 'application/json' } });
      assert.equal(whole.status, 200);
      assert.deepEqual(pinOf(whole.body), { pinned: true, pinHeadBytes: null });
      const head = await fetchBytes(base, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"headBytes":131072}',
      });
      assert.deepEqual(pinOf(head.body), { pinned: true, pinHeadBytes: 131072 });
      const bad = await fetchBytes(base, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"headBytes":-1}' });
      assert.equal(bad.status, 400);
      const un = await fetchBytes(base, { method: 'DELETE', headers: { 'content-type': 'application/json' } });
      assert.deepEqual(pinOf(un.body), { pinned: false, pinHeadBytes: null });
      const missing = await fetchBytes(`${proxy.server.url}/api/entries/AAAAAAAAAAAAAAAAAAAAAA/pin`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(missing.status, 404);
    } finally {
      await proxy.close();
    }
  });
});

function pinOf(body: Buffer): { pinned: boolean; pinHeadBytes: number | null } {
  const e = JSON.parse(body.toString()) as EntryStatus;
  return { pinned: e.pinned, pinHeadBytes: e.pinHeadBytes };
}
