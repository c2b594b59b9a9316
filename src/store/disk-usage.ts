import { statSync, statfsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import path from 'node:path';

export interface CacheLimits {
  /** Most bytes the cached files may occupy on disk (allocated blocks, not apparent size). */
  maxSize: number;
  /** Free space to leave on the data dir's file system. */
  minFree: number;
}

export interface DiskUsageReport {
  usedBytes: number;
  freeBytes: number;
  diskBytes: number;
  limits: CacheLimits;
}

export const DEFAULT_MIN_FREE = 2e9;
const MAX_DEFAULT_SIZE = 50e9;
const FS_BLOCK = 4096;
/** Files stat()ed before a measurement yields to the event loop. */
const MEASURE_SLICE = 1000;

/** The smaller of 20 % of the disk holding `dir` and 50 GB. */
export function defaultMaxSize(dir: string): number {
  const fs = statfsSync(dir);
  return Math.min(Math.floor(fs.blocks * fs.bsize * 0.2), MAX_DEFAULT_SIZE);
}

/** What a download of `bytes` may allocate: block rounding and file-system metadata on top. */
export function reservationFor(bytes: number): number {
  return bytes + 2 * FS_BLOCK + Math.ceil(bytes / 512);
}

/**
 * Synchronous on purpose: a measurement must not interleave with downloads ending (whose
 * reservations it replaces), and a stat() costs microseconds.
 */
function allocatedBytes(file: string): number {
  try {
    return statSync(file).blocks * 512;
  } catch {
    return 0;
  }
}

/**
 * Disk usage of the store against the limits. Usage is the allocated blocks of the sparse
 * files, measured with stat(); between measurements every admitted download counts in full
 * until its file has been measured again, so the estimate only errs on the safe side.
 */
export class DiskUsage {
  private readonly allocated = new Map<string, number>();
  private used = 0;
  private free = Number.POSITIVE_INFINITY;
  private disk = 0;
  /** Allocation growth since the last statfs: the free-space figure is that much too high. */
  private growth = 0;
  /** False until the first measurement completed: nothing is admitted before usage is known. */
  measured = false;
  /** Reservation key → bytes, for downloads admitted and running. */
  private readonly reserved = new Map<string, number>();

  constructor(
    private readonly root: string,
    public limits: CacheLimits,
  ) {}

  report(): DiskUsageReport {
    return { usedBytes: this.used, freeBytes: Math.max(0, this.free - this.growth), diskBytes: this.disk, limits: { ...this.limits } };
  }

  allocatedOf(file: string): number {
    return this.allocated.get(file) ?? 0;
  }

  /** Bytes to free so that `extra` more fits under both limits. */
  overBy(extra: number): number {
    let pending = extra;
    for (const b of this.reserved.values()) pending += b;
    const overSize = this.used + pending - this.limits.maxSize;
    const overFree = this.limits.minFree - (this.free - this.growth - pending);
    return Math.max(overSize, overFree, 0);
  }

  reserve(key: string, bytes: number): void {
    this.reserved.set(key, bytes);
  }

  /** Ends a reservation; true when there was one. */
  unreserve(key: string): boolean {
    return this.reserved.delete(key);
  }

  reservationKeys(): string[] {
    return [...this.reserved.keys()];
  }

  /** Measures one file again; returns its allocated bytes. */
  restat(file: string): number {
    const now = allocatedBytes(path.join(this.root, file));
    const delta = now - (this.allocated.get(file) ?? 0);
    if (now > 0) this.allocated.set(file, now);
    else this.allocated.delete(file);
    this.used += delta;
    this.growth += delta;
    return now;
  }

  forgetFile(file: string): void {
    this.used -= this.allocated.get(file) ?? 0;
    this.allocated.delete(file);
  }

  /**
   * Measures every file and the file system; returns the names found. A stat() costs microseconds,
   * but 100,000 of them would hold the event loop: they run in slices that yield, and the figures
   * are swapped in at once at the end (a reservation made meanwhile still counts on top).
   */
  async measure(): Promise<Set<string>> {
    let names: string[] = [];
    try {
      names = await readdir(this.root);
    } catch {
      // a missing directory holds nothing
    }
    const allocated = new Map<string, number>();
    let used = 0;
    for (let i = 0; i < names.length; i++) {
      if (i > 0 && i % MEASURE_SLICE === 0) await yieldToLoop();
      const name = names[i] as string;
      const bytes = allocatedBytes(path.join(this.root, name));
      if (bytes > 0) allocated.set(name, bytes);
      used += bytes;
    }
    this.allocated.clear();
    for (const [name, bytes] of allocated) this.allocated.set(name, bytes);
    this.used = used;
    const fs = statfsSync(this.root);
    this.free = fs.bavail * fs.bsize;
    this.disk = fs.blocks * fs.bsize;
    this.growth = 0;
    this.measured = true;
    return new Set(names);
  }
}
