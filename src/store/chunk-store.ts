import { constants, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, MediaCacheError, STORAGE_FAILURE } from '../errors.js';

const OPEN_FLAGS = constants.O_RDWR | constants.O_CREAT;

/**
 * Positional reads and writes into one sparse file per entry. Nothing is pre-allocated: a write
 * at offset N leaves a hole before it, so the file's size says nothing about what is stored —
 * availability comes from the database. File handles stay open per entry while it is in use.
 */
export class ChunkStore {
  readonly root: string;
  private readonly handles = new Map<string, Promise<FileHandle>>();

  constructor(root: string) {
    this.root = root;
  }

  /** The file of an entry, relative to the store root (what cache_entries.file_path holds). */
  static fileNameFor(entryId: string): string {
    return `${entryId}.bin`;
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.root, { recursive: true });
  }

  private handle(file: string): Promise<FileHandle> {
    let h = this.handles.get(file);
    if (!h) {
      h = fsp.open(path.join(this.root, file), OPEN_FLAGS, 0o644);
      h.catch(() => this.handles.delete(file));
      this.handles.set(file, h);
    }
    return h;
  }

  /** Opens (creating) a file ahead of its first write, so the open overlaps the upstream's latency. */
  prepare(file: string): void {
    this.handle(file).catch(() => undefined); // a failure resurfaces on the write itself
  }

  /** Writes all of `data` at `position`. Fails with MC_ERR_STORAGE (disk full, I/O error). */
  async write(file: string, position: number, data: Uint8Array): Promise<void> {
    try {
      await this.writeAt(await this.handle(file), position, data);
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
      const fh = await this.handle(file);
      await fh.datasync();
    } catch (err) {
      throw storageError(err);
    }
  }

  /** Reads up to `length` bytes at `position` into a new buffer; shorter only at end of file. */
  async read(file: string, position: number, length: number): Promise<Buffer> {
    const fh = await this.handle(file);
    const buf = Buffer.allocUnsafe(length);
    let off = 0;
    while (off < length) {
      const { bytesRead } = await fh.read(buf, off, length - off, position + off);
      if (bytesRead === 0) break;
      off += bytesRead;
    }
    return off === length ? buf : buf.subarray(0, off);
  }

  /** Reads up to `length` bytes at `position` into `buf`; returns the count (short only at end of file). */
  async readInto(file: string, position: number, buf: Buffer, length: number): Promise<number> {
    const fh = await this.handle(file);
    let off = 0;
    while (off < length) {
      const { bytesRead } = await fh.read(buf, off, length - off, position + off);
      if (bytesRead === 0) break;
      off += bytesRead;
    }
    return off;
  }

  async remove(file: string): Promise<void> {
    await this.release(file);
    await fsp.rm(path.join(this.root, file), { force: true });
  }

  /** Closes the handle of a file no longer in use; the next access reopens it. */
  async release(file: string): Promise<void> {
    const h = this.handles.get(file);
    if (!h) return;
    this.handles.delete(file);
    await (await h.catch(() => undefined))?.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    await Promise.all([...this.handles.keys()].map((f) => this.release(f)));
  }
}

function storageError(err: unknown): MediaCacheError {
  const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
  return new MediaCacheError(ErrorCodes.STORAGE, `${STORAGE_FAILURE} (${code})`, { cause: err });
}
