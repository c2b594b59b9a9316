import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { MediaCache } from '../cache.js';
import { STAT_NAMES } from '../stats/stats.js';
import { LoopDelay } from '../stats/loop-delay.js';

/**
 * Prometheus metrics for one cache. Everything is read at scrape time from counters the cache
 * maintains (never a pass over all entries), so a scrape costs the same at any size and the
 * stream path pays nothing for it; the one exception is the time-to-first-byte histogram, one
 * observe() per response.
 */
export class CacheMetrics {
  readonly registry = new Registry();
  private readonly firstByte: Histogram<'kind'>;
  private readonly loopDelay: LoopDelay;

  constructor(cache: MediaCache) {
    const registers = [this.registry];
    // Cumulative, never reset: Prometheus' histogram_quantile() (or a bench taking bucket deltas)
    // gives the p99 over any interval; the per-scrape window below holds only ~10 samples per second.
    const lag = new Histogram({
      name: 'mediacache_event_loop_lag_seconds',
      help: 'Every event-loop delay sample since start (one each 10 ms): how long a stream or request waited for the loop.',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    });
    const loopDelay = (this.loopDelay = new LoopDelay((s) => lag.observe(s)));
    this.firstByte = new Histogram({
      name: 'mediacache_first_byte_seconds',
      help: 'Time from a stream request to its first body byte, by whether it started at byte 0 (play) or elsewhere (seek).',
      labelNames: ['kind'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    new Counter({
      name: 'mediacache_stats_total',
      help: 'Persisted cache totals (hits, misses, bytes from cache and upstream, evictions).',
      labelNames: ['name'],
      registers,
      collect() {
        this.reset();
        const totals = cache.stats.totals();
        for (const name of STAT_NAMES) this.inc({ name }, totals[name]);
      },
    });
    new Gauge({
      name: 'mediacache_downloads_active',
      help: 'Upstream chunk downloads under way.',
      registers,
      collect() {
        this.set(cache.inspect().slotsUsed);
      },
    });
    new Gauge({
      name: 'mediacache_readers_waiting',
      help: 'Stream reads waiting for bytes that are not there yet.',
      registers,
      collect() {
        this.set(cache.inspect().waiters);
      },
    });
    new Gauge({
      name: 'mediacache_entries',
      help: 'Cache entries by derived state (maintained as entries change: a scrape costs the same at any size).',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        for (const [state, n] of Object.entries(cache.entryTotals().byState)) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'mediacache_stored_bytes',
      help: 'Bytes recorded as stored, over all entries.',
      registers,
      collect() {
        this.set(cache.entryTotals().storedBytes);
      },
    });
    new Counter({
      name: 'mediacache_upstream_bytes_total',
      help: 'Upstream body bytes received since start, by the priority of the transfer (CRITICAL, HIGH: playback; MEDIUM, LOW: background).',
      labelNames: ['priority'],
      registers,
      collect() {
        this.reset();
        for (const [priority, u] of Object.entries(cache.statistics().bandwidth.upstream)) this.inc({ priority }, u.bytes);
      },
    });
    new Gauge({
      name: 'mediacache_limit_rate_bytes_per_second',
      help: 'Bandwidth limit in force now: scope="background" (--limit-rate) or "all" (--limit-rate-all); absent when none is in force.',
      labelNames: ['scope'],
      registers,
      collect() {
        this.reset();
        const { limitRate, limitRateAll } = cache.statistics().bandwidth;
        if (limitRate?.bytesPerSecond) this.set({ scope: 'background' }, limitRate.bytesPerSecond);
        if (limitRateAll?.bytesPerSecond) this.set({ scope: 'all' }, limitRateAll.bytesPerSecond);
      },
    });
    new Gauge({
      name: 'mediacache_limit_rate_next_switch_timestamp_seconds',
      help: "When the limit's timetable changes it next (Unix time), by scope; absent without a timetable.",
      labelNames: ['scope'],
      registers,
      collect() {
        this.reset();
        const { limitRate, limitRateAll } = cache.statistics().bandwidth;
        if (limitRate?.next) this.set({ scope: 'background' }, Date.parse(limitRate.next.at) / 1000);
        if (limitRateAll?.next) this.set({ scope: 'all' }, Date.parse(limitRateAll.next.at) / 1000);
      },
    });
    new Gauge({
      name: 'mediacache_event_loop_delay_seconds',
      help: 'Event-loop delay since the previous scrape (Node samples every 10 ms): how long a stream or request waited for the loop.',
      labelNames: ['quantile'],
      registers,
      collect() {
        const w = loopDelay.window();
        this.set({ quantile: '0.5' }, w.p50);
        this.set({ quantile: '0.99' }, w.p99);
        this.set({ quantile: '1' }, w.max);
      },
    });
  }

  /** The live event stream's clients: connected now, and cut off for not reading (since start). */
  watchLive(live: { readonly clientCount: number; readonly dropped: number }): void {
    const registers = [this.registry];
    new Gauge({
      name: 'mediacache_live_clients',
      help: 'Clients of GET /api/events connected now.',
      registers,
      collect() {
        this.set(live.clientCount);
      },
    });
    new Counter({
      name: 'mediacache_live_clients_dropped_total',
      help: 'Clients of GET /api/events disconnected because they did not read (more than 1 MiB queued).',
      registers,
      collect() {
        this.reset();
        this.inc(live.dropped);
      },
    });
  }

  /** Records one response's time to first body byte. */
  observeFirstByte(seconds: number, seek: boolean): void {
    this.firstByte.observe({ kind: seek ? 'seek' : 'play' }, seconds);
  }

  close(): void {
    this.loopDelay.close();
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
