import type { ChunkRow, EntryMetadata, EntryRow, NewEntry, Priority, QueueRow } from './repository.js';
import { SqliteRepository } from './sqlite-repository.js';

/**
 * Who hears about committed changes to entries and the queue (the cache turns them into events).
 * Called after the statement or transaction returned, so only with committed state; it must not
 * throw (events only queue).
 */
export interface RepositoryObserver {
  entryAdded(id: string): void;
  entryChanged(id: string): void;
  entryRemoved(id: string): void;
  queueChanged(id: string): void;
  /** A new version replaced the file: every stored byte of the old one, up to `lastByte`, is gone. */
  versionReplaced(id: string, lastByte: number): void;
}

/**
 * The SQLite repository that says what it changed. The queue is written from a dozen places
 * (readers, pre-cache, outcomes, eviction, pause); observing the writes here is the one place that
 * sees them all, so the live view of the queue cannot miss one.
 */
export class ObservedRepository extends SqliteRepository {
  constructor(
    file: string,
    busyTimeoutMs: number | undefined,
    private readonly observer: RepositoryObserver,
  ) {
    super(file, busyTimeoutMs);
  }

  override insertEntry(entry: NewEntry): EntryRow {
    const row = super.insertEntry(entry);
    this.observer.entryAdded(row.id);
    return row;
  }
  override updateEntryUrl(id: string, url: string): void {
    super.updateEntryUrl(id, url);
    this.observer.entryChanged(id);
  }
  override setEntryBitrate(id: string, bitrate: number | null): void {
    super.setEntryBitrate(id, bitrate);
    this.observer.entryChanged(id);
  }
  override setEntryMetadata(id: string, version: number, meta: EntryMetadata): boolean {
    const changed = super.setEntryMetadata(id, version, meta);
    if (changed) this.observer.entryChanged(id);
    return changed;
  }
  override setEntryError(id: string, message: string | null): void {
    super.setEntryError(id, message);
    this.observer.entryChanged(id);
  }
  override touchEntry(id: string, now: number): void {
    super.touchEntry(id, now);
    this.observer.entryChanged(id);
  }
  override setEntryPin(id: string, pinned: boolean, headBytes: number | null): void {
    super.setEntryPin(id, pinned, headBytes);
    this.observer.entryChanged(id);
  }
  override deleteEntry(id: string): boolean {
    const deleted = super.deleteEntry(id);
    if (deleted) this.observer.entryRemoved(id);
    return deleted;
  }
  override recordChunk(id: string, version: number, chunkIndex: number | null, chunk: ChunkRow): boolean {
    const recorded = super.recordChunk(id, version, chunkIndex, chunk);
    if (recorded) this.observer.entryChanged(id);
    if (recorded && chunkIndex !== null) this.observer.queueChanged(id);
    return recorded;
  }
  override newVersion(id: string, fromVersion: number, nextFile: (version: number) => string): EntryRow | undefined {
    const before = this.getEntry(id);
    const after = super.newVersion(id, fromVersion, nextFile);
    if (before && after && after.version !== before.version) {
      const stored = this.listChunks(id).at(-1)?.end ?? -1; // rows of the new version, if any arrived already
      this.observer.versionReplaced(id, Math.max((before.expectedTotalSize ?? 0) - 1, stored));
      this.observer.queueChanged(id);
      this.observer.entryChanged(id);
    }
    return after;
  }
  override evictChunks(id: string, spans: ReadonlyArray<readonly [number, number]>): number {
    const bytes = super.evictChunks(id, spans);
    this.observer.entryChanged(id);
    return bytes;
  }
  override enqueue(id: string, chunkIndex: number, priority: Priority, now: number): void {
    super.enqueue(id, chunkIndex, priority, now);
    this.observer.queueChanged(id);
  }
  override enqueueMany(id: string, chunkIndexes: readonly number[], priority: Priority, now: number): void {
    super.enqueueMany(id, chunkIndexes, priority, now);
    if (chunkIndexes.length > 0) this.observer.queueChanged(id);
  }
  override setQueuePriority(id: string, chunkIndex: number, priority: Priority): void {
    super.setQueuePriority(id, chunkIndex, priority);
    this.observer.queueChanged(id);
  }
  override dequeue(id: string, chunkIndex: number): void {
    super.dequeue(id, chunkIndex);
    this.observer.queueChanged(id);
  }
  override dequeueEntry(id: string): void {
    super.dequeueEntry(id);
    this.observer.queueChanged(id);
  }
  override setQueueStatus(id: string, chunkIndex: number, status: QueueRow['status']): void {
    super.setQueueStatus(id, chunkIndex, status);
    this.observer.queueChanged(id);
  }
  override requeueDownloading(): string[] {
    const ids = super.requeueDownloading();
    for (const id of ids) this.observer.queueChanged(id);
    return ids;
  }
  override dequeueAtOrBelow(id: string, priority: Priority): number {
    const n = super.dequeueAtOrBelow(id, priority);
    if (n > 0) this.observer.queueChanged(id);
    return n;
  }
}
