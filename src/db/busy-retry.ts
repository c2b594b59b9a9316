import { setTimeout as sleep } from 'node:timers/promises';
import { isDatabaseFailure } from '../errors.js';

const RETRY_MS = 50;
const ATTEMPTS = 100;

/**
 * Runs a write that must not be lost (a chunk row after its bytes were fsynced) and, while the
 * database is busy, tries again asynchronously: the event loop never sleeps in a busy timeout.
 * Gives up after about five seconds, throwing the last error.
 */
export async function retryWhileBusy<T>(write: () => T, signal?: AbortSignal): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return write();
    } catch (err) {
      if (!isDatabaseFailure(err) || attempt >= ATTEMPTS || signal?.aborted) throw err;
    }
    await sleep(RETRY_MS);
  }
}
