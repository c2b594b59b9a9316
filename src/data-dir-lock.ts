import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, linkSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { ErrorCodes, MediaCacheError } from './errors.js';

/** A lock file without a valid pid is taken for one being written for this long. */
export const FRESH_LOCK_MS = 5_000;

/** Lock files this process holds: its own pid in a file does not make the lock stale then. */
const heldHere = new Set<string>();

type Verdict = { kind: 'held'; message: string } | { kind: 'stale'; ino: number; content: string } | { kind: 'gone' };

/**
 * One process owns a data dir: two writers on one SQLite file and one set of sparse files would
 * corrupt each other's view. The protocol:
 *
 * - The lock file holds `<pid>\n<tag>\n` (the tag is random, so a file is ours only if it holds
 *   our tag; older versions wrote `<pid>\n`). It is created by linking a fully written temp file
 *   to its name (link fails if the name exists), so it is never seen empty or half written.
 * - A lock file is held while its pid is alive, or while it has no valid pid and is younger than
 *   FRESH_LOCK_MS (another implementation may be between creating and writing it). Otherwise it is
 *   stale: its owner died.
 * - A stale lock is replaced only by the holder of `<lock>.takeover`, itself created by link, so
 *   of any number of racing processes exactly one replaces it (by an atomic rename over it, after
 *   checking it is still the file judged stale); the others find the new owner alive.
 * - release() removes the lock file only while it is still ours (our pid and tag).
 */
export class DataDirLock {
  private constructor(
    readonly file: string,
    private readonly content: string,
  ) {}

  static acquire(file: string): DataDirLock {
    const temp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    const content = `${process.pid}\n${randomBytes(8).toString('hex')}\n`;
    writeFileSync(temp, content, { flag: 'wx' });
    try {
      for (let attempt = 0; attempt < 5; attempt++) {
        if (tryLink(temp, file) || takeOver(file, temp)) {
          heldHere.add(file);
          return new DataDirLock(file, content);
        }
      }
    } finally {
      unlinkQuietly(temp);
    }
    throw new MediaCacheError(ErrorCodes.DATA_DIR_LOCKED, `could not take the lock file ${file}`);
  }

  /** Removes the lock file if it is still ours; a file another process put there stays. */
  release(): void {
    if (!heldHere.delete(this.file)) return;
    const current = readOwner(this.file);
    if (current?.pid === process.pid && current.content === this.content) unlinkQuietly(this.file);
  }
}

/**
 * Replaces a stale lock with ours (the temp file) when we win the takeover; throws when the lock
 * is held; false when the lock vanished or changed meanwhile (the caller tries again).
 */
function takeOver(file: string, temp: string): boolean {
  const verdict = judge(file);
  if (verdict.kind === 'gone') return false;
  if (verdict.kind === 'held') throw locked(file, verdict.message);
  const marker = `${file}.takeover`;
  if (!tryLink(temp, marker)) {
    const other = judge(marker);
    // A taker that died between its link and its rename leaves the marker: clear it and retry.
    if (other.kind === 'stale') removeIfSame(marker, other);
    else if (other.kind === 'held') throw locked(file, inUse('another process is taking over its stale lock'));
    return false;
  }
  try {
    // Holding the marker, nobody else replaces the lock file, and nobody can create it while it
    // exists: if it is still the stale file we judged, renaming our file over it is the takeover.
    const now = readOwner(file);
    if (now?.ino !== verdict.ino || now.content !== verdict.content) return false;
    renameSync(temp, file);
    return true;
  } finally {
    unlinkQuietly(marker);
  }
}

function judge(file: string): Verdict {
  const owner = readOwner(file);
  if (!owner) return { kind: 'gone' };
  const { pid, ino, content, ageMs } = owner;
  const stale: Verdict = { kind: 'stale', ino, content };
  if (pid === null) return ageMs < FRESH_LOCK_MS ? { kind: 'held', message: inUse('its lock file is being written') } : stale;
  if (pid === process.pid) {
    // Our pid in a file we do not hold: a previous run with the same pid (pid 1 in a container).
    return heldHere.has(file) ? { kind: 'held', message: 'the data dir is already open in this process' } : stale;
  }
  return isAlive(pid) ? { kind: 'held', message: inUse(`pid ${pid}`) } : stale;
}

/** The pid (null unless the content is whole), content, inode and age of a lock file; undefined when it is missing. */
function readOwner(file: string): { pid: number | null; content: string; ino: number; ageMs: number } | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    // One descriptor for content and inode: both describe the same file.
    const stat = fstatSync(fd);
    const content = readFileSync(fd, 'utf8');
    const m = /^(\d{1,10})\n(?:[0-9a-f]{16}\n)?$/.exec(content);
    const pid = m?.[1] ? Number(m[1]) : null;
    return { pid: pid && pid > 0 ? pid : null, content, ino: stat.ino, ageMs: Date.now() - stat.mtimeMs };
  } finally {
    closeSync(fd);
  }
}

/** Creates `to` as a link to `from`: atomic, fails (false) when `to` exists. */
function tryLink(from: string, to: string): boolean {
  try {
    linkSync(from, to);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/**
 * Removes a file judged stale without removing one that replaced it meanwhile: moves it aside
 * (atomic), and puts it back if it turns out to be another file.
 */
function removeIfSame(file: string, judged: { ino: number; content: string }): void {
  const aside = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.stale`;
  try {
    renameSync(file, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const moved = readOwner(aside);
  if (moved && (moved.ino !== judged.ino || moved.content !== judged.content)) tryLink(aside, file);
  unlinkQuietly(aside);
}

function unlinkQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // already gone
  }
}

function inUse(reason: string): string {
  return `the data dir is in use by another mediacache process (${reason})`;
}

function locked(file: string, message: string): MediaCacheError {
  return new MediaCacheError(ErrorCodes.DATA_DIR_LOCKED, `${message}; lock file: ${file}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
