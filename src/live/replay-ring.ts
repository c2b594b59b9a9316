/**
 * The last `capacity` messages by sequence number, for clients that reconnect with Last-Event-ID.
 * Sequence numbers are consecutive from 1; the ring keeps (last − capacity, last].
 */
export class ReplayRing<T> {
  private readonly items: Array<T | undefined>;
  private last = 0;

  constructor(readonly capacity: number) {
    this.items = new Array<T | undefined>(capacity);
  }

  /** The sequence number of the newest message (0 before the first). */
  get lastSeq(): number {
    return this.last;
  }

  /** The oldest sequence number still held (lastSeq + 1 when empty). */
  get firstSeq(): number {
    return Math.max(1, this.last - this.capacity + 1);
  }

  /** Adds the next message; returns its sequence number. */
  push(item: T): number {
    this.last++;
    this.items[this.last % this.capacity] = item;
    return this.last;
  }

  /**
   * The messages after `seq`, oldest first; null when they are not all held any more (or `seq` was
   * never given out): the client needs a snapshot instead.
   */
  after(seq: number): T[] | null {
    if (!Number.isSafeInteger(seq) || seq > this.last || seq < this.firstSeq - 1) return null;
    const out: T[] = [];
    for (let s = seq + 1; s <= this.last; s++) out.push(this.items[s % this.capacity] as T);
    return out;
  }
}
