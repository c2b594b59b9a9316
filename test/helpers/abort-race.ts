/**
 * Child-process scenario for issue 9 defect 5 (run by test/interleavings.test.ts): through the
 * embedding API, readers that take a whole chunk and close at once cancel its download in the
 * same tick as the upstream reply completes; then every upstream connection, idle keep-alive
 * ones included, is reset. A socket left without an 'error' listener kills this process.
 * Prints "survived N rounds" and exits 0 when it lives.
 */
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { MediaCache } from '../../src/cache.js';
import { tempDir } from './harness.js';
import { makeData, startUpstream } from './upstream.js';

const CHUNK = 64 * 1024;
const ROUNDS = Number(process.env['ABORT_RACE_ROUNDS'] ?? 60);

const upstream = await startUpstream();
const dataDir = tempDir('mediacache-abort-race-');
const cache = await MediaCache.open({ dataDir, chunkSize: CHUNK, backgroundFill: false, retry: { baseDelayMs: 5, maxDelayMs: 20 } });
let errors = 0;
cache.on('background-error', () => errors++);
try {
  for (let round = 0; round < ROUNDS; round++) {
    // A fresh entry each round: its only chunk is downloaded while the reader reads it.
    const size = CHUNK - (round % 7) * 1000;
    upstream.setFile(`/race${round}.mp4`, makeData(size, 500 + round));
    const { entry } = cache.addEntry({ url: upstream.url(`/race${round}.mp4`) });
    const controller = new AbortController();
    const reader = cache.openReader(entry.id, controller.signal);
    let got = 0;
    try {
      const known = await reader.ensureSize(0);
      const total = known.expectedTotalSize ?? size;
      for await (const buf of reader.read(0, total - 1)) got += buf.length;
    } catch {
      // A read cut by the race is not what this checks; the process staying up is.
    } finally {
      // Closing releases the reader's demand: with background fill off, its download is
      // cancelled, often in the very tick its reply completes.
      reader.close();
    }
    if (got > size) throw new Error(`read ${got} of ${size}`);
    await sleep(round % 3);
    // Any upstream socket the downloader left without an 'error' listener dies loudly now.
    upstream.resetConnections();
    await sleep(5);
  }
  await sleep(50);
  console.log(`survived ${ROUNDS} rounds (${errors} background errors)`);
} finally {
  await cache.close();
  await upstream.close();
  rmSync(dataDir, { recursive: true, force: true });
}
