/**
 * A process that races for a data-dir lock (data-dir-lock.test.ts): prints `ready`, reads the
 * start time from stdin, spins until then (so racers start within microseconds of each other),
 * tries once, prints `won` or `locked`, and holds a won lock until stdin closes.
 */
import { DataDirLock } from '../../src/data-dir-lock.js';
import { isMediaCacheError } from '../../src/errors.js';

const file = process.argv[2] ?? '';
process.stdout.write('ready\n');
process.stdin.once('data', (chunk: Buffer) => {
  const startAt = Number(chunk.toString().trim());
  while (performance.timeOrigin + performance.now() < startAt) {
    // spin: a timer would add milliseconds of skew
  }
  let lock: DataDirLock | undefined;
  try {
    lock = DataDirLock.acquire(file);
    process.stdout.write('won\n');
  } catch (err) {
    process.stdout.write(isMediaCacheError(err, 'MC_ERR_DATA_DIR_LOCKED') ? 'locked\n' : `error ${String(err)}\n`);
    process.exit(0);
  }
  process.stdin.on('end', () => {
    lock?.release();
    process.exit(0);
  });
  process.stdin.resume();
});
