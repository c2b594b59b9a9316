import { Priority } from '../db/repository.js';

/**
 * The scheduler's decisions as pure functions of plain data, each with a table test
 * (test/units/scheduling-policy.test.ts). Nothing here reads the database or the clock.
 */

export interface RetryPolicy {
  /** Attempts per chunk download before the entry is marked Failed. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

/** Delay before attempt `attempt + 1` after a transient failure: exponential, capped. */
export function backoffDelay(attempt: number, retry: RetryPolicy): number {
  return Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** Math.max(0, attempt - 1));
}

/**
 * Which running transfer to pre-empt so that queued work of priority `next` can start: the least
 * urgent one (the most recently started among equals), and only if it is less urgent than `next`.
 */
export function pickVictim<T extends { priority: Priority }>(running: readonly T[], next: Priority): T | undefined {
  let victim: T | undefined;
  for (const t of running) if (!victim || t.priority >= victim.priority) victim = t;
  return victim && victim.priority > next ? victim : undefined;
}

/**
 * The priority of a chunk nobody reads any more: MEDIUM while the entry is being pre-cached,
 * LOW with background fill, else null (dropped; a running transfer is cancelled, keeping its prefix).
 */
export function priorityWithoutReaders(prefetching: boolean, backgroundFill: boolean): Priority | null {
  if (prefetching) return Priority.MEDIUM;
  return backgroundFill ? Priority.LOW : null;
}

/** Why a transfer is asked to stop. A later, stronger reason replaces a weaker one. */
export type StopReason = 'preempted' | 'cancelled' | 'shutdown' | 'invalidated';
const STOP_STRENGTH: Record<StopReason, number> = { preempted: 0, cancelled: 1, shutdown: 2, invalidated: 3 };

export function strongerStop(current: StopReason | null, requested: StopReason): StopReason {
  return current === null || STOP_STRENGTH[requested] > STOP_STRENGTH[current] ? requested : current;
}

/** Whether a transfer stopped for `reason` keeps (records) the prefix it wrote. */
export function keepsPrefix(reason: StopReason | null): boolean {
  return reason === null || reason === 'preempted' || reason === 'cancelled';
}

/**
 * The work queued once an entry's size is known: head and tail chunks at HIGH (MP4 `moov` and
 * Matroska cues often sit at the end; players read them before the first frame), the rest at
 * MEDIUM while pre-caching, LOW with background fill, else nothing.
 */
export function openingPlan(chunks: number, prefetching: boolean, backgroundFill: boolean): { high: number[]; rest: Priority | null } {
  if (chunks === 0) return { high: [], rest: null };
  const high = chunks === 1 ? [0] : [0, chunks - 1];
  return { high, rest: prefetching ? Priority.MEDIUM : backgroundFill ? Priority.LOW : null };
}

/**
 * How many chunks a reader's downloads run ahead of it: `seconds` of playback when the entry's
 * bitrate is known (at least one chunk), else the fixed `chunks`. A fixed count is 100 MiB with
 * the defaults: minutes of a 4 Mbps stream that a player may never reach.
 */
export function lookaheadChunks(
  entry: { bitrate: number | null; chunkSize: number },
  options: { lookaheadChunks: number; lookaheadSeconds: number },
): number {
  if (entry.bitrate === null) return options.lookaheadChunks;
  return Math.max(1, Math.ceil(((entry.bitrate / 8) * options.lookaheadSeconds) / entry.chunkSize));
}

/**
 * A new request must beat the running transfer by this factor before a seek splits it. Measured
 * with bench rows 16–18 (real players, upstream 20 ms / 4 MB/s; README "Real players"): without
 * splits mpv took 1.59 ×, GStreamer 1.23 ×, ffmpeg 5.4 × direct and a 5 MiB seek +1.28 s; with any
 * margin from 0.5 to 10 every row met its target, within the machine's noise (the seeks players
 * make are MBs ahead: ~40 × the break-even). Above 1 so that a seek near the break-even, where a
 * split gains nothing, keeps one request (a new one also costs a connection and a slot): 1.5 ×
 * splits beyond ~150 KB ahead on that link.
 */
export const SPLIT_MARGIN = 1.5;
/**
 * Without any measurement yet (a process's first transfer, before its first 64 KiB), a seek at
 * least this far ahead of a transfer splits it. Measured like SPLIT_MARGIN with the rule forced
 * for every decision: 64 KiB, 256 KiB and 1 MiB met every target; 4 MiB did not (ffmpeg's and
 * mpv's seek to 20 s, 3.9 MB ahead, waited ~1 s: ffmpeg 2.7–3.5 ×). 1 MiB waits at most ~250 ms
 * at 4 MB/s, while on a fast link (≥ 40 MB/s) a needless split costs at most one round trip.
 */
export const SPLIT_UNMEASURED_BYTES = 1024 * 1024;

/**
 * Whether a reader waiting `distance` bytes ahead of a running transfer (in the same chunk) gets
 * its bytes sooner from a new request: the transfer needs distance ÷ rate, a new request about
 * its first-byte time. Unmeasured, only a far seek splits (the tail of a file, a chapter jump).
 */
export function shouldSplit(input: { distance: number; bytesPerMs: number | null; firstByteMs: number | null }): boolean {
  const { distance, bytesPerMs, firstByteMs } = input;
  if (distance <= 0) return false;
  if (bytesPerMs === null || firstByteMs === null) return distance >= SPLIT_UNMEASURED_BYTES;
  return distance / bytesPerMs > SPLIT_MARGIN * firstByteMs;
}

/** When an entry's missing chunks are fetched in the background (LOW). */
export type BackgroundFill = 'always' | 'played' | 'never';

/** Seconds of media a sequential read must cover to count as playback (not a probe). */
export const PLAYED_SECONDS = 30;
/** Without a bitrate: 30 s of an 8 Mbit/s stream. A probe (ffprobe, a library scanner) reads far less. */
export const PLAYED_BYTES = 32 * 1024 * 1024;

/** How many bytes of one sequential read make it playback: `PLAYED_SECONDS` at the bitrate when known. */
export function playedBytes(bitrate: number | null): number {
  return bitrate === null ? PLAYED_BYTES : Math.max(1, Math.ceil((bitrate / 8) * PLAYED_SECONDS));
}

/** Accepts the option as given by embedders (booleans of old) and the CLI. */
export function backgroundFillMode(value: boolean | BackgroundFill | undefined): BackgroundFill {
  if (value === undefined) return 'played';
  if (value === true) return 'always';
  if (value === false) return 'never';
  return value;
}
