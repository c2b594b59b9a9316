import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeData, sha256, startUpstream } from './helpers/upstream.js';
import { fetchBytes, getRange, startProxy, waitComplete } from './helpers/harness.js';
import { HeldStore } from './helpers/seams.js';

const KiB = 1024;

test(
  'a download is read on while its disk writes wait: the player gets bytes not yet written, and the row holds exactly what was',
  { timeout: 30_000 },
  async () => {
    const upstream = await startUpstream();
    const data = makeData(2 * 1024 * KiB, 44);
    upstream.setFile('/w.mp4', data);
    let held!: HeldStore;
    const proxy = await startProxy({ chunkSize: 1024 * KiB, backgroundFill: false, createStore: (root) => (held = new HeldStore(root)) });
    try {
      const { id, streamUrl } = await proxy.add(upstream.url('/w.mp4'));
      const gate = held.holdWrite();
      // 192 KiB: several pieces of the reply. Each piece used to be read only once the one before it
      // was written, so with the disk held this waited forever (the test's timeout).
      const head = await getRange(streamUrl, `bytes=0-${192 * KiB - 1}`);
      assert.equal(head.status, 206);
      assert.equal(sha256(head.body), sha256(data.subarray(0, 192 * KiB)));
      assert.ok(gate.caught >= 1, 'the first write was really held');
      gate.release();

      assert.equal(sha256((await fetchBytes(streamUrl)).body), sha256(data));
      await waitComplete(proxy, id);
      const report = await proxy.cache.verify(id);
      assert.deepEqual(report.damaged, [], 'every recorded range matches its checksum');
      upstream.resetStats();
      assert.equal(sha256((await fetchBytes(streamUrl)).body), sha256(data));
      assert.equal(upstream.bytesSent(), 0, 'served from the cache');
    } finally {
      await proxy.close();
      await upstream.close();
    }
  },
);
