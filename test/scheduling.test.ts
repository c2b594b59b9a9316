import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { makeData, sha256, startUpstream, type Upstream } from './helpers/upstream.js';
import { fetchBytes, getRange, nextEvent, startProxy, waitComplete, waitUntil } from './helpers/harness.js';
import { Priority } from '../src/db/repository.js';
import type { DownloadOutcome } from '../src/events.js';

const CHUNK = 64 * 1024;
let upstream: Upstream;

before(async () => {
  upstream = await startUpstream();
});
after(() => upstream.close());

/** Reads the first `bytes` of a streamed reply, then drops the connection. */
async function readThenDisconnect(url: string, range: string, bytes: number): Promise<Buffer> {
  const res = await request(url, { headers: { range } });
  const parts: Buffer[] = [];
  let got = 0;
  for await (const piece of res.body as AsyncIterable<Buffer>) {
    parts.push(piece);
    got += piece.length;
    if (got >= bytes) break;
  }
  res.body.destroy();
  return Buffer.concat(parts).subarray(0, bytes);
}

test('opening an entry queues its head and tail chunks at HIGH', async () => {
  const data = makeData(40 * CHUNK, 31);
  upstream.setFile('/tail-first.mp4', data);
  const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false, lookaheadChunks: 1 });
  try {
    const { id, streamUrl } = await proxy.add(upstream.url('/tail-first.mp4'));
    upstream.resetStats();
    const mid = 20 * CHUNK + 5;
    const res = await getRange(streamUrl, `bytes=${mid}-${mid + 99}`);
    assert.equal(sha256(res.body), sha256(data.subarray(mid, mid + 100)));
    // The opening work starts after the first reply (and may wait for start-up's first disk
    // measurement): wait for its rows, not for a quiet spell at the upstream.
    const stored = (): number[] => (proxy.cache.inspect(id).entry?.rows ?? []).map((c) => c.start);
    await waitUntil(proxy.cache, () => stored().includes(0) && stored().includes(39 * CHUNK));
    const asked = upstream.requests.map((r) => r.range);
    assert.ok(asked.includes(`bytes=0-${CHUNK - 1}`), `head requested: ${asked.join(' ')}`);
    assert.ok(asked.includes(`bytes=${39 * CHUNK}-${40 * CHUNK - 1}`), `tail requested: ${asked.join(' ')}`);
  } finally {
    await proxy.close();
  }
});

test('the opening work is pending, never missing: a first download that ends before it is due queues it as it ends', async () => {
  // The opening work's moment is put far away: chunk 0's download ends before it.
  const small = 4 * 1024;
  const data = makeData(8 * small, 37);
  upstream.setFile('/quick-head.mp4', data);
  const proxy = await startProxy({ chunkSize: small, backgroundFill: false, lookaheadChunks: 0, openingDelayMs: 60_000 });
  try {
    const { id, streamUrl } = await proxy.add(upstream.url('/quick-head.mp4'));
    let atEnd: { transfers: number[]; queued: number[] } | undefined;
    proxy.cache.on('download-ended', ({ entryId, chunkIndex }) => {
      if (atEnd || entryId !== id || chunkIndex !== 0) return;
      const snap = proxy.cache.inspect(id);
      atEnd = {
        transfers: snap.transfers.filter((t) => t.entryId === id).map((t) => t.chunkIndex),
        queued: (snap.entry?.queue ?? []).map((r) => r.chunkIndex),
      };
    });
    const res = await getRange(streamUrl, 'bytes=0-99');
    assert.equal(sha256(res.body), sha256(data.subarray(0, 100)));
    await waitUntil(proxy.cache, () => atEnd !== undefined);
    // The moment chunk 0's download has ended, the tail is queued or on its way: the entry never
    // looks settled (nothing running, nothing queued) with its opening work still to come.
    assert.ok(atEnd?.transfers.includes(7) || atEnd?.queued.includes(7), `tail not queued when chunk 0 ended: ${JSON.stringify(atEnd)}`);
  } finally {
    await proxy.close();
  }
});

test('with a known bitrate, lookahead covers seconds of playback instead of a fixed count of chunks', async () => {
  const data = makeData(40 * CHUNK, 35);
  upstream.setFile('/bitrate.mkv', data);
  const last = 39;
  /** The HIGH set the reader asks for when its lookahead starts (after 1 MiB), as queued then. */
  const firstLookahead = async (extra: { bitrate?: number }): Promise<number[]> => {
    const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false, lookaheadChunks: 6, lookaheadSeconds: 2 });
    try {
      const { id, streamUrl } = await proxy.add(upstream.url('/bitrate.mkv'), extra);
      let asked: number[] | undefined;
      // want() queues the whole set before the pump starts the first download: snapshot then.
      proxy.cache.on('download-started', ({ entryId, chunkIndex, priority }) => {
        if (asked || entryId !== id || priority !== Priority.HIGH || chunkIndex === 0 || chunkIndex === last) return;
        asked = (proxy.cache.inspect(id).entry?.queue ?? [])
          .filter((r) => r.priority === Priority.HIGH && r.chunkIndex !== 0 && r.chunkIndex !== last)
          .map((r) => r.chunkIndex)
          .sort((a, b) => a - b);
      });
      const res = await fetchBytes(streamUrl);
      assert.equal(sha256(res.body), sha256(data));
      assert.ok(asked, 'lookahead was asked for');
      assert.equal(proxy.cache.getEntry(id)?.bitrate, extra.bitrate ?? null);
      return asked;
    } finally {
      await proxy.close();
    }
  };
  const contiguous = (set: number[]): boolean => set.every((c, i) => c === (set[0] ?? 0) + i);
  // 1 Mbit/s = 125,000 B/s; 2 s = 250,000 B = 3.8 chunks of 64 KiB → 4.
  const timed = await firstLookahead({ bitrate: 1_000_000 });
  assert.equal(timed.length, 4, JSON.stringify(timed));
  assert.ok(contiguous(timed) && (timed[0] ?? 0) >= 17, JSON.stringify(timed));
  const fixed = await firstLookahead({});
  assert.equal(fixed.length, 6, JSON.stringify(fixed));
  assert.ok(contiguous(fixed), JSON.stringify(fixed));
});

test('CRITICAL work pre-empts a background download, which keeps the prefix it wrote', async () => {
  const data = makeData(30 * CHUNK, 32);
  upstream.setFile('/preempt.mp4', data);
  upstream.options.bytesPerSecond = 128 * 1024; // a chunk takes half a second: long enough to be cut
  const proxy = await startProxy({ chunkSize: CHUNK, maxConcurrentDownloads: 1, lookaheadChunks: 1 });
  const outcomes: Array<{ chunkIndex: number; outcome: DownloadOutcome }> = [];
  proxy.cache.on('download-ended', ({ chunkIndex, outcome }) => outcomes.push({ chunkIndex, outcome }));
  try {
    const { id, streamUrl } = await proxy.add(upstream.url('/preempt.mp4'));
    // A short read opens the entry; background fill then keeps the single slot busy at LOW.
    await getRange(streamUrl, 'bytes=0-9');
    let victim: number | undefined;
    while (victim === undefined) {
      await nextEvent(proxy.cache, 'download-progress');
      // Progress events are throttled: the first comes with a transfer's first bytes.
      victim = proxy.cache.inspect().transfers.find((d) => d.entryId === id && d.priority === Priority.LOW && d.received > 0)?.chunkIndex;
    }
    const seek = 25 * CHUNK + 17;
    const got = await readThenDisconnect(streamUrl, `bytes=${seek}-`, 1000);
    assert.equal(sha256(got), sha256(data.subarray(seek, seek + 1000)));
    // The seek's bytes may reach the reader before the victim has finished recording its prefix.
    await waitUntil(proxy.cache, () => outcomes.some((o) => o.chunkIndex === victim));
    assert.ok(
      outcomes.some((o) => o.outcome === 'preempted' && o.chunkIndex === victim),
      `the LOW download of chunk ${victim} was pre-empted: ${JSON.stringify(outcomes)}`,
    );
    const rows = proxy.cache.inspect(id).entry?.rows ?? [];
    const [from, to] = [victim * CHUNK, (victim + 1) * CHUNK - 1];
    const prefix = rows.find((r) => r.start >= from && r.end < to);
    assert.ok(prefix, `the written prefix is recorded: ${JSON.stringify(rows)}`);
  } finally {
    upstream.options.bytesPerSecond = undefined;
    await proxy.close();
  }
});

test('a reader that leaves releases its demand: without background fill its downloads are cancelled', async () => {
  const data = makeData(30 * CHUNK, 33);
  upstream.setFile('/leave.mp4', data);
  upstream.options.bytesPerSecond = 1024 * 1024;
  const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false, lookaheadChunks: 4 });
  try {
    const { id, streamUrl } = await proxy.add(upstream.url('/leave.mp4'));
    upstream.resetStats();
    const seek = 10 * CHUNK;
    await readThenDisconnect(streamUrl, `bytes=${seek}-`, 100);
    // What may still come after the reader left: the rest of the chunks being downloaded then.
    const inFlight = proxy.cache.inspect().transfers.filter((t) => t.entryId === id);
    const sentAtLeave = upstream.bytesSent('/leave.mp4');
    await waitUntil(proxy.cache, () => proxy.cache.inspect().transfers.length === 0);
    assert.deepEqual(proxy.cache.inspect(id).entry?.queue, [], 'no queued work is left behind');
    const stored = proxy.cache.getEntry(id)?.downloadedBytes ?? 0;
    assert.ok(stored < 6 * CHUNK, `stored ${stored}`);
    await upstream.waitQuiet();
    const sentAfter = upstream.bytesSent('/leave.mp4') - sentAtLeave;
    const remaining = inFlight.reduce((n, t) => n + (t.end - t.start + 1 - t.received), 0);
    // Leaving stops the upstream: the chunks in flight finish or are cut, and at most the opening's
    // head and tail chunks may still start; never the reader's lookahead or the rest of the file.
    assert.ok(sentAfter <= remaining + 2 * CHUNK, `${sentAfter} bytes sent after the reader left, ${remaining} were in flight`);
    // What was fetched is kept, not wasted: the upstream sent about what is stored.
    const sent = upstream.bytesSent('/leave.mp4');
    assert.ok(sent <= stored + CHUNK, `upstream sent ${sent} bytes, ${stored} stored`);
    assert.ok(sent < data.length / 4, `upstream sent ${sent} of ${data.length} bytes`);
    const state = (await fetchBytes(`${proxy.server.url}/api/entries/${id}`)).body.toString();
    assert.equal(JSON.parse(state).state, 'Paused');
  } finally {
    upstream.options.bytesPerSecond = undefined;
    await proxy.close();
  }
});

test('the persisted queue resumes after a restart and completes the file', async () => {
  const data = makeData(12 * CHUNK, 34);
  upstream.setFile('/resume.mp4', data);
  upstream.options.bytesPerSecond = 1024 * 1024;
  const first = await startProxy({ chunkSize: CHUNK, backgroundFill: false, maxConcurrentDownloads: 2 });
  const { id } = await first.add(upstream.url('/resume.mp4'));
  first.cache.prefetch(id);
  await nextEvent(first.cache, 'chunk-stored');
  await first.stop(); // mid-download: unfinished chunks are not recorded; reopening the data dir below needs its lock released

  upstream.options.bytesPerSecond = undefined;
  const second = await startProxy({ dataDir: first.dataDir, chunkSize: CHUNK, backgroundFill: false });
  try {
    assert.ok((second.cache.inspect(id).entry?.queue.length ?? 0) > 0, 'queued work survived the restart');
    await waitComplete(second, id);
    upstream.resetStats();
    const body = await fetchBytes(`${second.server.url}/stream/${id}`);
    assert.equal(sha256(body.body), sha256(data));
    assert.equal(upstream.bytesSent(), 0);
  } finally {
    await second.close();
  }
});
