import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';

const SAMPLE_MS = 10;

/**
 * Event-loop delay: a timer due every 10 ms records how late it fired, i.e. how long any callback
 * (a stream's next read, a request) had to wait for the loop. Read as a window since the last
 * read, then reset. Our own sampler rather than monitorEventLoopDelay(): resetting that one drops
 * the sample under way, so a stall that begins just after a scrape would never show.
 */
export class LoopDelay {
  private readonly histogram: RecordableHistogram = createHistogram();
  private readonly timer: NodeJS.Timeout;
  private last = performance.now();

  /** `onSample` gets every sample in seconds (a cumulative histogram: percentiles over any interval). */
  constructor(private readonly onSample: (seconds: number) => void = () => undefined) {
    this.timer = setInterval(() => {
      const now = performance.now();
      const late = Math.max(0, now - this.last - SAMPLE_MS);
      this.last = now;
      this.histogram.record(Math.max(1, Math.round(late * 1e6)));
      this.onSample(late / 1000);
    }, SAMPLE_MS);
    this.timer.unref();
  }

  /** Seconds: median, 99th percentile and maximum since the last call (the sample under way included). */
  window(): { p50: number; p99: number; max: number } {
    const h = this.histogram;
    const pending = Math.max(0, performance.now() - this.last - SAMPLE_MS) / 1000;
    const out = h.count === 0 ? { p50: 0, p99: 0, max: 0 } : { p50: h.percentile(50) / 1e9, p99: h.percentile(99) / 1e9, max: h.max / 1e9 };
    h.reset();
    return { p50: out.p50, p99: Math.max(out.p99, pending), max: Math.max(out.max, pending) };
  }

  close(): void {
    clearInterval(this.timer);
  }
}
