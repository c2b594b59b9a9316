import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { makeData, sha256, startUpstream } from './helpers/upstream.js';
import { fetchBytes, getRange, startProxy, waitComplete } from './helpers/harness.js';

const CHUNK = 64 * 1024;

test('no data within the wait timeout: 503 + Retry-After before headers, a closed connection mid-body', async () => {
  const upstream = await startUpstream();
  const data = makeData(8 * CHUNK, 91);
  upstream.setFile('/slow.mp4', data);
  const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false, waitTimeoutMs: 300, upstreamTimeoutMs: 60_000 });
  try {
    const { streamUrl } = await proxy.add(upstream.url('/slow.mp4'));
    // Before headers: the upstream answers nothing at all for the first request.
    upstream.injectFault({ kind: 'stall', afterBytes: 0 });
    const before = await fetchBytes(streamUrl);
    assert.equal(before.status, 503);
    assert.equal(before.headers['retry-after'], '5');
    assert.equal(JSON.parse(before.body.toString()).error.code, 'MC_ERR_WAIT_TIMEOUT');

    // Mid-body: the first chunk arrives, the next one stalls after a few bytes.
    const other = await proxy.add(upstream.url('/slow.mp4?second'));
    await getRange(other.streamUrl, `bytes=0-${CHUNK - 1}`); // caches chunk 0 (and head/tail)
    await upstream.waitQuiet();
    upstream.injectFault({ kind: 'stall', afterBytes: 1000 }, 4);
    const res = await request(other.streamUrl, { headers: { range: `bytes=0-${4 * CHUNK - 1}` } });
    assert.equal(res.statusCode, 206);
    let got = 0;
    await assert.rejects(async () => {
      for await (const piece of res.body as AsyncIterable<Buffer>) got += piece.length;
    }, 'the connection is closed rather than finished');
    assert.ok(got >= CHUNK && got < 4 * CHUNK, `received ${got}`);
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

test('a different --chunk-size on restart: old entries keep theirs and play from disk, new ones use the new size', async () => {
  const upstream = await startUpstream();
  const data = makeData(5 * CHUNK + 7, 92);
  upstream.setFile('/a.mp4', data);
  upstream.setFile('/b.mp4', data);
  const first = await startProxy({ chunkSize: CHUNK });
  const a = await first.add(upstream.url('/a.mp4'));
  assert.equal(sha256((await fetchBytes(a.streamUrl)).body), sha256(data));
  await waitComplete(first, a.id);
  await first.stop();

  const second = await startProxy({ dataDir: first.dataDir, chunkSize: 2 * CHUNK + 4096 });
  try {
    upstream.resetStats();
    const again = await fetchBytes(`${second.server.url}/stream/${a.id}`);
    assert.equal(sha256(again.body), sha256(data));
    const part = await getRange(`${second.server.url}/stream/${a.id}`, `bytes=${CHUNK - 10}-${3 * CHUNK + 10}`);
    assert.equal(sha256(part.body), sha256(data.subarray(CHUNK - 10, 3 * CHUNK + 11)));
    assert.equal(upstream.bytesSent(), 0);
    assert.equal(second.cache.getEntry(a.id)?.chunkSize, CHUNK);

    const b = await second.add(upstream.url('/b.mp4'));
    assert.equal(sha256((await fetchBytes(`${second.server.url}/stream/${b.id}`)).body), sha256(data));
    assert.equal(second.cache.getEntry(b.id)?.chunkSize, 2 * CHUNK + 4096);
    await waitComplete(second, b.id);
    assert.deepEqual(second.cache.getEntry(b.id)?.chunks, [[0, data.length - 1]]);
  } finally {
    await second.close();
    await upstream.close();
  }
});
