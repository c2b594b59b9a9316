import { Priority, type CacheRepository, type EntryRow } from '../db/repository.js';
import { asError } from '../events.js';
import type { DemandRegistry } from './demand.js';
import { missingStart } from './gaps.js';
import type { Transfer, TransferResult } from './transfer.js';

/**
 * What a transfer's one outcome does to its chunk's queue row (called by Scheduler.settle, only
 * while the transfer's version is still current). Returns true when the upstream reported a
 * different file, so the entry must move to a new version.
 */
export function applyOutcome(
  repo: CacheRepository,
  demand: DemandRegistry,
  backgroundFill: boolean,
  entry: EntryRow,
  t: Transfer,
  result: TransferResult,
  wasWhole: boolean,
): boolean {
  const { entryId, chunkIndex } = t;
  switch (result.outcome) {
    case 'stored': {
      if (missingStart(repo, entry, chunkIndex) === null) {
        repo.dequeue(entryId, chunkIndex);
        break;
      }
      // It began at a seek or ended at a stored range: the chunk stays queued for its other gaps.
      const wanted = demand.wants(entryId, chunkIndex) || t.priority >= Priority.MEDIUM;
      const priority = wanted ? t.priority : backgroundFill ? Priority.LOW : null;
      if (priority === null) repo.dequeue(entryId, chunkIndex);
      else {
        repo.enqueue(entryId, chunkIndex, priority, Date.now());
        repo.setQueueStatus(entryId, chunkIndex, 'queued');
      }
      break;
    }
    case 'preempted':
      repo.setQueueStatus(entryId, chunkIndex, 'queued');
      break;
    case 'cancelled':
      // A reader, a pre-cache or background fill may have asked for the chunk again meanwhile.
      if (demand.wants(entryId, chunkIndex) || t.wantedAgain) repo.setQueueStatus(entryId, chunkIndex, 'queued');
      else repo.dequeue(entryId, chunkIndex);
      break;
    case 'failed': {
      const message = asError(result.error).message;
      repo.setEntryError(entryId, message);
      repo.dequeueEntry(entryId);
      break;
    }
    case 'invalidated': // nothing of an old version touches the queue; a change is the caller's
    case 'shutdown': // the row stays 'downloading'; start() gives it back to the queue
      break;
  }
  if (wasWhole && result.outcome !== 'failed') {
    // Chunks readers want that the whole body did not reach were dequeued while it ran.
    for (const index of demand.chunksOf(entryId)) {
      if (missingStart(repo, entry, index) !== null) repo.enqueue(entryId, index, Priority.HIGH, Date.now());
    }
  }
  return result.outcome === 'invalidated' && result.upstreamChanged === true;
}
