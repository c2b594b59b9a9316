import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import type { ChunkRow } from '../db/repository.js';
import type { ChunkStore } from './chunk-store.js';

const VERIFY_READ = 1024 * 1024;

interface Stat {
  size: number;
  mtimeMs: number;
}

interface FileBaseline {
  size: number;
  mtimeMs: number;
  /** start_byte of rows whose bytes were checked (or written by us) since the baseline. */
  rows: Set<number>;
}

/**
 * Checks a chunk row's bytes against its stored CRC-32 before they are served: the first time
 * after start-up, and again whenever the file's size or mtime changed behind our back (someone
 * truncated, deleted or rewrote it). Our own writes move the baseline, so they cost nothing.
 */
export class ChunkVerifier {
  private readonly files = new Map<string, FileBaseline>();
  /** A stat under way per file, shared by the checks that come meanwhile (many readers of one file). */
  private readonly statting = new Map<string, Promise<Stat | undefined>>();

  constructor(private readonly store: ChunkStore) {}

  /**
   * The file's size and mtime for a check: a check that comes while a stat of the file runs takes
   * its result (50 readers of one file made a thread-pool call each per row served). That stat is
   * at most a fraction of a millisecond older than one of its own; a change can slip past either.
   */
  private sharedStat(file: string): Promise<Stat | undefined> {
    let pending = this.statting.get(file);
    if (!pending) {
      pending = this.stat(file).finally(() => this.statting.delete(file));
      this.statting.set(file, pending);
    }
    return pending;
  }

  private async stat(file: string): Promise<Stat | undefined> {
    try {
      const st = await fsp.stat(path.join(this.store.root, file));
      return { size: st.size, mtimeMs: st.mtimeMs };
    } catch {
      return undefined; // deleted: no row of it can be trusted
    }
  }

  /** After our own write: the file's current size and mtime are ours; `rowStart` was just checksummed. */
  async noteWritten(file: string, rowStart?: number): Promise<void> {
    const st = await this.stat(file);
    if (!st) return;
    const known = this.files.get(file);
    const rows = known?.rows ?? new Set<number>();
    if (rowStart !== undefined) rows.add(rowStart);
    this.files.set(file, { ...st, rows });
  }

  /**
   * True when the row's bytes in the file match its checksum (cached until the file changes).
   * `ownWrites`: one of our downloads is writing this file right now, so a changed size or mtime
   * is most likely ours — adopt it rather than re-reading every row served during playback.
   */
  async check(file: string, row: ChunkRow, ownWrites = false): Promise<boolean> {
    const st = await this.sharedStat(file);
    if (!st) return false;
    let base = this.files.get(file);
    if (!base || base.size !== st.size || base.mtimeMs !== st.mtimeMs) {
      base = { ...st, rows: base && ownWrites ? base.rows : new Set() };
      this.files.set(file, base);
    }
    if (base.rows.has(row.start)) return true;
    if (!(await this.crcMatches(file, row))) return false;
    base.rows.add(row.start);
    return true;
  }

  /** Reads the row's bytes again whatever earlier checks found (a scrub: bit rot leaves mtime alone). */
  async recheck(file: string, row: ChunkRow): Promise<boolean> {
    if ((await this.stat(file)) && (await this.crcMatches(file, row))) return true;
    this.forget(file, row.start);
    return false;
  }

  private async crcMatches(file: string, row: ChunkRow): Promise<boolean> {
    let crc = 0;
    for (let pos = row.start; pos <= row.end;) {
      const length = Math.min(VERIFY_READ, row.end - pos + 1);
      const buf = await this.store.read(file, pos, length);
      if (buf.length !== length) return false;
      crc = crc32(buf, crc);
      pos += length;
    }
    return crc === row.checksum;
  }

  /** The file is gone or its rows were dropped. */
  forget(file: string, rowStart?: number): void {
    if (rowStart === undefined) this.files.delete(file);
    else this.files.get(file)?.rows.delete(rowStart);
  }
}
