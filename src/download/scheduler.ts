import type { CacheRepository, ChunkRow, EntryRow, QueueRow } from '../db/repository.js';
import { Priority } from '../db/repository.js';
import type { ChunkStore } from '../store/chunk-store.js';
import type { ChunkVerifier } from '../store/chunk-verifier.js';
import { asError, type CoreEvents } from '../events.js';
import { versionFileName } from '../model/geometry.js';
import type { TransferSnapshot } from '../inspect.js';
import type { DemandRegistry } from './demand.js';
import type { Downloader, UpstreamMetadata } from './downloader.js';
import { gapFrom } from './gaps.js';
import type { AdmissionControl } from '../policy/admission.js';
import { pickVictim, type BackgroundFill, type RetryPolicy } from '../policy/scheduling.js';
import { TransferRegistry } from './transfer-registry.js';
import { PumpLoop } from './pump-loop.js';
import { UpstreamTiming } from './upstream-timing.js';
import { QueueWork } from './queue-work.js';
import { StateEvents } from './state-events.js';
import { applyOutcome } from './outcome.js';
import { acceptMetadata, Openings, type FirstReplyHost } from './metadata.js';
import { Transfer, type TransferHost, type TransferResult } from './transfer.js';
import type { Pacer } from './bandwidth.js';
import type { Wakeups } from './wakeups.js';

/**
 * Picks queued work, starts transfers, pre-empts, counts slots, and settles every transfer in
 * one place. The queue is rows in cache_download_queue (it survives restarts); in memory live
 * only the transfers under way.
 *
 * Invariants kept here:
 * - a transfer is registered under (entry, version, chunk) from start to settle(); nothing else
 *   removes it, and nothing starts a second transfer under a key that is taken;
 * - settle() runs once per transfer and releases everything it held: its registration, its
 *   file, its reservation, its queue row (only if its version is still current);
 * - slots counted = transfers that may have an upstream request open (receiving, not stopping);
 * - a change of version is one transaction (repo.newVersion); transfers of the old version are
 *   asked to stop, and their rows could not be recorded anyway (recordChunk checks the version);
 * - events go out after the state they describe is committed (CoreEvents defers listeners).
 */

export interface SchedulerOptions {
  maxConcurrentDownloads: number;
  /** When missing chunks are fetched at LOW priority: always, once played, never. */
  backgroundFill: BackgroundFill;
  retry: RetryPolicy;
  /** The bandwidth limits, when any is set: transfers are paced by them. */
  bandwidth?: Pacer;
  /** How long after a version's first reply its opening work comes (OPENING_AFTER_MS). */
  openingDelayMs: number;
}

/** How often (ms) a transfer's progress event may fire. */
const PROGRESS_EVENT_MS = 250;

export class Scheduler implements TransferHost, FirstReplyHost {
  private readonly transfers = new TransferRegistry();
  private readonly progressAt = new Map<Transfer, number>();
  /** Entries whose upstream ignores Range, mid-way through the one download of the whole body. */
  private readonly wholeBodies = new Map<string, Transfer>();
  private readonly states: StateEvents;
  /** Entries being removed: none of their queued work starts. */
  private readonly forgetting = new Set<string>();
  readonly queue: QueueWork;
  private readonly openings: Openings;
  /** The upstream's measured first-byte time and rate: what a split at a seek is decided on. */
  readonly upstream = new UpstreamTiming();
  // Rows a failed settle() could not give back are requeued first: the occupied-key check skips live ones.
  private readonly loop = new PumpLoop(
    () => this.pumpQueue(),
    () => this.repo.requeueDownloading(),
    (err) => this.report(err),
  );
  private closed = false;
  admission: AdmissionControl = { admit: () => 'admit', transferEnded: () => undefined };

  constructor(
    readonly repo: CacheRepository,
    readonly store: ChunkStore,
    readonly verifier: ChunkVerifier,
    readonly downloader: Downloader,
    private readonly demand: DemandRegistry,
    private readonly wakeups: Wakeups,
    private readonly events: CoreEvents,
    readonly options: SchedulerOptions,
    private readonly onUpstreamBytes: (entryId: string, bytes: number, priority: Priority) => void,
    states?: StateEvents,
  ) {
    this.queue = new QueueWork(repo, options.backgroundFill);
    this.openings = new Openings(this, options.openingDelayMs);
    this.states = states ?? new StateEvents(repo, events);
  }

  /** Resumes the persisted queue. */
  start(): void {
    this.repo.requeueDownloading();
    this.pump();
  }

  /** The transfer of the current version whose range holds `position`. */
  transferAt(entry: EntryRow, position: number): Transfer | undefined {
    return this.transfers.at(entry, position);
  }

  /** The transfers of chunk `index` of the entry's current version (two after a split). */
  transfersOfChunk(entry: EntryRow, index: number): readonly Transfer[] {
    return this.transfers.ofChunk(entry.id, entry.version, index);
  }

  /** The whole-body download of this version, if one runs. */
  wholeBodyOf(entry: EntryRow): Transfer | undefined {
    const t = this.wholeBodies.get(entry.id);
    return t && t.version === entry.version ? t : undefined;
  }

  transfersOf(entryId: string): Transfer[] {
    return this.transfers.ofEntry(entryId);
  }

  /** Resolves once no transfer of the entry runs (new ones may start afterwards). */
  whenIdle(entryId: string): Promise<void> {
    return this.transfers.whenIdle(entryId);
  }

  get slotsUsed(): number {
    return this.transfers.takingSlots().length;
  }

  snapshot(): TransferSnapshot[] {
    return [...this.transfers.all()].map((t) => t.snapshot());
  }

  /** Queues a chunk, or raises the priority of its queued or running download. */
  raise(entry: EntryRow, index: number, priority: Priority, now = Date.now()): void {
    this.repo.enqueue(entry.id, index, priority, now);
    for (const running of this.transfersOfChunk(entry, index)) {
      if (priority < running.priority) running.priority = priority;
      if (running.stopReason === 'cancelled') running.wantedAgain = true;
    }
  }

  /** Queues every missing chunk of the entry at `priority` (a pre-cache, background fill); returns how many. */
  enqueueMissing(entry: EntryRow, priority: Priority): number {
    const n = this.queue.enqueueMissing(entry, priority);
    // A chunk whose cancel is still settling is wanted again: its row must not be dropped then.
    for (const t of this.transfersOf(entry.id)) if (t.stopReason === 'cancelled') t.wantedAgain = true;
    this.pump();
    return n;
  }

  /**
   * Starts queued downloads while slots are free. When all are busy, more urgent queued work
   * pre-empts the least urgent transfer (whose written prefix is kept). Re-entrant calls (a
   * transfer freeing its slot while the pump runs) make it go round once more.
   */
  pump(): void {
    this.loop.run();
  }

  private pumpQueue(): void {
    for (;;) {
      const next = this.repo.nextQueued();
      if (!next) return;
      const running = this.transfers.takingSlots();
      const { maxConcurrentDownloads: max, bandwidth } = this.options;
      if (next.priority >= Priority.MEDIUM && bandwidth?.backgroundFull(running, this.upstream.bytesPerMs, max)) return; // enough for the limit
      if (running.length >= max) {
        const victim = pickVictim(running, next.priority);
        if (!victim) return;
        victim.stop('preempted');
      }
      if (!this.startTransfer(next)) return;
    }
  }

  /** False when admission makes it wait: the row stays queued and the pump stops. */
  private startTransfer(row: QueueRow): boolean {
    const { entryId, chunkIndex: index, priority } = row;
    if (this.forgetting.has(entryId)) return false; // its rows go with it in a moment: the pump waits (forget() pumps after)
    const entry = this.repo.getEntry(entryId);
    const seekKey = `${entryId}:${index}`;
    const from = this.queue.seekStarts.get(seekKey);
    // A whole-body download of this entry writes every chunk already: do not fetch it twice.
    const gap =
      entry && entry.errorMessage === null && !this.wholeBodies.has(entryId)
        ? (from !== undefined && gapFrom(this.repo, entry, index, from)) || gapFrom(this.repo, entry, index, 0)
        : null;
    if (!entry || !gap) {
      this.queue.seekStarts.delete(seekKey);
      this.repo.dequeue(entryId, index);
      return true;
    }
    if (this.transfersOfChunk(entry, index).length > 0) {
      this.repo.setQueueStatus(entryId, index, 'downloading'); // a row given back while its transfer runs
      return true;
    }
    const chunkEnd = (index + 1) * entry.chunkSize - 1;
    const total = entry.expectedTotalSize;
    const bytes = (total === null ? chunkEnd : Math.min(chunkEnd, total - 1)) - gap.start + 1;
    const admission = this.admission.admit(entryId, index, bytes, priority);
    if (admission === 'wait') return false;
    if (admission === 'drop') {
      this.repo.dequeueAtOrBelow(entryId, Priority.MEDIUM);
      this.events.emit('background-stopped', { entryId, reason: 'the size limit leaves no room for the rest of this entry' });
      this.emitState(entryId);
      return true;
    }
    this.queue.seekStarts.delete(seekKey);
    this.repo.setQueueStatus(entryId, index, 'downloading');
    this.launch(entry, index, priority, gap.start, gap.end);
    return true;
  }

  private launch(entry: EntryRow, index: number, priority: Priority, start: number, end: number): void {
    const t = new Transfer(this, entry.id, entry.version, entry.filePath, index, priority, start, end);
    this.transfers.add(t);
    this.store.retain(entry.filePath);
    this.transfers.track(
      t,
      t.run(entry).then((result) => this.settle(t, result)),
    );
    // After the request is sent (it goes out once this turn of the loop ends): the file's open
    // overlaps the upstream's latency instead of preceding the request.
    setImmediate(() => {
      if (!this.closed) this.store.prepare(entry.filePath);
    });
    this.events.emit('download-started', { entryId: entry.id, chunkIndex: index, priority, start });
  }

  /** Starts the second half of a split at a seek now (pre-empting if every slot is busy). */
  launchSplit(entry: EntryRow, index: number, start: number, end: number): void {
    const running = this.transfers.takingSlots();
    if (running.length >= this.options.maxConcurrentDownloads) pickVictim(running, Priority.CRITICAL)?.stop('preempted');
    this.launch(entry, index, Priority.CRITICAL, start, end);
  }

  private settle(t: Transfer, result: TransferResult): void {
    this.openings.transferEnding(t, this.forgetting.has(t.entryId));
    this.transfers.remove(t);
    this.progressAt.delete(t);
    const wasWhole = this.wholeBodies.get(t.entryId) === t;
    if (wasWhole) this.wholeBodies.delete(t.entryId);
    this.store.release(t.filePath);
    try {
      const entry = this.repo.getEntry(t.entryId);
      // The other half of a split still runs: the chunk's queue row and reservation are its.
      const sibling = this.transfers.ofChunk(t.entryId, t.version, t.chunkIndex).length > 0;
      if (!sibling) this.admission.transferEnded(t.entryId, t.chunkIndex);
      // Queue rows belong to the current version: an old version's transfer leaves them alone.
      if (entry && entry.version === t.version && (!sibling || result.outcome === 'failed' || result.upstreamChanged)) {
        const changed = applyOutcome(this.repo, this.demand, this.queue.fills(entry.id), entry, t, result, wasWhole);
        if (changed) this.newVersion(entry, 'upstream file changed');
      }
    } catch (err) {
      this.report(err);
      this.loop.retryLater();
    }
    this.wakeups.notify(t.entryId);
    this.events.emit('download-progress', { entryId: t.entryId, chunkIndex: t.chunkIndex, start: t.start, position: t.start + t.written });
    this.events.emit('download-ended', { entryId: t.entryId, chunkIndex: t.chunkIndex, start: t.start, outcome: result.outcome });
    this.emitState(t.entryId);
    this.pump();
  }

  /**
   * The upstream file changed: one transaction makes a new version current; everything of the
   * old one stops, and its file goes once no transfer or reader uses it.
   */
  newVersion(entry: EntryRow, reason: string): void {
    const next = this.repo.newVersion(entry.id, entry.version, (v) => versionFileName(entry.id, v));
    if (!next || next.version === entry.version) return;
    for (const t of this.transfersOf(entry.id)) if (t.version < next.version) t.stop('invalidated');
    this.queue.forget(entry.id);
    this.store.retire(entry.filePath);
    this.verifier.forget(entry.filePath);
    this.wakeups.notify(entry.id);
    this.events.emit('entry-invalidated', { entryId: entry.id, reason, version: next.version });
    this.emitState(entry.id);
  }

  acceptMetadata(t: Transfer, entry: EntryRow, meta: UpstreamMetadata): EntryRow {
    const { entry: accepted, first } = acceptMetadata(this.repo, t, entry, meta);
    if (first) this.openings.afterFirstReply(t, accepted, t.priority >= Priority.MEDIUM);
    return accepted;
  }

  onProgress(t: Transfer, newBytes: number): void {
    this.wakeups.notify(t.entryId);
    this.onUpstreamBytes(t.entryId, newBytes, t.priority);
    const now = Date.now();
    if (now - (this.progressAt.get(t) ?? 0) < PROGRESS_EVENT_MS) return;
    this.progressAt.set(t, now);
    const position = t.whole ? t.whole.written : t.start + t.received;
    this.events.emit('download-progress', { entryId: t.entryId, chunkIndex: t.chunkIndex, start: t.start, position });
  }

  isSoleTransfer(t: Transfer): boolean {
    return this.transfers.ofChunk(t.entryId, t.version, t.chunkIndex).every((x) => x === t);
  }

  onSlotFreed(): void {
    this.pump();
  }

  claimWholeBody(t: Transfer): boolean {
    if (this.wholeBodies.has(t.entryId)) return false;
    this.wholeBodies.set(t.entryId, t);
    return true;
  }

  onRecorded(t: Transfer, row: ChunkRow): void {
    this.wakeups.notify(t.entryId);
    this.events.emit('chunk-stored', { entryId: t.entryId, version: t.version, start: row.start, end: row.end });
  }

  /** Stops every transfer of an entry (before its rows and file are removed) and waits for them. */
  async forget(entryId: string): Promise<void> {
    this.forgetting.add(entryId); // nothing new starts for it meanwhile
    try {
      for (let running = this.transfersOf(entryId); running.length > 0; running = this.transfersOf(entryId)) {
        for (const t of running) t.stop('invalidated');
        await this.transfers.whenSettled(running);
      }
    } finally {
      this.forgetting.delete(entryId);
    }
    this.queue.forget(entryId);
    this.states.forget(entryId);
    this.wakeups.notify(entryId);
    setImmediate(() => this.pump()); // after the caller deleted the entry's rows
  }

  /** Pauses background work: queued MEDIUM/LOW rows dropped, such transfers nobody reads cancelled. */
  async pauseBackground(entryId: string): Promise<void> {
    this.openings.backgroundPaused(entryId);
    this.repo.dequeueAtOrBelow(entryId, Priority.MEDIUM);
    const running = this.transfersOf(entryId).filter((t) => t.priority >= Priority.MEDIUM && !this.demand.wants(entryId, t.chunkIndex));
    for (const t of running) t.stop('cancelled');
    await this.transfers.whenSettled(running);
    this.emitState(entryId);
  }

  wake(entryId: string): void {
    this.wakeups.notify(entryId);
  }

  wanted(entryId: string, index: number): boolean {
    return this.demand.wants(entryId, index);
  }

  /** Emits state-changed when the derived state differs from the last one emitted. */
  emitState(entryId: string): void {
    this.states.check(entryId);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.loop.stop();
    this.openings.clear();
    const running = [...this.transfers.all()];
    for (const t of running) t.stop('shutdown');
    await this.transfers.whenSettled(running);
    this.wakeups.notifyAll();
  }

  report(err: unknown): void {
    this.events.emit('background-error', { error: asError(err) });
  }
}
