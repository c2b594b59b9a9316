import { EventEmitter } from 'node:events';
import type { RepositoryObserver } from './db/observed-repository.js';
import type { Priority } from './db/repository.js';
import type { EntryState } from './state/entry-state.js';

export type ChunkRemoval = 'evicted' | 'invalid' | 'invalidated';
export type DownloadOutcome = 'stored' | 'preempted' | 'cancelled' | 'failed' | 'shutdown' | 'invalidated';

/** Events for dashboards and embedding apps; payloads are plain data. */
export interface CacheEvents {
  'chunk-stored': [{ entryId: string; version: number; start: number; end: number }];
  /** A stored row failed its checksum (or its bytes are gone) and was dropped for re-download. */
  'chunk-invalid': [{ entryId: string; start: number; end: number }];
  'download-started': [{ entryId: string; chunkIndex: number; priority: Priority; start: number }];
  /** Throttled: a few per second per transfer, and one when it ends. */
  'download-progress': [{ entryId: string; chunkIndex: number; start: number; position: number }];
  'download-ended': [{ entryId: string; chunkIndex: number; start: number; outcome: DownloadOutcome }];
  'state-changed': [{ entryId: string; state: EntryState }];
  /** The upstream file changed: a new version is current; its bytes are fetched afresh. */
  'entry-invalidated': [{ entryId: string; reason: string; version: number }];
  /** Background work of an entry was dropped because it cannot fit under the size limits. */
  'background-stopped': [{ entryId: string; reason: string }];
  /** Stored bytes went away: evicted, failed their checksum, or the whole file of a replaced version. */
  'chunk-removed': [{ entryId: string; start: number; end: number; reason: ChunkRemoval }];
  /** The entry's queued chunks changed (queued, dropped, re-prioritised, claimed or given back). */
  'queue-changed': [{ entryId: string }];
  'entry-added': [{ entryId: string }];
  /** Something shown about the entry changed: pin, size, stored bytes, error, URL, last access. */
  'entry-changed': [{ entryId: string }];
  'entry-removed': [{ entryId: string }];
  /** A player (one reader's response) began or moved; moves at most every 250 ms per player. */
  'player-moved': [{ entryId: string; playerId: number; position: number }];
  /** The reader's response ended. */
  'player-left': [{ entryId: string; playerId: number }];
  /** Something failed outside any request (e.g. the database was busy); work is retried. */
  'background-error': [{ error: Error }];
}

/**
 * Events emitted after commit, outside bookkeeping: emit() only queues; listeners run on a
 * later microtask, each on its own, so one that throws or calls back into the cache changes
 * nothing but itself (its error goes to `onListenerError`).
 */
export class CoreEvents extends EventEmitter<CacheEvents> {
  constructor(private readonly onListenerError: (error: Error, event: string) => void = () => undefined) {
    super();
    this.setMaxListeners(0);
  }

  override emit<K extends keyof CacheEvents>(event: K, ...args: CacheEvents[K]): boolean {
    if (this.listenerCount(event) === 0) return false;
    queueMicrotask(() => {
      for (const listener of this.rawListeners(event) as Array<(...a: unknown[]) => unknown>) {
        try {
          const result = listener(...args);
          if (result instanceof Promise) result.catch((err: unknown) => this.onListenerError(asError(err), event));
        } catch (err) {
          this.onListenerError(asError(err), event);
        }
      }
    });
    return true;
  }
}

export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** Committed changes of the repository as events (see ObservedRepository). */
export function repositoryEvents(events: CoreEvents): RepositoryObserver {
  return {
    entryAdded: (entryId) => events.emit('entry-added', { entryId }),
    entryChanged: (entryId) => events.emit('entry-changed', { entryId }),
    entryRemoved: (entryId) => events.emit('entry-removed', { entryId }),
    queueChanged: (entryId) => events.emit('queue-changed', { entryId }),
    versionReplaced: (entryId, lastByte) => {
      if (lastByte >= 0) events.emit('chunk-removed', { entryId, start: 0, end: lastByte, reason: 'invalidated' });
    },
  };
}
