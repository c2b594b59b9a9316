import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

/**
 * Event-loop delay, sampled by Node every 10 ms: how long any callback (a stream's next read, a
 * request) had to wait for the loop. Read as a window since the last read, then reset.
 */
export class LoopDelay {
  private readonly histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });

  constructor() {
    this.histogram.enable();
  }

  /** Seconds: median, 99th percentile and maximum since the last call. */
  window(): { p50: number; p99: number; max: number } {
    const h = this.histogram;
    const out = h.count === 0 ? { p50: 0, p99: 0, max: 0 } : { p50: h.percentile(50) / 1e9, p99: h.percentile(99) / 1e9, max: h.max / 1e9 };
    h.reset();
    return out;
  }

  close(): void {
    this.histogram.disable();
  }
}
