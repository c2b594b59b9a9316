import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { ErrorCodes, MediaCacheError } from './errors.js';

/**
 * One process owns a data dir: two writers on one SQLite file and one set of sparse files would
 * corrupt each other's view. The lock file holds the owner's pid; a lock whose pid is gone
 * (the owner was killed) is taken over.
 */
export class DataDirLock {
  private constructor(readonly file: string) {}

  static acquire(file: string): DataDirLock {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(file, 'wx');
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        return new DataDirLock(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const owner = Number.parseInt(readFileSync(file, 'utf8'), 10);
        if (Number.isInteger(owner) && owner !== process.pid && isAlive(owner)) {
          throw new MediaCacheError(
            ErrorCodes.DATA_DIR_LOCKED,
            `the data dir is in use by another mediacache process (pid ${owner}); lock file: ${file}`,
          );
        }
        rmSync(file, { force: true }); // stale: its owner is gone
      }
    }
    throw new MediaCacheError(ErrorCodes.DATA_DIR_LOCKED, `could not take the lock file ${file}`);
  }

  release(): void {
    rmSync(this.file, { force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
