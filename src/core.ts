import type { CacheRepository } from './db/repository.js';
import type { DemandRegistry } from './download/demand.js';
import type { Bandwidth } from './download/bandwidth.js';
import type { Downloader } from './download/downloader.js';
import { Integrity } from './download/integrity.js';
import { OPENING_AFTER_MS } from './download/metadata.js';
import { PlayerEvents } from './download/player-events.js';
import { ReaderDemand } from './download/reader-demand.js';
import { Scheduler } from './download/scheduler.js';
import { StateEvents } from './download/state-events.js';
import type { Wakeups } from './download/wakeups.js';
import type { CoreEvents } from './events.js';
import { DEFAULTS, type CacheOptions } from './options.js';
import { backgroundFillMode } from './policy/scheduling.js';
import type { ReadPath } from './read/entry-reader.js';
import { readPathOf } from './read/read-path.js';
import { liveQueries, type LiveQueries } from './live/queries.js';
import type { EntryCounters } from './stats/entry-counters.js';
import type { CacheStats } from './stats/stats.js';
import type { TransferMeter } from './stats/transfer-meter.js';
import { BufferPool } from './store/buffer-pool.js';
import type { ChunkStore } from './store/chunk-store.js';
import { ChunkVerifier } from './store/chunk-verifier.js';
import { Evictor } from './store/evictor.js';

/** The parts a core is built on: storage, upstream, and the shared in-memory registries. */
export interface CoreBase {
  repo: CacheRepository;
  store: ChunkStore;
  downloader: Downloader;
  demand: DemandRegistry;
  wakeups: Wakeups;
  events: CoreEvents;
}

/** Where the core reports what it did (statistics, rates, maintained counters), and the limits it is paced by. */
export interface CoreSinks {
  stats: CacheStats;
  meter: TransferMeter;
  counters: EntryCounters;
  bandwidth: Bandwidth;
}

export interface Core {
  scheduler: Scheduler;
  integrity: Integrity;
  evictor: Evictor;
  readPath: ReadPath;
  /** What the live event hub reads (src/live/). */
  live: LiveQueries;
}

/**
 * Builds the download core and wires each part to the narrow view it needs of the others: the
 * evictor sees `EntryActivity`, integrity sees `Refetch`, readers see `ReadPath`, the scheduler
 * sees `AdmissionControl`. Nothing below imports anything above it.
 */
export function wireCore(base: CoreBase, sinks: CoreSinks, options: CacheOptions): Core {
  const { repo, store, downloader, demand, wakeups, events } = base;
  const { bandwidth } = sinks;
  const backgroundFill = backgroundFillMode(options.backgroundFill);
  demand.observer = new PlayerEvents(events);
  const verifier = new ChunkVerifier(store);
  const scheduler = new Scheduler(
    repo,
    store,
    verifier,
    downloader,
    demand,
    wakeups,
    events,
    {
      maxConcurrentDownloads: options.maxConcurrentDownloads ?? DEFAULTS.maxConcurrentDownloads,
      backgroundFill,
      retry: { ...DEFAULTS.retry, ...options.retry },
      bandwidth: bandwidth.limited ? bandwidth : undefined,
      openingDelayMs: options.openingDelayMs ?? OPENING_AFTER_MS,
    },
    (entryId, bytes, priority) => {
      sinks.meter.record(entryId, bytes);
      bandwidth.noteBytes(priority, bytes);
    },
    new StateEvents(repo, events, sinks.counters),
  );
  bandwidth.onSwitch = () => scheduler.pump();
  const integrity = new Integrity(
    repo,
    verifier,
    {
      isWriting: (entryId) => scheduler.transfersOf(entryId).length > 0,
      isWanted: (entryId, index) => demand.wants(entryId, index),
      raise: (entry, index, priority) => scheduler.raise(entry, index, priority),
      pump: () => scheduler.pump(),
      emitState: (entryId) => scheduler.emitState(entryId),
    },
    events,
  );
  const evictor = new Evictor(
    repo,
    store,
    {
      protectedSpans: (entry) => [
        ...demand.protectedSpans(entry.id, entry.chunkSize),
        ...scheduler.transfersOf(entry.id).map((t): [number, number] => [t.start, t.end]),
      ],
      whenIdle: (entryId) => scheduler.whenIdle(entryId),
      onRowsDropped: (entryId, rows) => {
        for (const { start, end } of rows) events.emit('chunk-removed', { entryId, start, end, reason: 'evicted' });
        scheduler.emitState(entryId);
      },
      onRoomFreed: () => scheduler.pump(),
    },
    sinks.stats,
    { maxSize: options.maxSize, minFree: options.minFree ?? DEFAULTS.minFree },
    options.cleanupIntervalMs ?? DEFAULTS.cleanupIntervalMs,
  );
  scheduler.admission = evictor;
  const readerDemand = new ReaderDemand(repo, demand, scheduler);
  const readPath = readPathOf(scheduler, integrity, readerDemand, wakeups, new BufferPool(DEFAULTS.readSize, 64), {
    waitTimeoutMs: options.waitTimeoutMs ?? DEFAULTS.waitTimeoutMs,
    lookaheadChunks: options.lookaheadChunks ?? DEFAULTS.lookaheadChunks,
    lookaheadSeconds: options.lookaheadSeconds ?? DEFAULTS.lookaheadSeconds,
  });
  const live = liveQueries({
    repo,
    demand,
    transfers: () => scheduler.snapshot(),
    slotsUsed: () => scheduler.slotsUsed,
    maxConcurrentDownloads: options.maxConcurrentDownloads ?? DEFAULTS.maxConcurrentDownloads,
    ...sinks,
    disk: () => evictor.report(),
  });
  return { scheduler, integrity, evictor, readPath, live };
}
