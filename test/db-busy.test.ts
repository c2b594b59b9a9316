import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import Database from 'better-sqlite3';
import { makeData, sha256, startUpstream } from './helpers/upstream.js';
import { fetchBytes, startProxy, waitComplete } from './helpers/harness.js';

test('a busy database answers 503 + Retry-After and the server recovers when it is free', async () => {
  const upstream = await startUpstream();
  const data = makeData(100_000, 71);
  upstream.setFile('/busy.mp4', data);
  const proxy = await startProxy({ chunkSize: 64 * 1024, databaseBusyTimeoutMs: 50 });
  const other = new Database(path.join(proxy.dataDir, 'cache.db'));
  try {
    const { id, streamUrl } = await proxy.add(upstream.url('/busy.mp4'));
    assert.equal(sha256((await fetchBytes(streamUrl)).body), sha256(data));
    await waitComplete(proxy, id);

    other.exec('BEGIN EXCLUSIVE'); // another writer holds the database
    const post = await fetchBytes(`${proxy.server.url}/api/entries`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url: upstream.url('/other.mp4') }),
    });
    assert.equal(post.status, 503);
    assert.equal(post.headers['retry-after'], '5');
    assert.equal(JSON.parse(post.body.toString()).error.code, 'MC_ERR_DATABASE');
    // A cached read needs no write on its way: it is served, and its access time is recorded
    // once the database is free again (not lost).
    const accessed = (): number => Date.parse(proxy.cache.getEntry(id)?.lastAccessed ?? '');
    const accessedBefore = accessed();
    const stream = await fetchBytes(streamUrl);
    assert.equal(stream.status, 200);
    assert.equal(sha256(stream.body), sha256(data));
    other.exec('COMMIT');
    // The retry runs on a timer (no event announces it): poll, bounded.
    for (let i = 0; accessed() <= accessedBefore; i++) {
      assert.ok(i < 200, 'the access time is recorded once the database is free');
      await new Promise((r) => setTimeout(r, 25));
    }

    assert.equal((await fetchBytes(`${proxy.server.url}/healthz`)).status, 200);
    const again = await fetchBytes(streamUrl);
    assert.equal(again.status, 200);
    assert.equal(sha256(again.body), sha256(data));
  } finally {
    other.close();
    await proxy.close();
    await upstream.close();
  }
});
