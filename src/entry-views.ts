import type { CacheRepository, EntriesPageQuery, ListedFacts } from './db/repository.js';
import { entryJsonPage, entryPage, type EntryPageQuery } from './entry-pages.js';
import { redactUrl } from './entry-input.js';
import { ErrorCodes, MediaCacheError } from './errors.js';
import type { TransferSnapshot } from './inspect.js';
import { entryStatus, entrySummary, type EntryStatus, type EntrySummary } from './status.js';

/** What the views read of the download core and the meter: transfers under way and recent rates. */
export interface LiveTransfers {
  transfersOf(entryId: string): ReadonlyArray<{ snapshot(): TransferSnapshot }>;
  snapshot(): TransferSnapshot[];
}
export interface RecentRates {
  rate(entryId: string): number;
  meteredIds(): Iterable<string>;
}

/**
 * How entries look to the API, the CLI and embedding apps: one entry's status, every entry, and
 * pages of summaries. Each is derived from the database when asked, with the transfers under way
 * and the recent download rate beside it; nothing here writes.
 */
export class EntryViews {
  constructor(
    private readonly repo: CacheRepository,
    private readonly transfers: LiveTransfers,
    private readonly rates: RecentRates,
  ) {}

  /** The entry's status; MC_ERR_NOT_FOUND when there is none. */
  status(id: string): EntryStatus {
    const status = this.find(id);
    if (!status) throw new MediaCacheError(ErrorCodes.NOT_FOUND, `no entry with id ${id}`);
    return status;
  }

  find(id: string): EntryStatus | undefined {
    const facts = this.repo.entryFacts(id);
    return facts && entryStatus(facts, this.repo.listChunks(id), this.transfersOf(id), this.rates.rate(id));
  }

  all(): EntryStatus[] {
    return this.repo.listEntries().map((e) => this.status(e.id));
  }

  /** One page in a stable order, filtered; `next` goes on where it stopped (null at the end). */
  async page(query: EntryPageQuery): Promise<{ entries: EntrySummary[]; next: string | null }> {
    const { facts, next } = await entryPage((q) => this.repo.listedPage(q), query);
    return { entries: facts.map((f) => this.summaryOf(f)), next };
  }

  /** page() without a state filter as the API's body, each summary then `streamUrl` (`streamBase` + id): the same bytes, mostly written by SQLite. */
  pageJson(query: Omit<EntryPageQuery, 'state'>, streamBase: string): Promise<Buffer[]> {
    const json = (f: ListedFacts): string => JSON.stringify({ ...this.summaryOf(f), streamUrl: streamBase + f.entry.id });
    const live = (): Set<string> => new Set([...this.rates.meteredIds(), ...this.transfers.snapshot().map((t) => t.entryId)]);
    const render = (q: EntriesPageQuery): string => this.repo.listedPage(q).map(json).join(',');
    return entryJsonPage({ slice: (q) => this.repo.listedJsonPage(q, streamBase), live, listedUrl: redactUrl, render }, query);
  }

  private summaryOf(f: ListedFacts): EntrySummary {
    return entrySummary(f, this.transfersOf(f.entry.id), this.rates.rate(f.entry.id));
  }

  private transfersOf(id: string): TransferSnapshot[] {
    return this.transfers.transfersOf(id).map((t) => t.snapshot());
  }
}
