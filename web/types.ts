/** The shapes of the proxy's JSON API and event stream (docs/events.md), as the page reads them. */

export type Priority = 'CRITICAL' | 'HIGH' | 'MEDIUM' | 'LOW';
export const PRIORITIES: readonly Priority[] = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'];

export type EntryState = 'NotStarted' | 'Initializing' | 'Downloading' | 'Paused' | 'Complete' | 'Failed';
export const STATES: readonly EntryState[] = ['NotStarted', 'Initializing', 'Downloading', 'Paused', 'Complete', 'Failed'];

/** Inclusive byte range. */
export type Range = [number, number];

export interface EntrySummary {
  id: string;
  url: string;
  state: EntryState;
  totalBytes: number | null;
  downloadedBytes: number;
  chunkSize: number;
  version: number;
  error: string | null;
  lastAccessed: string;
  pinned: boolean;
  pinHeadBytes: number | null;
  progress: { percent: number | null; bytesPerSecond: number; etaSeconds: number | null };
  streamUrl: string;
}

export interface Totals {
  entries: number;
  disk: { usedBytes: number; maxBytes: number | null; minFreeBytes: number | null; freeBytes: number | null };
  bytesFromCache: number;
  bytesFromUpstream: number;
  hitRatio: number | null;
  upstreamBytesPerSecond: number;
  perPriority: Record<Priority, number>;
  downloads: { running: number; max: number };
}

export interface Transfer {
  entryId: string;
  chunkIndex: number;
  priority: Priority;
  start: number;
  end: number;
  position: number;
  bytesPerSecond: number;
}

export interface Player {
  entryId: string;
  playerId: number;
  position: number;
}

export interface Queued {
  chunkIndex: number;
  priority: Priority;
}

export interface Snapshot {
  epoch: string;
  totals: Totals;
  entries: EntrySummary[];
  truncated: boolean;
  transfers: Transfer[];
  players: Player[];
}

export interface EntryMap {
  id: string;
  version: number;
  totalBytes: number | null;
  chunkSize: number;
  stored: Range[];
  transfers: Transfer[];
  queued: Queued[];
  players: Player[];
  seq: string;
}

export type RemovalReason = 'evicted' | 'invalid' | 'invalidated';

/** One message of `GET /api/events`, parsed. */
export type StreamEvent =
  | { type: 'snapshot'; data: Snapshot }
  | { type: 'totals'; data: Totals }
  | { type: 'entry'; data: EntrySummary }
  | { type: 'entry-removed'; data: { id: string } }
  | { type: 'chunk-stored'; data: { entryId: string; version: number; start: number; end: number } }
  | { type: 'chunk-removed'; data: { entryId: string; start: number; end: number; reason: RemovalReason } }
  | { type: 'transfer'; data: Transfer }
  | { type: 'transfer-ended'; data: { entryId: string; chunkIndex: number; start: number; outcome: string } }
  | { type: 'queue'; data: { entryId: string; queued: Queued[] } }
  | { type: 'player'; data: Player }
  | { type: 'player-left'; data: { entryId: string; playerId: number } };

/** `<epoch>:<seq>` split; null when malformed. */
export function parseEventId(id: string): { epoch: string; seq: number } | null {
  const at = id.lastIndexOf(':');
  if (at <= 0) return null;
  const seq = Number(id.slice(at + 1));
  return Number.isSafeInteger(seq) && seq >= 0 ? { epoch: id.slice(0, at), seq } : null;
}
