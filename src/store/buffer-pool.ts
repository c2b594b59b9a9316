/**
 * Reusable read buffers of one size. Streaming a cached file allocates nothing per read; a fresh
 * 1 MiB buffer per read made garbage collection the proxy's hottest path under load.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];

  constructor(
    readonly size: number,
    private readonly maxFree: number,
  ) {}

  acquire(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  /** Only for buffers no socket or file operation still uses. */
  release(buf: Buffer): void {
    if (buf.length === this.size && this.free.length < this.maxFree) this.free.push(buf);
  }
}
