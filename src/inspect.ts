import path from 'node:path';
import type { CacheRepository, ChunkRow, Priority, QueueRow } from './db/repository.js';

/**
 * One read-only snapshot of the download core, for tests, metrics and the dashboard: nothing
 * outside the core reaches into its maps or the repository to learn these.
 */
export interface TransferSnapshot {
  entryId: string;
  chunkIndex: number;
  /** The entry version whose file this transfer writes. */
  version: number;
  priority: Priority;
  start: number;
  /** Inclusive last byte asked for. */
  end: number;
  /** Bytes in the file (not yet recorded). */
  written: number;
  /** Bytes received (written or being written). */
  received: number;
  /** Why it was asked to stop (preempted, cancelled, invalidated, shutdown), or null. */
  stopping: string | null;
  /** The current attempt's body rate (0 until 64 KiB arrived). */
  bytesPerSecond: number;
}

export interface DemandSnapshot {
  entryId: string;
  /** Open demand handles (readers) on this entry. */
  handles: number;
  /** Chunks at least one handle wants, ascending. */
  chunks: number[];
}

export interface EntrySnapshot {
  id: string;
  version: number;
  /** Absolute path of the current version's sparse file. */
  filePath: string;
  expectedTotalSize: number | null;
  etag: string | null;
  isComplete: boolean;
  errorMessage: string | null;
  rows: ChunkRow[];
  queue: QueueRow[];
}

export interface CoreSnapshot {
  transfers: TransferSnapshot[];
  /** Download slots the scheduler counts as taken (upstream requests it may have open). */
  slotsUsed: number;
  maxConcurrentDownloads: number;
  demand: DemandSnapshot[];
  /** Reads waiting for bytes. */
  waiters: number;
  /** File handles the chunk store holds open. */
  openFiles: number;
  /** Present when inspect() was given an entry id that exists. */
  entry?: EntrySnapshot;
}

/** One entry's part of a snapshot: its current version's file, rows and queue (undefined when unknown). */
export function entrySnapshot(repo: CacheRepository, filesRoot: string, entryId: string): EntrySnapshot | undefined {
  const entry = repo.getEntry(entryId);
  if (!entry) return undefined;
  return {
    id: entry.id,
    version: entry.version,
    filePath: path.join(filesRoot, entry.filePath),
    expectedTotalSize: entry.expectedTotalSize,
    etag: entry.etag,
    isComplete: entry.isComplete,
    errorMessage: entry.errorMessage,
    rows: repo.listChunks(entry.id),
    queue: repo.queueFor(entry.id),
  };
}
