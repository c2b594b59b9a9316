/**
 * A token bucket of bytes shared by transfers, with waits that can be cancelled and re-ranked.
 *
 * Debt model: a piece that has already arrived is charged whole when its transfer is let go, and
 * a transfer waits (reading nothing more from its socket) while the balance is below zero or more
 * urgent transfers wait before it. Over any window the bytes read are therefore at most
 * rate × window + capacity + one piece per waiting transfer. Waiters are served by rank (lower
 * first: the priority), then arrival; one timer serves them all, so nothing loops on the event loop.
 *
 * Why not `limiter` (npm, the well-kept token bucket): its removeTokens() cannot be cancelled (a
 * transfer raised to CRITICAL, or stopped, must leave its wait at once), it serves waiters only in
 * arrival order (playback first needs ranks), and it refuses a piece larger than the bucket.
 */

/** A transfer's place in the queue: `done` settles when it may read on (or was let go). */
export interface BucketWait {
  readonly done: Promise<void>;
  /** The bytes it is charged when it goes. */
  readonly bytes: number;
  rank: number;
  readonly seq: number;
  release: () => void;
}

/**
 * How many seconds of the rate the bucket holds: a timer up to that late loses no tokens, and a
 * pause (every transfer pre-empted by a player) earns at most that much of a burst afterwards.
 */
const CAPACITY_S = 0.1;
const MIN_CAPACITY = 64 * 1024;

export class TokenBucket {
  private tokens: number;
  private capacity: number;
  private stamp: number;
  private readonly waiters: BucketWait[] = [];
  private timer: NodeJS.Timeout | undefined;
  private seq = 0;

  constructor(
    private rate: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.capacity = capacityOf(rate);
    this.tokens = 0; // no burst at the start: the first piece goes, the rate holds from there
    this.stamp = now();
  }

  get bytesPerSecond(): number {
    return this.rate;
  }

  /** Charges `bytes` and returns undefined when the reader may go on now, else its wait. */
  take(bytes: number, rank: number): BucketWait | undefined {
    this.refill();
    if (this.waiters.length === 0 && this.tokens >= 0) {
      this.tokens -= bytes;
      return undefined;
    }
    let release!: () => void;
    const done = new Promise<void>((resolve) => (release = resolve));
    const wait: BucketWait = { done, bytes, rank, seq: this.seq++, release };
    this.insert(wait);
    this.schedule();
    return wait;
  }

  /** Lets a wait go now (its transfer is no longer limited here, or stopped), charged: its piece did arrive. */
  cancel(wait: BucketWait): void {
    const i = this.waiters.indexOf(wait);
    if (i < 0) return;
    this.waiters.splice(i, 1);
    this.refill();
    this.tokens -= wait.bytes;
    wait.release();
    this.reschedule();
  }

  /** Moves a wait to its new rank (a transfer's priority changed but it is still limited here). */
  rerank(wait: BucketWait, rank: number): void {
    const i = this.waiters.indexOf(wait);
    if (i < 0 || wait.rank === rank) return;
    this.waiters.splice(i, 1);
    wait.rank = rank;
    this.insert(wait);
  }

  /** A new rate (a timetable switched): what was earned so far counts at the old one. */
  setRate(rate: number): void {
    this.refill();
    this.rate = rate;
    this.capacity = capacityOf(rate);
    this.tokens = Math.min(this.tokens, this.capacity);
    this.reschedule();
  }

  /** Lets every waiter go (the limit was lifted or the cache is closing). */
  releaseAll(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const w of this.waiters.splice(0)) w.release();
  }

  private insert(wait: BucketWait): void {
    let i = this.waiters.length;
    while (i > 0) {
      const before = this.waiters[i - 1] as BucketWait;
      if (before.rank < wait.rank || (before.rank === wait.rank && before.seq < wait.seq)) break;
      i--;
    }
    this.waiters.splice(i, 0, wait);
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.stamp) * this.rate) / 1000);
    this.stamp = now;
  }

  private reschedule(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.waiters.length === 0) return;
    this.refill();
    const ms = this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.rate);
    // Not unref'd: a pending wait is work under way (its transfer is stopped or let go before close).
    this.timer = setTimeout(() => this.flush(), ms);
  }

  private flush(): void {
    this.timer = undefined;
    this.refill();
    while (this.waiters.length > 0 && this.tokens >= 0) {
      const w = this.waiters.shift() as BucketWait;
      this.tokens -= w.bytes;
      w.release();
    }
    this.schedule();
  }
}

function capacityOf(rate: number): number {
  return Math.max(MIN_CAPACITY, rate * CAPACITY_S);
}
