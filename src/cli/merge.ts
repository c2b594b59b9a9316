import type { EntryStatus } from '../status.js';
import type { StatTotals } from '../stats/stats.js';
import type { DiskUsageSummary } from '../store/evictor.js';
import type { BandwidthSnapshot, LimitSnapshot } from '../download/bandwidth.js';

/** `--server URL[,URL…]`: several nodes of a cluster, asked one by one and merged. */
export function serverList(value: string): string[] {
  return [
    ...new Set(
      value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    ),
  ];
}

/** An entry as `ls` shows it across nodes: which node answered it. */
export type NodeEntry = EntryStatus & { node: string };

/**
 * Entries from several nodes, one per id. With deterministic ids an entry registered through one
 * node and played through its owner is listed by both: the copy with more stored bytes wins (the
 * owner's), then the one listed first. Order: by creation time, then id, like one node's pages.
 */
export function mergeEntries(lists: ReadonlyArray<{ node: string; entries: readonly EntryStatus[] }>): NodeEntry[] {
  const byId = new Map<string, NodeEntry>();
  for (const { node, entries } of lists) {
    for (const e of entries) {
      const seen = byId.get(e.id);
      if (!seen || e.downloadedBytes > seen.downloadedBytes) byId.set(e.id, { ...e, node });
    }
  }
  return [...byId.values()].sort((a, b) => (a.createdAt === b.createdAt ? (a.id < b.id ? -1 : 1) : a.createdAt < b.createdAt ? -1 : 1));
}

export interface NodeStats {
  totals: StatTotals;
  disk: DiskUsageSummary;
  entries: number;
  /** Absent from nodes older than the bandwidth limits. */
  bandwidth?: BandwidthSnapshot;
}

/** Totals of several nodes: counters, bytes and limits add up (each node has its own disk). */
export function sumStats(list: readonly NodeStats[]): NodeStats {
  const totals: StatTotals = { hits: 0, misses: 0, bytesFromCache: 0, bytesFromUpstream: 0, evictions: 0, evictedBytes: 0 };
  const disk: DiskUsageSummary = { usedBytes: 0, freeBytes: 0, diskBytes: 0, limits: { maxSize: 0, minFree: 0 } };
  let entries = 0;
  for (const s of list) {
    for (const k of Object.keys(totals) as Array<keyof StatTotals>) totals[k] += s.totals[k] ?? 0;
    disk.usedBytes += s.disk.usedBytes;
    disk.freeBytes += s.disk.freeBytes;
    disk.diskBytes += s.disk.diskBytes;
    disk.limits.maxSize += s.disk.limits.maxSize;
    disk.limits.minFree += s.disk.limits.minFree;
    entries += s.entries;
  }
  return { totals, disk, entries, bandwidth: sumBandwidth(list.map((s) => s.bandwidth)) };
}

/** Upstream bytes and rates add up; a limit adds up only when every node has one now (else: none). */
function sumBandwidth(list: ReadonlyArray<BandwidthSnapshot | undefined>): BandwidthSnapshot | undefined {
  const all = list.filter((b): b is BandwidthSnapshot => b !== undefined);
  const first = all[0];
  if (!first || all.length < list.length) return undefined;
  const sumLimit = (pick: (b: BandwidthSnapshot) => LimitSnapshot | null): LimitSnapshot | null => {
    const limits = all.map(pick);
    if (limits.some((l) => l === null || l.bytesPerSecond === null)) return null;
    const bytesPerSecond = limits.reduce((sum, l) => sum + (l?.bytesPerSecond ?? 0), 0);
    return { timetable: `sum of ${limits.length} nodes`, bytesPerSecond, next: null };
  };
  const upstream = structuredClone(first.upstream);
  for (const b of all.slice(1)) {
    for (const [name, u] of Object.entries(b.upstream) as Array<[keyof typeof upstream, { bytes: number; bytesPerSecond: number }]>) {
      upstream[name].bytes += u.bytes;
      upstream[name].bytesPerSecond += u.bytesPerSecond;
    }
  }
  const waiting = all.reduce((sum, b) => sum + b.waiting, 0);
  return { limitRate: sumLimit((b) => b.limitRate), limitRateAll: sumLimit((b) => b.limitRateAll), waiting, upstream };
}
