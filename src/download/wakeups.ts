import { ErrorCodes, MediaCacheError } from '../errors.js';

/**
 * Event-based waiting, keyed by entry: a reader waits for "something changed for this entry"
 * (bytes written, a chunk recorded, a failure) and then re-checks. No polling, and no listener
 * outlives its wait, so thousands of aborted readers leave nothing behind.
 */
export class Wakeups {
  private readonly waiters = new Map<string, Set<() => void>>();

  notify(key: string): void {
    const set = this.waiters.get(key);
    if (!set) return;
    this.waiters.delete(key);
    for (const wake of set) wake();
  }

  notifyAll(): void {
    for (const key of [...this.waiters.keys()]) this.notify(key);
  }

  /** Resolves on the next notify(key); rejects on timeout or abort. */
  wait(key: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(aborted());
    return new Promise((resolve, reject) => {
      let set = this.waiters.get(key);
      if (!set) this.waiters.set(key, (set = new Set()));
      const done = (err?: MediaCacheError): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const current = this.waiters.get(key);
        if (current) {
          current.delete(wake);
          if (current.size === 0) this.waiters.delete(key);
        }
        if (err) reject(err);
        else resolve();
      };
      const wake = (): void => done();
      const onAbort = (): void => done(aborted());
      const timer = setTimeout(() => done(new MediaCacheError(ErrorCodes.WAIT_TIMEOUT, `no data within ${timeoutMs} ms`)), timeoutMs);
      set.add(wake);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Number of pending waits, for leak checks and metrics. */
  get size(): number {
    let n = 0;
    for (const set of this.waiters.values()) n += set.size;
    return n;
  }
}

function aborted(): MediaCacheError {
  return new MediaCacheError(ErrorCodes.ABORTED, 'reader went away');
}
