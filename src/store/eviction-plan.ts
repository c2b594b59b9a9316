import type { ChunkRow, EntryRow } from '../db/repository.js';

export type FileAction =
  | { kind: 'none' }
  /** Nothing is kept: remove the file. */
  | { kind: 'delete' }
  /** Everything dropped lies past the last kept byte: cut the file there. */
  | { kind: 'truncate'; length: number }
  /** Dropped bytes sit between kept ones: copy the kept ranges into a new sparse file. */
  | { kind: 'rewrite'; keep: ChunkRow[] };

export interface EvictionPlan {
  drop: ChunkRow[];
  droppedBytes: number;
  action: FileAction;
}

const FS_BLOCK = 4096;

/**
 * What to evict from one entry to free about `need` bytes. Whole chunks go, from the end of the
 * file backwards (so the file can simply be truncated and a restart from the beginning stays
 * instant). A head pin keeps the chunks holding its first `pinHeadBytes` and the tail chunk,
 * where MP4 `moov` and Matroska cues often sit. Chunk rows never straddle a chunk boundary.
 * `allocated` (bytes on disk) also reveals bytes written but never recorded, e.g. by a download
 * cut off at shutdown, which a rewrite reclaims. Chunks overlapping a `protect` span (what readers
 * still need, what transfers write) are kept.
 */
export function planEviction(
  entry: EntryRow,
  rows: readonly ChunkRow[],
  need: number,
  allocated: number,
  protect: ReadonlyArray<readonly [number, number]> = [],
): EvictionPlan {
  if (entry.pinned && entry.pinHeadBytes === null) return { drop: [], droppedBytes: 0, action: { kind: 'none' } };
  const cs = entry.chunkSize;
  const total = entry.expectedTotalSize;
  const lastChunk = total !== null && total > 0 ? Math.floor((total - 1) / cs) : -1;
  const headChunks = entry.pinned && entry.pinHeadBytes !== null ? Math.ceil(entry.pinHeadBytes / cs) : 0;
  const isProtected = (i: number): boolean => protect.some(([a, b]) => a <= (i + 1) * cs - 1 && b >= i * cs);
  const keepChunk = (i: number): boolean => (entry.pinned && (i < headChunks || i === lastChunk)) || isProtected(i);

  const byChunk = new Map<number, ChunkRow[]>();
  for (const r of rows) {
    const i = Math.floor(r.start / cs);
    if (keepChunk(i)) continue;
    let list = byChunk.get(i);
    if (!list) byChunk.set(i, (list = []));
    list.push(r);
  }
  const drop: ChunkRow[] = [];
  let droppedBytes = 0;
  for (const i of [...byChunk.keys()].sort((a, b) => b - a)) {
    if (droppedBytes >= need) break;
    for (const r of byChunk.get(i) ?? []) {
      drop.push(r);
      droppedBytes += r.end - r.start + 1;
    }
  }
  const dropped = new Set(drop);
  const keep = rows.filter((r) => !dropped.has(r));
  if (keep.length === 0) {
    return { drop, droppedBytes, action: drop.length > 0 || allocated > 0 ? { kind: 'delete' } : { kind: 'none' } };
  }
  const keptBytes = keep.reduce((sum, r) => sum + r.end - r.start + 1, 0);
  // Block rounding per range plus file-system metadata blocks: below this, nothing is garbage.
  const slack = FS_BLOCK * (keep.length + 2) + Math.ceil(keptBytes / 256);
  const garbage = allocated > keptBytes + slack;
  if (drop.length === 0 && !garbage) return { drop, droppedBytes, action: { kind: 'none' } };
  const keptEnd = Math.max(...keep.map((r) => r.end)) + 1;
  if (drop.length > 0 && drop.every((r) => r.start >= keptEnd)) {
    return { drop, droppedBytes, action: { kind: 'truncate', length: keptEnd } };
  }
  return { drop, droppedBytes, action: { kind: 'rewrite', keep } };
}
