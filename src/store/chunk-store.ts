import { constants, promises as fsp, renameSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, MediaCacheError, STORAGE_FAILURE } from '../errors.js';

const OPEN_FLAGS = constants.O_RDWR | constants.O_CREAT;
/** Idle file handles kept open (an LRU); handles in use by transfers and readers come on top. */
const DEFAULT_IDLE_HANDLES = 16;
const COPY_BUFFER = 1024 * 1024;
export const COMPACT_SUFFIX = '.compact';

interface OpenFile {
  fh: Promise<FileHandle>;
  /** Operations under way on this handle: it is closed only when none is. */
  ops: number;
  closeWhenIdle: boolean;
}

/**
 * Positional reads and writes into sparse files (one per version of an entry). Nothing is
 * pre-allocated: a write at offset N leaves a hole before it, so a file's size says nothing
 * about what is stored — availability comes from the database.
 *
 * Invariants kept here:
 * - open handles are an LRU of at most `maxIdle` beyond those retained (by a transfer or a
 *   reader) or busy with an operation; a handle is never closed under an operation;
 * - a retired file (an old version, a removed entry) is deleted once nobody retains it;
 * - fsync applies to the file, whichever handle wrote: a handle may close and reopen between a
 *   write and its sync.
 */
export class ChunkStore {
  readonly root: string;
  private readonly handles = new Map<string, OpenFile>();
  private closed = false;
  private readonly retained = new Map<string, number>();
  private readonly retired = new Set<string>();

  constructor(
    root: string,
    private readonly maxIdle = DEFAULT_IDLE_HANDLES,
  ) {
    this.root = root;
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.root, { recursive: true });
  }

  /** Number of file handles open now. */
  get openFiles(): number {
    return this.handles.size;
  }

  /** A transfer or reader uses the file until release(): its handle stays open and it is not deleted. */
  retain(file: string): void {
    this.retained.set(file, (this.retained.get(file) ?? 0) + 1);
  }

  release(file: string): void {
    const n = (this.retained.get(file) ?? 0) - 1;
    if (n > 0) {
      this.retained.set(file, n);
      return;
    }
    this.retained.delete(file);
    if (this.retired.has(file)) void this.deleteNow(file);
    else this.trim();
  }

  isRetained(file: string): boolean {
    return this.retained.has(file);
  }

  /** The file is no longer current (an old version, a removed entry): deleted once nobody retains it. */
  retire(file: string): void {
    this.retired.add(file);
    if (!this.retained.has(file)) void this.deleteNow(file);
  }

  /** Deletes the file now if nobody retains it, else once the last user releases it. */
  async remove(file: string): Promise<void> {
    this.retired.add(file);
    if (!this.retained.has(file)) await this.deleteNow(file);
  }

  private async deleteNow(file: string): Promise<void> {
    this.retired.delete(file);
    await this.closeHandle(file);
    await fsp.rm(path.join(this.root, file), { force: true }).catch(() => undefined);
  }

  /** Opens (creating) a file ahead of its first write, so the open overlaps the upstream's latency. */
  prepare(file: string): void {
    this.use(file, () => Promise.resolve()).catch(() => undefined); // a failure resurfaces on the write itself
  }

  /** Writes all of `data` at `position`. Fails with MC_ERR_STORAGE (disk full, I/O error). */
  async write(file: string, position: number, data: Uint8Array): Promise<void> {
    try {
      await this.use(file, (fh) => this.writeAt(fh, position, data));
    } catch (err) {
      throw storageError(err);
    }
  }

  /** The write system calls themselves; a test seam for a full disk. */
  protected async writeAt(fh: FileHandle, position: number, data: Uint8Array): Promise<void> {
    let off = 0;
    while (off < data.length) {
      const { bytesWritten } = await fh.write(data, off, data.length - off, position + off);
      off += bytesWritten;
    }
  }

  /** Makes written bytes durable: a chunk row may be recorded only after this resolves. */
  async sync(file: string): Promise<void> {
    try {
      await this.use(file, (fh) => fh.datasync());
    } catch (err) {
      throw storageError(err);
    }
  }

  /** Reads up to `length` bytes at `position` into a new buffer; shorter only at end of file. */
  async read(file: string, position: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    const got = await this.readInto(file, position, buf, length);
    return got === length ? buf : buf.subarray(0, got);
  }

  /** Reads up to `length` bytes at `position` into `buf`; returns the count (short only at end of file). */
  readInto(file: string, position: number, buf: Buffer, length: number): Promise<number> {
    return this.use(file, async (fh) => {
      let off = 0;
      while (off < length) {
        const { bytesRead } = await fh.read(buf, off, length - off, position + off);
        if (bytesRead === 0) break;
        off += bytesRead;
      }
      return off;
    });
  }

  /**
   * Node has no hole-punching call, so bytes between kept ranges are reclaimed by copying the
   * kept ranges into a new sparse file and renaming it over the old one. The caller makes sure
   * no transfer writes the file meanwhile; readers go on (they read kept ranges only).
   */
  async compact(file: string, keep: ReadonlyArray<{ start: number; end: number }>): Promise<void> {
    const src = path.join(this.root, file);
    const tmp = `${src}${COMPACT_SUFFIX}`;
    const to = await fsp.open(tmp, 'w');
    try {
      const buf = Buffer.allocUnsafe(COPY_BUFFER);
      for (const r of keep) {
        for (let pos = r.start; pos <= r.end;) {
          const got = await this.readInto(file, pos, buf, Math.min(buf.length, r.end - pos + 1));
          if (got === 0) break;
          await to.write(buf, 0, got, pos);
          pos += got;
        }
      }
      await to.datasync();
    } finally {
      await to.close();
    }
    renameSync(tmp, src);
    await this.closeHandle(file); // the next access opens the new file
  }

  /** Cuts the file at `length` (bytes past it were dropped). */
  async truncate(file: string, length: number): Promise<void> {
    await fsp.truncate(path.join(this.root, file), length).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  private async use<T>(file: string, op: (fh: FileHandle) => Promise<T>): Promise<T> {
    // A read still under way when the cache closes must not open a handle nobody will close.
    if (this.closed) throw Object.assign(new Error('the chunk store is closed'), { code: 'ECLOSED' });
    let of = this.handles.get(file);
    if (of) {
      this.handles.delete(file); // most recently used goes last
    } else {
      of = { fh: fsp.open(path.join(this.root, file), OPEN_FLAGS, 0o644), ops: 0, closeWhenIdle: false };
    }
    this.handles.set(file, of);
    of.ops++;
    try {
      return await op(await of.fh);
    } catch (err) {
      if (this.handles.get(file) === of && (await of.fh.then(() => false).catch(() => true))) this.handles.delete(file);
      throw err;
    } finally {
      of.ops--;
      if (of.closeWhenIdle && of.ops === 0) void closeQuietly(of);
      else this.trim();
    }
  }

  /** Closes the least recently used idle handles beyond the bound. */
  private trim(): void {
    if (this.handles.size <= this.maxIdle) return;
    let excess = this.handles.size - this.maxIdle;
    for (const [file, of] of this.handles) {
      if (excess <= 0) break;
      if (of.ops > 0 || this.retained.has(file)) continue;
      this.handles.delete(file);
      void closeQuietly(of);
      excess--;
    }
  }

  private async closeHandle(file: string): Promise<void> {
    const of = this.handles.get(file);
    if (!of) return;
    this.handles.delete(file);
    if (of.ops > 0) of.closeWhenIdle = true;
    else await closeQuietly(of);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.handles.keys()].map((f) => this.closeHandle(f)));
  }
}

async function closeQuietly(of: OpenFile): Promise<void> {
  await (await of.fh.catch(() => undefined))?.close().catch(() => undefined);
}

function storageError(err: unknown): MediaCacheError {
  const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
  return new MediaCacheError(ErrorCodes.STORAGE, `${STORAGE_FAILURE} (${code})`, { cause: err });
}
