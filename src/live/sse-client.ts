import type { ServerResponse } from 'node:http';

/**
 * One connected event-stream client. Writes never wait: what the socket has not taken stays in
 * the response's buffer, and past `maxQueuedBytes` the client is cut off (it may reconnect with
 * Last-Event-ID). A slow client so costs at most that much memory and never slows anyone else.
 */
export class SseClient {
  lastWriteAt = Date.now();

  constructor(
    private readonly res: ServerResponse,
    private readonly maxQueuedBytes: number,
    private readonly onDropped: () => void = () => undefined,
  ) {}

  get open(): boolean {
    return !this.res.destroyed && !this.res.writableEnded;
  }

  /**
   * Queues `frame`; false (and the connection closed) when the client lags too far behind: more
   * than the bound still queued from earlier writes. One large message (a snapshot of many
   * entries) therefore never cuts off a client that reads.
   */
  write(frame: string): boolean {
    if (!this.open) return false;
    if (this.res.writableLength > this.maxQueuedBytes) {
      this.onDropped();
      this.res.destroy();
      return false;
    }
    this.res.write(frame);
    this.lastWriteAt = Date.now();
    return true;
  }

  end(): void {
    if (this.open) this.res.end();
  }
}
