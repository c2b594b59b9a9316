import type { EntryRow } from '../db/repository.js';
import { chunkOf, transferKey } from '../model/geometry.js';
import type { Transfer } from './transfer.js';

/**
 * The transfers under way, by chunk of a version, and when each will have settled. A chunk usually
 * has one; after a split at a seek it has two that cover adjacent ranges (the first cut where the
 * second begins).
 */
export class TransferRegistry {
  private readonly byChunk = new Map<string, Transfer[]>();
  private readonly settled = new Map<Transfer, Promise<void>>();

  add(t: Transfer): void {
    const key = transferKey(t.entryId, t.version, t.chunkIndex);
    const list = this.byChunk.get(key);
    if (list) list.push(t);
    else this.byChunk.set(key, [t]);
  }

  remove(t: Transfer): void {
    this.settled.delete(t);
    const key = transferKey(t.entryId, t.version, t.chunkIndex);
    const list = this.byChunk.get(key)?.filter((x) => x !== t) ?? [];
    if (list.length > 0) this.byChunk.set(key, list);
    else this.byChunk.delete(key);
  }

  /** The transfers of chunk `index` of one version of an entry. */
  ofChunk(entryId: string, version: number, index: number): readonly Transfer[] {
    return this.byChunk.get(transferKey(entryId, version, index)) ?? [];
  }

  /** The transfer of the entry's current version whose range holds `position`. */
  at(entry: EntryRow, position: number): Transfer | undefined {
    const list = this.ofChunk(entry.id, entry.version, chunkOf(position, entry.chunkSize));
    return list.find((t) => position >= t.start && position <= t.end);
  }

  ofEntry(entryId: string): Transfer[] {
    return [...this.all()].filter((t) => t.entryId === entryId);
  }

  *all(): IterableIterator<Transfer> {
    for (const list of this.byChunk.values()) yield* list;
  }

  /** `settled` resolves once the scheduler has settled `t` (tracked from its start). */
  track(t: Transfer, settled: Promise<void>): void {
    this.settled.set(t, settled);
  }

  /** The transfers that may have an upstream request open: what the concurrency limit counts. */
  takingSlots(): Transfer[] {
    return [...this.all()].filter((t) => t.takesSlot);
  }

  /** Resolves once these transfers have settled. */
  async whenSettled(transfers: readonly Transfer[]): Promise<void> {
    await Promise.all(transfers.map((t) => this.settled.get(t)));
  }

  /** Resolves once no transfer of the entry runs (new ones may start afterwards). */
  async whenIdle(entryId: string): Promise<void> {
    for (let running = this.ofEntry(entryId); running.length > 0; running = this.ofEntry(entryId)) await this.whenSettled(running);
  }
}
