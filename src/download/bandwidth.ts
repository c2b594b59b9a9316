import { Priority } from '../db/repository.js';
import { backgroundTransfers, rateAt, type Rate, type RateAt, type RateSchedule } from '../policy/rate-limit.js';
import { TransferMeter } from '../stats/transfer-meter.js';
import { TokenBucket, type BucketWait } from './token-bucket.js';

/**
 * The upstream bandwidth: the limits (`--limit-rate` for background work, `--limit-rate-all` for
 * every transfer), each one token bucket shared by all the transfers it covers, switched by its
 * timetable; and the bytes received per priority class.
 *
 * A transfer is paced after each piece it received: while it waits it reads nothing more, so its
 * socket is left unread and TCP backpressure stops the upstream (nothing is buffered here). Waits
 * are by priority: under `--limit-rate-all` playback (CRITICAL, HIGH) goes before background work
 * within the one bucket, so the link stays under the cap and a player never waits behind a
 * pre-cache; background work gets what playback leaves. A transfer whose priority changes is
 * re-ranked, or let go at once when the limit no longer covers it (raised to CRITICAL by a reader).
 */

/** What a limit covers: background work (LOW, MEDIUM), or everything. */
type Scope = 'background' | 'all';

export type PriorityName = keyof typeof Priority;
const PRIORITY_NAMES = Object.keys(Priority) as PriorityName[];

/** A transfer as the bandwidth sees it. */
export interface Paced {
  readonly priority: Priority;
}

/** What transfers need: pace after each piece, and a word when their priority changed. */
export interface Pacer {
  /** Undefined when the transfer may read on now; else resolves when it may (or was stopped). */
  pace(t: Paced, bytes: number, signal: AbortSignal): Promise<void> | undefined;
  priorityChanged(t: Paced): void;
  /**
   * Whether background work already runs on as many transfers as a limit in force needs (then no
   * more start: they would only share the bucket), at the upstream's measured rate per transfer.
   */
  backgroundFull(running: readonly Paced[], perTransferBytesPerMs: number | null, max: number): boolean;
}

export interface LimitSnapshot {
  /** The rate or timetable as configured. */
  timetable: string;
  /** Bytes per second allowed now; null: none now (the timetable says `off`). */
  bytesPerSecond: Rate;
  /** The timetable's next change. */
  next: { at: string; bytesPerSecond: Rate } | null;
}

export interface BandwidthSnapshot {
  /** `--limit-rate` (background work), null when not set. */
  limitRate: LimitSnapshot | null;
  /** `--limit-rate-all` (every transfer), null when not set. */
  limitRateAll: LimitSnapshot | null;
  /** Transfers holding a piece while a limit makes them wait (their sockets unread). */
  waiting: number;
  /** Upstream body bytes received per priority class: since start, and per second lately (5 s). */
  upstream: Record<PriorityName, { bytes: number; bytesPerSecond: number }>;
}

interface Limit {
  readonly scope: Scope;
  readonly schedule: RateSchedule;
  now: RateAt;
  bucket: TokenBucket | undefined;
}

interface Held {
  readonly limit: Limit;
  readonly bucket: TokenBucket;
  readonly wait: BucketWait;
}

/** Switching late by a few ms is harmless; early would re-read the old slot. */
const SWITCH_MARGIN_MS = 5;

export class Bandwidth implements Pacer {
  private readonly limits: Limit[] = [];
  private readonly held = new Map<Paced, Held>();
  private readonly bytes = [0, 0, 0, 0];
  private readonly meter = new TransferMeter(() => undefined);
  private timer: NodeJS.Timeout | undefined;
  /** Called when a timetable switched (the scheduler pumps: more background transfers may start). */
  onSwitch: () => void = () => undefined;

  constructor(
    schedules: { background?: RateSchedule; all?: RateSchedule },
    /** Wall-clock time (ms since epoch): the timetable's clock, a seam for tests. */
    private readonly clock: () => number = Date.now,
  ) {
    for (const scope of ['background', 'all'] as const) {
      const schedule = schedules[scope];
      if (schedule) this.limits.push({ scope, schedule, now: { bytesPerSecond: null, next: null }, bucket: undefined });
    }
    this.refresh();
  }

  /** Whether any limit is set: without one, transfers are not paced at all (nothing on their path). */
  get limited(): boolean {
    return this.limits.length > 0;
  }

  pace(t: Paced, bytes: number, signal: AbortSignal): Promise<void> | undefined {
    const first = this.enter(t, bytes, 'background');
    if (!first) {
      const only = this.enter(t, bytes, 'all');
      return only && this.waitOut(t, only, signal);
    }
    return this.waitOut(t, first, signal).then(() => {
      if (signal.aborted) return;
      const then = this.enter(t, bytes, 'all');
      return then && this.waitOut(t, then, signal);
    });
  }

  priorityChanged(t: Paced): void {
    const h = this.held.get(t);
    if (!h) return;
    if (covers(h.limit.scope, t.priority)) h.bucket.rerank(h.wait, t.priority);
    else h.bucket.cancel(h.wait);
  }

  backgroundFull(running: readonly Paced[], perTransferBytesPerMs: number | null, max: number): boolean {
    const rates = this.limits.map((l) => l.now.bytesPerSecond).filter((r): r is number => r !== null);
    const cap = backgroundTransfers(rates.length === 0 ? null : Math.min(...rates), perTransferBytesPerMs, max);
    return cap < max && running.filter((t) => covers('background', t.priority)).length >= cap;
  }

  /** Bytes received from the upstream by a transfer of this priority. */
  noteBytes(priority: Priority, bytes: number): void {
    this.bytes[priority] = (this.bytes[priority] ?? 0) + bytes;
    this.meter.record(PRIORITY_NAMES[priority] ?? 'LOW', bytes);
  }

  /** Re-reads the timetables at the clock's time and sets the timer for their next change. */
  refresh(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const now = this.clock();
    let nextAt = Infinity;
    for (const limit of this.limits) {
      limit.now = rateAt(limit.schedule, new Date(now));
      this.apply(limit);
      if (limit.now.next) nextAt = Math.min(nextAt, limit.now.next.at.getTime());
    }
    if (nextAt === Infinity) return;
    const switched = (): void => {
      this.refresh();
      this.onSwitch();
    };
    this.timer = setTimeout(switched, Math.max(0, nextAt - now) + SWITCH_MARGIN_MS);
    this.timer.unref();
  }

  snapshot(): BandwidthSnapshot {
    const upstream = {} as BandwidthSnapshot['upstream'];
    PRIORITY_NAMES.forEach((name, p) => (upstream[name] = { bytes: this.bytes[p] ?? 0, bytesPerSecond: this.meter.rate(name) }));
    return { limitRate: this.limitSnapshot('background'), limitRateAll: this.limitSnapshot('all'), waiting: this.held.size, upstream };
  }

  close(): void {
    clearTimeout(this.timer);
    for (const limit of this.limits) limit.bucket?.releaseAll();
  }

  private limitSnapshot(scope: Scope): LimitSnapshot | null {
    const limit = this.limits.find((l) => l.scope === scope);
    if (!limit) return null;
    const { bytesPerSecond, next } = limit.now;
    return {
      timetable: limit.schedule.text,
      bytesPerSecond,
      next: next && { at: next.at.toISOString(), bytesPerSecond: next.bytesPerSecond },
    };
  }

  /** The limit's bucket follows its rate now: a new one, a new rate, or none (waiters let go). */
  private apply(limit: Limit): void {
    const rate = limit.now.bytesPerSecond;
    if (rate === null) {
      limit.bucket?.releaseAll();
      limit.bucket = undefined;
    } else if (limit.bucket) limit.bucket.setRate(rate);
    else limit.bucket = new TokenBucket(rate);
  }

  private enter(t: Paced, bytes: number, scope: Scope): Held | undefined {
    const limit = this.limits.find((l) => l.scope === scope);
    const bucket = limit?.bucket;
    if (!limit || !bucket || !covers(scope, t.priority)) return undefined;
    const wait = bucket.take(bytes, t.priority);
    return wait && { limit, bucket, wait };
  }

  private async waitOut(t: Paced, h: Held, signal: AbortSignal): Promise<void> {
    const leave = (): void => h.bucket.cancel(h.wait);
    if (signal.aborted) leave();
    this.held.set(t, h);
    signal.addEventListener('abort', leave, { once: true });
    try {
      await h.wait.done;
    } finally {
      signal.removeEventListener('abort', leave);
      if (this.held.get(t) === h) this.held.delete(t);
    }
  }
}

function covers(scope: Scope, priority: Priority): boolean {
  return scope === 'all' || priority >= Priority.MEDIUM;
}
