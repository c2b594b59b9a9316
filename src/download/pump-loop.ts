/** How long the pump waits before retrying after a database error. */
const RETRY_MS = 500;

/**
 * How the scheduler's pump runs, apart from what one round does: re-entrant calls (a transfer
 * freeing its slot while a round runs) make it go round once more instead of nesting; a round that
 * throws (a busy or failing database) is reported, and the pump is tried again shortly, after
 * `recover` (which may throw too: then it waits again). Nothing runs once stopped.
 */
export class PumpLoop {
  private running = false;
  private again = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly round: () => void,
    private readonly recover: () => void,
    private readonly report: (err: unknown) => void,
  ) {}

  run(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      do {
        this.again = false;
        this.round();
      } while (this.again && !this.stopped);
    } catch (err) {
      // Keep the process up and try again shortly.
      this.report(err);
      this.retryLater();
    } finally {
      this.running = false;
    }
  }

  /** Runs `recover`, then the pump, in a moment (once, however often it is asked meanwhile). */
  retryLater(): void {
    this.retryTimer ??= setTimeout(() => {
      this.retryTimer = undefined;
      try {
        this.recover();
      } catch (err) {
        this.report(err);
        this.retryLater();
        return;
      }
      this.run();
    }, RETRY_MS).unref();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
  }
}
