import type { CacheRepository } from '../db/repository.js';
import type { DemandRegistry } from '../download/demand.js';
import type { TransferSnapshot } from '../inspect.js';
import { coalesceRanges } from '../state/entry-state.js';
import type { CacheStats } from '../stats/stats.js';
import type { EntryCounters } from '../stats/entry-counters.js';
import type { TransferMeter } from '../stats/transfer-meter.js';
import { PRIORITY_NAMES, entrySummary, type EntrySummary, type PriorityName } from '../status.js';
import type { DiskUsageReport } from '../store/disk-usage.js';
import type { ChunkMap, LivePlayer, LiveTotals, LiveTransfer, QueuedChunk } from './messages.js';

/**
 * What the live event hub reads of the cache, at the moment it sends a message: built by the core
 * wiring from the parts that know (repository, transfers, demand, meters), so the hub above the
 * cache never reaches into them. Every answer is plain data and costs a few indexed queries.
 */
export interface LiveQueries {
  exists(entryId: string): boolean;
  summary(entryId: string): EntrySummary | undefined;
  /** Ids of the `limit` most recently accessed entries, most recent first. */
  recentIds(limit: number): string[];
  transfers(entryId?: string): LiveTransfer[];
  /** Chunks waiting in the queue (not those being downloaded), ascending. */
  queued(entryId: string): QueuedChunk[];
  players(entryId?: string): LivePlayer[];
  map(entryId: string): Omit<ChunkMap, 'seq'> | undefined;
  totals(): LiveTotals;
}

/** The parts the queries read. */
export interface LiveSources {
  repo: CacheRepository;
  demand: DemandRegistry;
  transfers: () => TransferSnapshot[];
  slotsUsed: () => number;
  maxConcurrentDownloads: number;
  meter: TransferMeter;
  stats: CacheStats;
  counters: EntryCounters;
  disk: () => DiskUsageReport;
}

export function liveQueries(src: LiveSources): LiveQueries {
  const priorityName = (p: number): PriorityName => PRIORITY_NAMES[p] ?? 'LOW';
  const live = (t: TransferSnapshot): LiveTransfer => ({
    entryId: t.entryId,
    chunkIndex: t.chunkIndex,
    priority: priorityName(t.priority),
    start: t.start,
    end: t.end,
    position: t.start + t.received,
    bytesPerSecond: t.bytesPerSecond,
  });
  const transfersOf = (entryId?: string): TransferSnapshot[] =>
    src.transfers().filter((t) => t.stopping === null && (entryId === undefined || t.entryId === entryId));
  const queries: LiveQueries = {
    exists: (entryId) => src.repo.getEntry(entryId) !== undefined,
    summary(entryId) {
      const facts = src.repo.entryFacts(entryId);
      return facts && entrySummary(facts, transfersOf(entryId), src.meter.rate(entryId));
    },
    recentIds: (limit) => src.repo.recentEntryIds(limit),
    transfers: (entryId) => transfersOf(entryId).map(live),
    queued: (entryId) =>
      src.repo
        .queueFor(entryId)
        .filter((r) => r.status === 'queued')
        .map((r) => ({ chunkIndex: r.chunkIndex, priority: priorityName(r.priority) }))
        .sort((a, b) => a.chunkIndex - b.chunkIndex),
    players: (entryId) => src.demand.players(entryId),
    map(entryId) {
      const entry = src.repo.getEntry(entryId);
      if (!entry) return undefined;
      return {
        id: entry.id,
        version: entry.version,
        totalBytes: entry.expectedTotalSize,
        chunkSize: entry.chunkSize,
        stored: coalesceRanges(src.repo.listChunks(entryId)),
        transfers: queries.transfers(entryId),
        queued: queries.queued(entryId),
        players: queries.players(entryId),
      };
    },
    totals() {
      const t = src.stats.totals();
      const disk = src.disk();
      const perPriority: Record<PriorityName, number> = { CRITICAL: 0, HIGH: 0, MEDIUM: 0, LOW: 0 };
      for (const x of transfersOf()) perPriority[priorityName(x.priority)] += x.bytesPerSecond;
      const reads = t.hits + t.misses;
      return {
        entries: src.counters.totals().entries,
        disk: { usedBytes: disk.usedBytes, maxBytes: disk.limits.maxSize, minFreeBytes: disk.limits.minFree, freeBytes: disk.freeBytes },
        bytesFromCache: t.bytesFromCache,
        bytesFromUpstream: t.bytesFromUpstream,
        hitRatio: reads === 0 ? null : t.hits / reads,
        upstreamBytesPerSecond: Object.values(perPriority).reduce((a, b) => a + b, 0),
        perPriority,
        downloads: { running: src.slotsUsed(), max: src.maxConcurrentDownloads },
      };
    },
  };
  return queries;
}
