import type { ServerResponse } from 'node:http';

/**
 * One connected event-stream client. Writes never wait: what the socket has not taken stays in
 * the response's buffer, and past `maxQueuedBytes` the client is cut off (it may reconnect with
 * Last-Event-ID). A slow client so costs at most that much memory and never slows anyone else.
 */
export class SseClient {
  lastWriteAt = Date.now();
  /** Bytes of the client's start still allowed beyond the bound. */
  private allowance = 0;

  constructor(
    private readonly res: ServerResponse,
    private readonly maxQueuedBytes: number,
    private readonly onDropped: () => void = () => undefined,
  ) {}

  get open(): boolean {
    return !this.res.destroyed && !this.res.writableEnded;
  }

  /**
   * Writes what a new client starts with (a snapshot, or the messages it missed). However large,
   * it is allowed on top of the bound until the client has read it: the allowance only shrinks.
   */
  begin(frames: readonly string[]): void {
    for (const frame of frames) this.res.write(frame);
    this.lastWriteAt = Date.now();
    this.allowance = this.res.writableLength;
  }

  /**
   * Queues `frame`; false (and the connection closed) when the client lags too far behind: more
   * than the bound (plus what is left of its start) still queued from earlier writes.
   */
  write(frame: string): boolean {
    if (!this.open) return false;
    const queued = this.res.writableLength;
    if (queued > this.maxQueuedBytes + this.allowance) {
      this.onDropped();
      this.res.destroy();
      return false;
    }
    this.allowance = Math.min(this.allowance, queued);
    this.res.write(frame);
    this.lastWriteAt = Date.now();
    return true;
  }

  end(): void {
    if (this.open) this.res.end();
  }
}
