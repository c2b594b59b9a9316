import type { CacheRepository, EntryRow, Priority } from '../db/repository.js';
import { ErrorCodes, MediaCacheError } from '../errors.js';
import type { UpstreamMetadata } from './downloader.js';
import type { QueueWork } from './queue-work.js';
import type { Transfer } from './transfer.js';

/**
 * Takes a file's size, type and validators from the first verified reply of a version; a later
 * reply that disagrees (size, ETag) means the upstream file changed: MC_ERR_UPSTREAM_CHANGED.
 * `first` is true for the reply that set them (the opening work is queued once).
 */
export function acceptMetadata(
  repo: CacheRepository,
  t: Transfer,
  entry: EntryRow,
  meta: UpstreamMetadata,
): { entry: EntryRow; first: boolean } {
  if (entry.expectedTotalSize === null) {
    const { totalSize: expectedTotalSize, mimeType, etag, lastModified } = meta;
    const first = repo.setEntryMetadata(entry.id, t.version, { expectedTotalSize, mimeType, etag, lastModified });
    // The update matched this version with no size yet: the row is `entry` with these four set
    // (not read back: this is on the way to a cold request's first byte).
    if (first && entry.version === t.version) return { entry: { ...entry, expectedTotalSize, mimeType, etag, lastModified }, first };
    const updated = repo.getEntry(entry.id);
    if (!updated || updated.version !== t.version) {
      t.stop('invalidated');
      throw new MediaCacheError(ErrorCodes.ABORTED, 'version no longer current');
    }
    if (first) return { entry: updated, first };
    entry = updated; // another transfer's first reply was first: compare with it
  }
  const etagChanged = entry.etag !== null && meta.etag !== null && entry.etag !== meta.etag;
  if (meta.totalSize !== entry.expectedTotalSize || etagChanged) {
    throw new MediaCacheError(ErrorCodes.UPSTREAM_CHANGED, 'upstream file changed (size or ETag differs)');
  }
  return { entry, first: false };
}

/** What the opening work needs from the scheduler. */
export interface FirstReplyHost {
  readonly queue: QueueWork;
  /** Wakes the readers waiting on the entry. */
  wake(entryId: string): void;
  /** Whether a reader still holds demand on the chunk. */
  wanted(entryId: string, index: number): boolean;
  raise(entry: EntryRow, index: number, priority: Priority, now: number): void;
  emitState(entryId: string): void;
  pump(): void;
  report(err: unknown): void;
}

/**
 * The opening work comes this long after a version's first reply. Its writes and its requests (a
 * new connection to the same upstream for the tail) would otherwise share the process, the link and
 * the upstream with the first bytes a player waits for; a player asks for the tail itself only after
 * reading the head, a round trip later. Measured with bench/cold-trace.ts: the tail's request landed
 * inside the first 64 KiB's window.
 */
export const OPENING_AFTER_MS = 5;

interface Pending {
  entry: EntryRow;
  /** The reply came to a pre-cache's or fill's transfer, not a reader's. */
  background: boolean;
  /** A pre-cache was under way at the reply (unknown: a busy database; looked up when queued). */
  prefetching: boolean | undefined;
  timer: NodeJS.Timeout;
}

/**
 * What follows the reply that set a version's size: the readers' wake-up, then the opening work
 * (head and tail, the rest of a pre-cache or fill). The opening work is pending while the transfer
 * that got the reply runs: it is queued OPENING_AFTER_MS later, or when that transfer ends, whichever
 * comes first — before the transfer's row goes, so the entry never looks settled (no transfer, no
 * queued row) with work still to come.
 */
export class Openings {
  private readonly pending = new Map<Transfer, Pending>();

  constructor(
    private readonly host: FirstReplyHost,
    private readonly delayMs = OPENING_AFTER_MS,
  ) {}

  /**
   * Readers wake with the first body piece (it came with the headers and is read right after the
   * reply's callback): waking them at the headers made them look twice, and the piece wait behind
   * their first look; a reply without a body wakes them a moment later.
   */
  afterFirstReply(t: Transfer, entry: EntryRow, background: boolean): void {
    setImmediate(() => this.host.wake(entry.id));
    const timer = setTimeout(() => this.queue(t, true), this.delayMs);
    const pending: Pending = { entry, background, prefetching: undefined, timer };
    this.pending.set(t, pending);
    // Whether a pre-cache is under way, taken before its first row can go (its chunk stored: the
    // first write starts on the next turn), after the readers' first bytes (a query).
    setImmediate(() => {
      if (this.pending.get(t) !== pending) return;
      try {
        pending.prefetching ??= this.host.queue.isPrefetching(entry.id);
      } catch {
        // a busy database: looked up when the work is queued
      }
    });
  }

  /** The entry's pre-cache was paused: its pending opening queues no pre-cache rows. */
  backgroundPaused(entryId: string): void {
    for (const p of this.pending.values()) if (p.entry.id === entryId) p.prefetching = false;
  }

  /**
   * `t` is ending: its opening work, still pending, is queued now (the caller emits and pumps) —
   * or dropped, when the entry is being removed.
   */
  transferEnding(t: Transfer, removing: boolean): void {
    if (removing) this.take(t);
    else this.queue(t, false);
  }

  /** Shutdown: pending work is dropped (a restart queues what a reader asks for). */
  clear(): void {
    for (const t of [...this.pending.keys()]) this.take(t);
  }

  /** Removes `t`'s pending work (and its timer); undefined when there is none. */
  private take(t: Transfer): Pending | undefined {
    const p = this.pending.get(t);
    if (!p) return undefined;
    this.pending.delete(t);
    clearTimeout(p.timer);
    return p;
  }

  private queue(t: Transfer, announce: boolean): void {
    const p = this.take(t);
    if (!p) return;
    const { host } = this;
    // A reader gone by now (a probe) takes its own chunk's opening request with it, as its release
    // does for a row queued before it left.
    const readersChunk = p.background ? -1 : t.chunkIndex;
    try {
      host.queue.queueOpening(
        p.entry,
        (e, i, priority, now) => void (i !== readersChunk || host.wanted(e.id, i) ? host.raise(e, i, priority, now) : undefined),
        p.background,
        p.prefetching,
      );
    } catch (err) {
      host.report(err);
    }
    if (!announce) return;
    host.emitState(p.entry.id);
    host.pump();
  }
}
