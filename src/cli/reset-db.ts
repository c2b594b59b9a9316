import { existsSync, renameSync } from 'node:fs';
import path from 'node:path';

/**
 * Moves an unreadable cache database (and its WAL/SHM side files) aside as
 * `cache.db.corrupt-<time>`, kept for inspection, so the next open starts an empty one.
 * Returns the new path of the database file.
 */
export function moveDatabaseAside(dataDir: string): string {
  const file = path.join(path.resolve(dataDir), 'cache.db');
  const aside = `${file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  for (const suffix of ['', '-wal', '-shm']) {
    if (existsSync(file + suffix)) renameSync(file + suffix, aside + suffix);
  }
  return aside;
}
