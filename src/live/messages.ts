import type { PriorityName, EntrySummary } from '../status.js';

/** The data of `GET /api/events` messages and of the chunk map (docs/events.md is the contract). */

export interface LiveTotals {
  entries: number;
  disk: { usedBytes: number; maxBytes: number | null; minFreeBytes: number | null; freeBytes: number | null };
  bytesFromCache: number;
  bytesFromUpstream: number;
  /** Reads served wholly from stored bytes, of all reads; null before the first read. */
  hitRatio: number | null;
  upstreamBytesPerSecond: number;
  /** Upstream bytes per second now, by the priority of the transfers receiving them. */
  perPriority: Record<PriorityName, number>;
  downloads: { running: number; max: number };
}

export interface LiveTransfer {
  entryId: string;
  chunkIndex: number;
  priority: PriorityName;
  start: number;
  end: number;
  /** The next byte it will receive. */
  position: number;
  bytesPerSecond: number;
}

export interface LivePlayer {
  entryId: string;
  playerId: number;
  position: number;
}

export interface QueuedChunk {
  chunkIndex: number;
  priority: PriorityName;
}

/** An entry as the stream shows it: the list item of `GET /api/entries`, with its stream URL. */
export type LiveEntry = EntrySummary & { streamUrl: string };

export interface ChunkMap {
  id: string;
  version: number;
  totalBytes: number | null;
  chunkSize: number;
  stored: Array<[number, number]>;
  transfers: LiveTransfer[];
  queued: QueuedChunk[];
  players: LivePlayer[];
  /** The last message already reflected in this map (`<epoch>:<seq>`). */
  seq: string;
}

export interface Snapshot {
  epoch: string;
  totals: LiveTotals;
  entries: LiveEntry[];
  truncated: boolean;
  transfers: LiveTransfer[];
  players: LivePlayer[];
}
