import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp, writeFileSync, truncateSync } from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { ChunkStore } from '../../src/store/chunk-store.js';
import { ChunkVerifier } from '../../src/store/chunk-verifier.js';
import { makeData } from '../helpers/upstream.js';
import { tempDir } from '../helpers/harness.js';

/** Counts the stat calls the verifier really makes (the real fs.promises.stat underneath). */
function countStats(): { count: () => number; restore: () => void } {
  const original = fsp.stat;
  let n = 0;
  fsp.stat = ((...args: Parameters<typeof original>) => {
    n++;
    return original(...args);
  }) as typeof original;
  return { count: () => n, restore: () => void (fsp.stat = original) };
}

test('checks that come while a stat of the file runs share it; a later check stats again and sees a change', async () => {
  const store = new ChunkStore(tempDir());
  await store.init();
  const data = makeData(64 * 1024, 7);
  writeFileSync(path.join(store.root, 'f.bin'), data);
  const row = { start: 0, end: data.length - 1, checksum: crc32(data), downloadedAt: 1 };
  const verifier = new ChunkVerifier(store);
  const stats = countStats();
  try {
    const verdicts = await Promise.all(Array.from({ length: 50 }, () => verifier.check('f.bin', row)));
    assert.deepEqual(new Set(verdicts), new Set([true]));
    assert.equal(stats.count(), 1, 'fifty checks at once, one stat');
    truncateSync(path.join(store.root, 'f.bin'), 1000);
    assert.equal(await verifier.check('f.bin', row), false, 'the truncation is seen by the next check');
    assert.equal(stats.count(), 2);
  } finally {
    stats.restore();
    await store.close();
  }
});
