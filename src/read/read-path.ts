import type { EntryRow } from '../db/repository.js';
import type { BufferPool } from '../store/buffer-pool.js';
import type { ReaderDemand } from '../download/reader-demand.js';
import type { Integrity } from '../download/integrity.js';
import type { Scheduler } from '../download/scheduler.js';
import type { Wakeups } from '../download/wakeups.js';
import type { ReadPath } from './entry-reader.js';

/** The readers' view of the core: demand, integrity checks and bytes of transfers under way. */
export function readPathOf(
  scheduler: Scheduler,
  integrity: Integrity,
  demand: ReaderDemand,
  wakeups: Wakeups,
  bufferPool: BufferPool,
  options: ReadPath['options'],
): ReadPath {
  return {
    wakeups,
    bufferPool,
    options,
    openDemand: (entryId) => demand.open(entryId),
    want: (handle, entry, critical, lookahead, position) => demand.want(handle, entry, critical, lookahead, position),
    ensureQueued: (entry, position) => demand.ensureQueued(entry, position),
    release: (handle) => demand.release(handle),
    played: (entry) => demand.played(entry),
    verifyRow: (entry, row) => integrity.verifyRow(entry, row),
    inflightAt(entry: EntryRow, position: number) {
      const whole = scheduler.wholeBodyOf(entry)?.whole;
      if (whole && position < whole.written) return { start: 0, available: whole.written, written: whole.written };
      const t = scheduler.transferAt(entry, position);
      if (!t || position < t.start || position >= t.start + t.received) return undefined;
      return { start: t.start, available: t.received, written: t.written };
    },
    liveBytes: (entry, position, end) => scheduler.transferAt(entry, position)?.recentBytesAt(position, end),
  };
}
