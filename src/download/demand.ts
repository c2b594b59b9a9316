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
  /** The byte the reader's demand starts at; its protection from eviction starts here. */
  position = 0;
  /** The byte the reader reads next (moves with every piece; what a dashboard shows). */
  readAt = 0;
  released = false;

  constructor(
    private readonly registry: DemandRegistry,
    readonly entryId: string,
    /** Names the player (one reader's response) in events, unique in the process. */
    readonly playerId: number,
  ) {}

  /** The reader served bytes up to `position` (exclusive): memory only, cannot throw. */
  moveTo(position: number): void {
    if (this.released) return;
    this.readAt = position;
    this.registry.observer?.moved(this);
  }

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
    this.moveTo(position);
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

/** Who hears where players read (events for the dashboard); must not throw. */
export interface PlayerObserver {
  moved(handle: DemandHandle): void;
  left(handle: DemandHandle): void;
}

export class DemandRegistry {
  private readonly byEntry = new Map<string, Set<DemandHandle>>();
  private nextPlayerId = 1;
  observer: PlayerObserver | undefined;

  open(entryId: string): DemandHandle {
    const handle = new DemandHandle(this, entryId, this.nextPlayerId++);
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
    this.observer?.left(handle);
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

  /** Where each player reads now (of one entry, or all). */
  players(entryId?: string): Array<{ entryId: string; playerId: number; position: number }> {
    const sets = entryId === undefined ? [...this.byEntry.values()] : [this.byEntry.get(entryId) ?? new Set<DemandHandle>()];
    return sets.flatMap((set) => [...set].map((h) => ({ entryId: h.entryId, playerId: h.playerId, position: h.readAt })));
  }

  entries(): string[] {
    return [...this.byEntry.keys()];
  }

  snapshot(): Array<{ entryId: string; handles: number; chunks: number[] }> {
    return [...this.byEntry].map(([entryId, set]) => ({ entryId, handles: set.size, chunks: this.chunksOf(entryId) }));
  }
}
