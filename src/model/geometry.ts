/**
 * Chunk geometry and keys, in one place: an entry is cut into fixed-size chunks (the last one
 * shorter); byte positions are inclusive on both ends throughout.
 */
export interface ChunkGeometry {
  chunkSize: number;
  /** Null while the size is not known yet. */
  expectedTotalSize: number | null;
}

export function chunkOf(position: number, chunkSize: number): number {
  return Math.floor(position / chunkSize);
}

/** First and last byte of chunk `index` (the last byte clipped to the file when its size is known). */
export function chunkBounds(g: ChunkGeometry, index: number): { first: number; last: number } {
  const first = index * g.chunkSize;
  const end = first + g.chunkSize;
  return { first, last: (g.expectedTotalSize === null ? end : Math.min(end, g.expectedTotalSize)) - 1 };
}

/** Number of chunks of an entry of known size. */
export function chunkCount(g: ChunkGeometry): number {
  return g.expectedTotalSize === null ? 0 : Math.ceil(g.expectedTotalSize / g.chunkSize);
}

/** The key of one chunk of one version of an entry: a transfer's slot. */
export function transferKey(entryId: string, version: number, index: number): string {
  return `${entryId}@${version}:${index}`;
}

/** The sparse file of one version of an entry, relative to the store root. */
export function versionFileName(entryId: string, version: number): string {
  return `${entryId}.v${version}.bin`;
}

/** Indexes of the chunks not wholly covered by `stored` (sorted, coalesced inclusive ranges). */
export function missingChunks(g: ChunkGeometry, stored: ReadonlyArray<readonly [number, number]>): number[] {
  const total = g.expectedTotalSize ?? 0;
  const out: number[] = [];
  let r = 0;
  for (let first = 0, i = 0; first < total; first += g.chunkSize, i++) {
    const last = Math.min(first + g.chunkSize, total) - 1;
    while (r < stored.length && (stored[r]?.[1] ?? 0) < first) r++;
    const range = stored[r];
    if (!range || range[0] > first || range[1] < last) out.push(i);
  }
  return out;
}
