import type { ListedFacts } from './db/repository.js';
import type { TransferSnapshot } from './inspect.js';
import { redactUrl } from './entry-input.js';
import { isoTime } from './model/iso-time.js';
import { coalesceRanges, deriveState, type EntryState } from './state/entry-state.js';

export type PriorityName = 'CRITICAL' | 'HIGH' | 'MEDIUM' | 'LOW';
export const PRIORITY_NAMES: readonly PriorityName[] = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'];

/** An entry as the API and CLI show it. Derived from the database on every call. */
export interface EntryStatus {
  id: string;
  /** The upstream URL with credentials redacted. */
  url: string;
  sourceId: string | null;
  mediaId: string | null;
  quality: string | null;
  state: EntryState;
  totalBytes: number | null;
  downloadedBytes: number;
  /** Stored byte ranges, inclusive, coalesced. */
  chunks: Array<[number, number]>;
  pendingChunks: number;
  /** Downloads under way: chunk index, priority name, bytes written so far. */
  downloading: Array<{ chunkIndex: number; priority: PriorityName; start: number; written: number }>;
  chunkSize: number;
  mimeType: string | null;
  error: string | null;
  createdAt: string;
  lastAccessed: string;
  accessCount: number;
  pinned: boolean;
  /** Head pin: bytes kept from the start (plus the tail chunk); null when all or nothing is pinned. */
  pinHeadBytes: number | null;
  /** Bits per second, when given at add time; lookahead is then sized in seconds of playback. */
  bitrate: number | null;
  /** The entry's version: it moves on each time the upstream file changes. */
  version: number;
  /** Download progress: percent stored, recent rate, and time left at that rate. */
  progress: { percent: number | null; bytesPerSecond: number; etaSeconds: number | null };
}

/** An entry as a list shows it: everything but its stored ranges (`GET /api/entries/<id>` has them). */
export type EntrySummary = Omit<EntryStatus, 'chunks'>;

/** Builds an EntryStatus from the entry's facts, stored ranges, transfers and recent rate. */
export function entryStatus(
  facts: ListedFacts,
  rows: ReadonlyArray<{ start: number; end: number }>,
  transfers: readonly TransferSnapshot[],
  bytesPerSecond: number,
): EntryStatus {
  return { ...entrySummary(facts, transfers, bytesPerSecond), chunks: coalesceRanges(rows) };
}

/** The summary of an entry: one row of facts, no query per stored range (what pages of 500 are made of). */
export function entrySummary(facts: ListedFacts, transfers: readonly TransferSnapshot[], bytesPerSecond: number): EntrySummary {
  const { entry } = facts;
  const total = entry.expectedTotalSize;
  const left = total === null ? null : Math.max(0, total - facts.storedBytes);
  return {
    id: entry.id,
    url: redactUrl(entry.originalUrl),
    sourceId: entry.sourceId,
    mediaId: entry.mediaId,
    quality: entry.quality,
    state: deriveState(facts),
    totalBytes: total,
    downloadedBytes: facts.storedBytes,
    pendingChunks: facts.pendingChunks,
    downloading: transfers.map((t) => ({
      chunkIndex: t.chunkIndex,
      priority: PRIORITY_NAMES[t.priority] ?? 'LOW',
      start: t.start,
      written: t.written,
    })),
    chunkSize: entry.chunkSize,
    mimeType: entry.mimeType,
    error: entry.errorMessage,
    createdAt: isoTime(entry.createdAt),
    lastAccessed: isoTime(entry.lastAccessed),
    accessCount: entry.accessCount,
    pinned: entry.pinned,
    pinHeadBytes: entry.pinHeadBytes,
    bitrate: entry.bitrate,
    version: entry.version,
    progress: {
      percent: total === null ? null : total === 0 ? 100 : Math.floor((10000 * facts.storedBytes) / total) / 100,
      bytesPerSecond,
      etaSeconds: left === null ? null : left === 0 ? 0 : bytesPerSecond > 0 ? Math.ceil(left / bytesPerSecond) : null,
    },
  };
}
