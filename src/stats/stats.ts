import type { CacheRepository } from '../db/repository.js';

/** The persisted counters, as `mediacache stats` and GET /api/stats show them. */
export const STAT_NAMES = ['hits', 'misses', 'bytesFromCache', 'bytesFromUpstream', 'evictions', 'evictedBytes'] as const;
export type StatName = (typeof STAT_NAMES)[number];
export type StatTotals = Record<StatName, number>;

const zero = (): StatTotals => ({ hits: 0, misses: 0, bytesFromCache: 0, bytesFromUpstream: 0, evictions: 0, evictedBytes: 0 });

/**
 * Counters that survive restarts. Counting happens in memory on the hot path; the deltas are
 * written to cache_stats at most every `flushIntervalMs` and on close, never per read.
 */
export class CacheStats {
  private persisted: StatTotals;
  private pending = zero();
  /** Totals at the last summary(), to tell an active period from an idle one. */
  private summarized: StatTotals;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly repo: CacheRepository,
    flushIntervalMs: number,
  ) {
    const stored = repo.readStats();
    this.persisted = zero();
    for (const name of STAT_NAMES) this.persisted[name] = stored[name] ?? 0;
    this.summarized = { ...this.persisted };
    this.timer = setInterval(() => this.flush(), flushIntervalMs);
    this.timer.unref();
  }

  add(name: StatName, n = 1): void {
    this.pending[name] += n;
  }

  /** One finished read: a hit when every byte came from stored ranges. */
  recordRead(served: { fromCache: number; live: number }): void {
    if (served.fromCache + served.live === 0) return;
    this.add(served.live === 0 ? 'hits' : 'misses');
    this.add('bytesFromCache', served.fromCache);
  }

  totals(): StatTotals {
    const out = zero();
    for (const name of STAT_NAMES) out[name] = this.persisted[name] + this.pending[name];
    return out;
  }

  flush(): void {
    if (STAT_NAMES.every((n) => this.pending[n] === 0)) return;
    const deltas = this.pending;
    this.pending = zero();
    try {
      this.repo.addStats(deltas);
      for (const name of STAT_NAMES) this.persisted[name] += deltas[name];
    } catch {
      // The database is closing or busy: keep the deltas for the next flush.
      for (const name of STAT_NAMES) this.pending[name] += deltas[name];
    }
  }

  /** What changed since the previous call, or null when nothing did (an idle period). */
  summary(): { delta: StatTotals; totals: StatTotals } | null {
    const totals = this.totals();
    const delta = zero();
    for (const name of STAT_NAMES) delta[name] = totals[name] - this.summarized[name];
    this.summarized = totals;
    return STAT_NAMES.some((n) => delta[n] !== 0) ? { delta, totals } : null;
  }

  close(): void {
    clearInterval(this.timer);
    this.flush();
  }
}
