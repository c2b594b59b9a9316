import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { getRange, startProxy, waitComplete, type Proxy } from './helpers/harness.js';
import { makeData, startUpstream, type Upstream } from './helpers/upstream.js';

const CHUNK = 64 * 1024;
const SIZE = 40 * CHUNK;
/** 30 s of media at this bitrate is 512 KiB: the point where a sequential read counts as playback. */
const BITRATE = Math.floor((512 * 1024 * 8) / 30);

let upstream: Upstream;
before(async () => {
  upstream = await startUpstream();
  upstream.setFile('/film.mp4', makeData(SIZE, 151));
});
after(() => upstream.close());

/** Reads `bytes` from `range` onwards, then hangs up (a player that moves on). */
async function readThenLeave(url: string, range: string, bytes: number): Promise<void> {
  const res = await request(url, { headers: { range } });
  let got = 0;
  for await (const piece of res.body as AsyncIterable<Buffer>) {
    got += piece.length;
    if (got >= bytes) break;
  }
  res.body.destroy();
}

async function quiet(proxy: Proxy): Promise<void> {
  await upstream.waitQuiet(100);
  // A timer between polls: the transfers settle in I/O callbacks this loop must let run.
  while (proxy.cache.inspect().transfers.length > 0) await sleep(10);
}

test('under --background-fill played a probe queues no background work; a sequential play fills the rest', async () => {
  const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: 'played' });
  try {
    const { id, streamUrl } = await proxy.add(upstream.url('/film.mp4'), { bitrate: BITRATE });
    upstream.resetStats();
    // ffprobe-like: the head, then the tail (an MP4's moov).
    assert.equal((await getRange(streamUrl, 'bytes=0-999')).status, 206);
    assert.equal((await getRange(streamUrl, 'bytes=-1000')).status, 206);
    await quiet(proxy);
    const entry = proxy.cache.inspect(id).entry;
    assert.deepEqual(entry?.queue, [], 'nothing queued after a probe');
    // The opening work: the head and tail chunks, nothing else (plus at most the piece that was in
    // flight when the probe's own download was cancelled and then wanted again for the head).
    const sent = upstream.bytesSent('/film.mp4');
    assert.ok(sent <= 2 * CHUNK + 16 * 1024, `upstream sent ${sent} bytes for a probe`);

    // A player reads on from the start well past 30 s of media, then stops: the rest is filled.
    await readThenLeave(streamUrl, 'bytes=0-', 600 * 1024);
    await waitComplete(proxy, id);
    assert.equal(proxy.cache.getEntry(id)?.downloadedBytes, SIZE);
  } finally {
    await proxy.close();
  }
});

test('under always a probe fills the whole entry; under never not even a play does', async () => {
  const always = await startProxy({ chunkSize: CHUNK, backgroundFill: 'always' });
  try {
    const { id, streamUrl } = await always.add(upstream.url('/film.mp4'), { bitrate: BITRATE });
    await getRange(streamUrl, 'bytes=0-999');
    await waitComplete(always, id);
  } finally {
    await always.close();
  }
  const never = await startProxy({ chunkSize: CHUNK, backgroundFill: 'never' });
  try {
    const { id, streamUrl } = await never.add(upstream.url('/film.mp4'), { bitrate: BITRATE });
    await readThenLeave(streamUrl, 'bytes=0-', 600 * 1024);
    await quiet(never);
    const entry = never.cache.inspect(id).entry;
    assert.ok(entry && !entry.isComplete);
    assert.equal(entry.queue.filter((r) => r.priority === 3).length, 0, 'no LOW work');
    assert.ok((never.cache.getEntry(id)?.downloadedBytes ?? 0) < SIZE / 2);
  } finally {
    await never.close();
  }
});

test('a pre-cache asked for while a cancelled download of the same chunk is still settling completes', async () => {
  const proxy = await startProxy({ chunkSize: 10 * CHUNK, backgroundFill: 'played' });
  upstream.options.bytesPerSecond = 1024 * 1024; // a chunk takes well over the time of one request
  try {
    const { id, streamUrl } = await proxy.add(upstream.url('/film.mp4'));
    // One byte: the reader leaves at once and its chunk's download is cancelled (nothing fills an unplayed entry) …
    assert.equal((await getRange(streamUrl, 'bytes=0-0')).status, 206);
    // … while the pre-cache asks for every missing chunk, that one included.
    proxy.cache.prefetch(id);
    upstream.options.bytesPerSecond = undefined;
    await waitComplete(proxy, id);
    assert.equal(proxy.cache.getEntry(id)?.downloadedBytes, SIZE);
  } finally {
    upstream.options.bytesPerSecond = undefined;
    await proxy.close();
  }
});
