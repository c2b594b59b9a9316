/**
 * Coalescing by key: a key marked changed goes out at once when its last message is at least
 * `intervalMs` old, else once when that time is up, carrying the state of then. So each key sends
 * at most one message per interval, and its last change is never lost. Pure: the caller passes
 * the time and runs the timer (see LiveHub).
 */
export class RateGate<K> {
  private readonly lastSent = new Map<K, number>();
  private readonly dirty = new Set<K>();

  constructor(readonly intervalMs: number) {}

  /** The key's state changed; returns when it may go out (ms, the caller's clock). */
  mark(key: K): number {
    this.dirty.add(key);
    return (this.lastSent.get(key) ?? Number.NEGATIVE_INFINITY) + this.intervalMs;
  }

  /** A message for the key went out past the gate (a transfer's start): its interval begins now. */
  sent(key: K, now: number): void {
    this.lastSent.set(key, now);
    this.dirty.delete(key);
  }

  /** The key is gone (transfer ended, entry removed): nothing more goes out for it. */
  forget(key: K): void {
    this.dirty.delete(key);
    this.lastSent.delete(key);
  }

  /** The changed keys that may go out at `now` (at most `limit`); they count as sent at `now`. */
  take(now: number, limit = Number.POSITIVE_INFINITY): K[] {
    const due: K[] = [];
    for (const key of this.dirty) {
      if (due.length >= limit) break;
      const last = this.lastSent.get(key);
      if (last !== undefined && now - last < this.intervalMs) continue;
      due.push(key);
    }
    for (const key of due) this.sent(key, now);
    return due;
  }

  /** When the next changed key may go out (ms, the caller's clock), or null when none changed. */
  nextDue(): number | null {
    let next: number | null = null;
    for (const key of this.dirty) {
      const at = (this.lastSent.get(key) ?? Number.NEGATIVE_INFINITY) + this.intervalMs;
      if (next === null || at < next) next = at;
    }
    return next;
  }

  /** Forgets when quiet keys last sent (their next change goes out at once anyway). */
  prune(now: number): void {
    for (const [key, at] of this.lastSent) if (now - at >= this.intervalMs && !this.dirty.has(key)) this.lastSent.delete(key);
  }

  get pending(): number {
    return this.dirty.size;
  }
}
