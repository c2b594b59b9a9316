/**
 * Readers' demand, in memory only (it cannot outlive the connections that hold it).
 *
 * Invariants kept here:
 * - demand is a handle: a reader opens one, changes what it wants with set(), and releases it
 *   once; release() is idempotent and forgets everything the handle held;
 * - counts are never kept apart from the handles: "does anyone want chunk k" is answered from
 *   the live handles themselves, so no throw between an increment and its store can strand one;
 * - set() and release() only change memory (they cannot throw); the queue work they imply is
 *   the scheduler's, done afterwards.
 */
export class DemandHandle {
  private wanted: ReadonlySet<number> = new Set();
  /** The byte the reader reads at; its protection from eviction starts here. */
  position = 0;
  released = false;

  constructor(
    private readonly registry: DemandRegistry,
    readonly entryId: string,
  ) {}

  get chunks(): ReadonlySet<number> {
    return this.wanted;
  }

  /** Replaces what this reader wants; returns the chunks it no longer wants. */
  set(chunks: readonly number[], position: number): number[] {
    if (this.released) return [];
    const next = new Set(chunks);
    const dropped = [...this.wanted].filter((i) => !next.has(i));
    this.wanted = next;
    this.position = position;
    return dropped;
  }

  /** Gives up all demand; returns the chunks it held (empty on a second call). */
  release(): number[] {
    if (this.released) return [];
    this.released = true;
    const held = [...this.wanted];
    this.wanted = new Set();
    this.registry.remove(this);
    return held;
  }
}

export class DemandRegistry {
  private readonly byEntry = new Map<string, Set<DemandHandle>>();

  open(entryId: string): DemandHandle {
    const handle = new DemandHandle(this, entryId);
    let set = this.byEntry.get(entryId);
    if (!set) this.byEntry.set(entryId, (set = new Set()));
    set.add(handle);
    return handle;
  }

  /** Called by DemandHandle.release(). */
  remove(handle: DemandHandle): void {
    const set = this.byEntry.get(handle.entryId);
    if (!set) return;
    set.delete(handle);
    if (set.size === 0) this.byEntry.delete(handle.entryId);
  }

  wants(entryId: string, index: number): boolean {
    for (const h of this.byEntry.get(entryId) ?? []) if (h.chunks.has(index)) return true;
    return false;
  }

  /** Chunks any reader of the entry wants, ascending. */
  chunksOf(entryId: string): number[] {
    const out = new Set<number>();
    for (const h of this.byEntry.get(entryId) ?? []) for (const i of h.chunks) out.add(i);
    return [...out].sort((a, b) => a - b);
  }

  /**
   * Byte spans readers still need, inclusive: from each reader's position through the end of
   * the last chunk it wants. Bytes behind a reader are not protected: a film larger than the
   * cache plays to the end while what it played is evicted.
   */
  protectedSpans(entryId: string, chunkSize: number): Array<[number, number]> {
    const spans: Array<[number, number]> = [];
    for (const h of this.byEntry.get(entryId) ?? []) {
      if (h.chunks.size === 0) continue;
      const lastChunk = Math.max(...h.chunks);
      spans.push([h.position, (lastChunk + 1) * chunkSize - 1]);
    }
    return spans;
  }

  entries(): string[] {
    return [...this.byEntry.keys()];
  }

  snapshot(): Array<{ entryId: string; handles: number; chunks: number[] }> {
    return [...this.byEntry].map(([entryId, set]) => ({ entryId, handles: set.size, chunks: this.chunksOf(entryId) }));
  }
}
