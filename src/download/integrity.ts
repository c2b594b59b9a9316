import { Priority, type CacheRepository, type ChunkRow, type EntryRow } from '../db/repository.js';
import type { ChunkVerifier } from '../store/chunk-verifier.js';
import type { CoreEvents } from '../events.js';
import { chunkOf } from '../model/geometry.js';

/** What integrity checks need from the scheduler when they drop a row. */
export interface Refetch {
  /** Whether a transfer of the entry is writing its file right now. */
  isWriting(entryId: string): boolean;
  /** Whether a reader wants chunk `index`. */
  isWanted(entryId: string, index: number): boolean;
  raise(entry: EntryRow, index: number, priority: Priority): void;
  pump(): void;
  emitState(entryId: string): void;
}

/**
 * Stored bytes checked against their CRC-32: lazily before they are served, and by a scrub.
 * A damaged row is dropped and its chunks fetched again.
 */
export class Integrity {
  constructor(
    private readonly repo: CacheRepository,
    private readonly verifier: ChunkVerifier,
    private readonly refetch: Refetch,
    private readonly events: CoreEvents,
  ) {}

  /**
   * True when a stored row's bytes are intact. Otherwise (bit rot, truncated or deleted file) the
   * row is dropped and its chunks queued at CRITICAL: the reader waits for the re-download.
   */
  async verifyRow(entry: EntryRow, row: ChunkRow): Promise<boolean> {
    if (await this.verifier.check(entry.filePath, row, this.refetch.isWriting(entry.id))) return true;
    this.drop(entry, row, 'all');
    return false;
  }

  /**
   * A scrub: re-reads every stored row of the entry and checks its CRC-32, whatever earlier checks
   * found. Damaged rows are dropped; those a reader holds are fetched again now, the others when
   * read (a reader that reaches one queues it from its wait) or pre-cached. Rows that went away
   * meanwhile (eviction, removal, a new version) are not counted.
   */
  async scrub(entry: EntryRow): Promise<{ chunks: number; bytes: number; damaged: Array<{ start: number; end: number }> }> {
    const report = { chunks: 0, bytes: 0, damaged: [] as Array<{ start: number; end: number }> };
    for (const row of this.repo.listChunks(entry.id)) {
      const ok = await this.verifier.recheck(entry.filePath, row);
      const current = this.repo.chunkCovering(entry.id, entry.version, row.start);
      if (!current || current.end !== row.end || current.checksum !== row.checksum) continue;
      report.chunks++;
      report.bytes += row.end - row.start + 1;
      if (ok) continue;
      this.drop(entry, row, 'wanted');
      report.damaged.push({ start: row.start, end: row.end });
    }
    return report;
  }

  /** Drops exactly this row (it may have been replaced meanwhile) and queues its chunks again. */
  private drop(entry: EntryRow, row: ChunkRow, refetch: 'all' | 'wanted'): void {
    this.repo.evictChunks(entry.id, [[row.start, row.end]]);
    this.verifier.forget(entry.filePath, row.start);
    this.events.emit('chunk-invalid', { entryId: entry.id, start: row.start, end: row.end });
    this.events.emit('chunk-removed', { entryId: entry.id, start: row.start, end: row.end, reason: 'invalid' });
    let raised = false;
    for (let i = chunkOf(row.start, entry.chunkSize); i <= chunkOf(row.end, entry.chunkSize); i++) {
      if (refetch === 'wanted' && !this.refetch.isWanted(entry.id, i)) continue;
      this.refetch.raise(entry, i, Priority.CRITICAL);
      raised = true;
    }
    if (raised) this.refetch.pump();
    this.refetch.emitState(entry.id);
  }
}
