import { formatBytes } from '../units.js';
import type { CacheStats, StatTotals } from './stats.js';

/** "12 hits, 3 misses, 1.2 GiB from cache, 300.0 MiB from upstream, 0 evictions" */
export function describeActivity(d: StatTotals): string {
  return (
    `${d.hits} hits, ${d.misses} misses, ${formatBytes(d.bytesFromCache)} from cache, ` +
    `${formatBytes(d.bytesFromUpstream)} from upstream, ${d.evictions} evictions`
  );
}

/**
 * Logs one summary line per interval in which something happened; an idle cache stays silent.
 * Returns the function that stops it.
 */
export function startActivityLog(
  stats: CacheStats,
  log: (fields: Record<string, unknown>, message: string) => void,
  intervalMs: number,
): () => void {
  stats.summary(); // start counting from now
  const timer = setInterval(() => {
    const s = stats.summary();
    if (s) log({ delta: s.delta, totals: s.totals }, `last ${Math.round(intervalMs / 1000)}s: ${describeActivity(s.delta)}`);
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
