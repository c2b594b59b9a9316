import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FileHandle } from 'node:fs/promises';
import { ChunkStore } from '../src/store/chunk-store.js';
import { makeData, sha256, startUpstream } from './helpers/upstream.js';
import { fetchBytes, getJson, getRange, startProxy, waitComplete } from './helpers/harness.js';

/** A real store whose writes fail with ENOSPC while `full` is set: the only simulated layer. */
class FullDisk extends ChunkStore {
  full = false;
  protected override async writeAt(fh: FileHandle, position: number, data: Uint8Array): Promise<void> {
    if (this.full) {
      const err: NodeJS.ErrnoException = new Error('ENOSPC: no space left on device, write');
      err.code = 'ENOSPC';
      throw err;
    }
    return super.writeAt(fh, position, data);
  }
}

test('disk full: readers are served by passthrough, the entry records the error, caching resumes when space returns', async () => {
  const upstream = await startUpstream();
  const data = makeData(600_000, 81);
  upstream.setFile('/full.mp4', data);
  let store: FullDisk | undefined;
  const proxy = await startProxy({
    chunkSize: 64 * 1024,
    backgroundFill: false,
    createStore: (root) => (store = new FullDisk(root)),
  });
  try {
    assert.ok(store);
    const { id, streamUrl } = await proxy.add(upstream.url('/full.mp4'));
    // The head is cached while there is room.
    assert.equal(sha256((await getRange(streamUrl, 'bytes=0-99')).body), sha256(data.subarray(0, 100)));
    await upstream.waitQuiet();

    store.full = true;
    const whole = await fetchBytes(streamUrl);
    assert.equal(whole.status, 200);
    assert.equal(sha256(whole.body), sha256(data), 'passthrough served every byte');
    const mid = await getRange(streamUrl, 'bytes=300000-400000');
    assert.equal(mid.status, 206);
    assert.equal(sha256(mid.body), sha256(data.subarray(300000, 400001)));
    const failed = await getJson<{ state: string; error: string }>(`${proxy.server.url}/api/entries/${id}`);
    assert.equal(failed.state, 'Failed');
    assert.match(failed.error, /ENOSPC/);
    assert.equal((await fetchBytes(`${proxy.server.url}/healthz`)).status, 200);

    store.full = false; // space returns: the next play caches again
    assert.equal(sha256((await fetchBytes(streamUrl)).body), sha256(data));
    await waitComplete(proxy, id);
    upstream.resetStats();
    assert.equal(sha256((await fetchBytes(streamUrl)).body), sha256(data));
    assert.equal(upstream.bytesSent(), 0, 'served from the cache again');
  } finally {
    await proxy.close();
    await upstream.close();
  }
});
