import { once } from 'node:events';
import http, { type IncomingMessage } from 'node:http';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FileHandle } from 'node:fs/promises';
import { ChunkStore } from '../src/store/chunk-store.js';
import { makeData, sha256, startUpstream } from './helpers/upstream.js';
import { getRange, startProxy, waitUntil } from './helpers/harness.js';

/** A real store whose writes wait while `held` is set (a slow disk): the only simulated layer. */
class SlowDisk extends ChunkStore {
  held = false;
  waiting = 0;
  private parked: Array<() => void> = [];
  protected override async writeAt(fh: FileHandle, position: number, data: Uint8Array): Promise<void> {
    if (this.held) {
      this.waiting++;
      await new Promise<void>((resolve) => this.parked.push(resolve));
    }
    return super.writeAt(fh, position, data);
  }
  unhold(): void {
    this.held = false;
    for (const resolve of this.parked.splice(0)) resolve();
  }
}

function openStream(url: string, range: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => http.get(url, { headers: { range } }, resolve).on('error', reject));
}

test('a piece reaches readers from memory before its disk write completes; the row waits for the write', { timeout: 20_000 }, async () => {
  const upstream = await startUpstream();
  const data = makeData(300_000, 91);
  upstream.setFile('/slow-disk.mp4', data);
  let store: SlowDisk | undefined;
  const proxy = await startProxy({
    chunkSize: 64 * 1024,
    backgroundFill: false,
    createStore: (root) => (store = new SlowDisk(root)),
  });
  try {
    assert.ok(store);
    const { id, streamUrl } = await proxy.add(upstream.url('/slow-disk.mp4'));
    store.held = true;
    const res = await openStream(streamUrl, 'bytes=0-65535');
    assert.equal(res.statusCode, 206);
    const head = (await once(res, 'data')) as [Buffer];
    assert.ok(head[0].length > 0);
    assert.equal(sha256(head[0]), sha256(data.subarray(0, head[0].length)), 'the first piece, byte-exact');
    assert.ok(store.waiting >= 1, 'served while its write was still held');
    assert.equal(proxy.cache.inspect(id).entry?.rows.length, 0, 'no row before the bytes are on disk');

    store.unhold();
    const rest: Buffer[] = [head[0]];
    for await (const piece of res) rest.push(piece as Buffer);
    assert.equal(sha256(Buffer.concat(rest)), sha256(data.subarray(0, 65536)));
    await waitUntil(proxy.cache, () => {
      const s = proxy.cache.inspect(id);
      return (s.entry?.rows.length ?? 0) > 0 && !s.transfers.some((t) => t.entryId === id);
    });
    upstream.resetStats();
    const again = await getRange(streamUrl, 'bytes=0-65535');
    assert.equal(sha256(again.body), sha256(data.subarray(0, 65536)));
    assert.equal(upstream.bytesSent(), 0, 'the held bytes were written and recorded');
  } finally {
    store?.unhold(); // a failed assertion must not leave a write parked: close() waits for it
    await proxy.close();
    await upstream.close();
  }
});
