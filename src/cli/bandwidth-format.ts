import type { BandwidthSnapshot, LimitSnapshot } from '../download/bandwidth.js';

/** Bytes per second in the decimal units the limits are usually given in: "2.00 MB/s", "512 kB/s". */
export function formatRate(bytesPerSecond: number | null): string {
  if (bytesPerSecond === null) return 'off';
  if (bytesPerSecond >= 1e9) return `${(bytesPerSecond / 1e9).toFixed(2)} GB/s`;
  if (bytesPerSecond >= 1e6) return `${(bytesPerSecond / 1e6).toFixed(2)} MB/s`;
  if (bytesPerSecond >= 1e3) return `${(bytesPerSecond / 1e3).toFixed(0)} kB/s`;
  return `${bytesPerSecond} B/s`;
}

/** "Mon 23:00" in local time: the timetable's own terms. */
function localSlot(iso: string): string {
  const d = new Date(iso);
  const day = d.toLocaleDateString('en-US', { weekday: 'short' });
  return `${day} ${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

/** "2.00 MB/s (off from Mon 23:00)", "none". */
export function describeLimit(limit: LimitSnapshot | null): string {
  if (!limit) return 'none';
  const next = limit.next ? ` (${formatRate(limit.next.bytesPerSecond)} from ${localSlot(limit.next.at)})` : '';
  return `${formatRate(limit.bytesPerSecond)}${next}`;
}

/** "CRITICAL 1.20 MB/s, HIGH 0 B/s, MEDIUM 2.00 MB/s, LOW 0 B/s". */
export function describeUpstream(b: BandwidthSnapshot): string {
  return Object.entries(b.upstream)
    .map(([name, u]) => `${name} ${formatRate(u.bytesPerSecond)}`)
    .join(', ');
}

/** The one line `mediacache status` prints above its list. */
export function bandwidthLine(b: BandwidthSnapshot): string {
  return `limit: background ${describeLimit(b.limitRate)}, all ${describeLimit(b.limitRateAll)}; upstream now: ${describeUpstream(b)}\n`;
}
