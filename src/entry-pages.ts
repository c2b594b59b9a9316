import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { EntriesPageQuery, EntryCursor, ListedFacts } from './db/repository.js';
import { ErrorCodes, MediaCacheError } from './errors.js';
import { deriveState, EntryState } from './state/entry-state.js';

export const DEFAULT_PAGE = 500;
export const MAX_PAGE = 5_000;
/** With a state filter, at most this many entries are read per page asked for (then `next` says where to go on). */
const SCAN_FACTOR = 10;
/** Entries read per database call before the loop gets a turn (a few milliseconds each). */
const SLICE = 100;

export interface EntryPageQuery {
  limit?: number;
  /** Opaque: the `next` of the previous page. */
  cursor?: string;
  state?: EntryState;
  pinned?: boolean;
  /** Substring of the URL, source, media id or quality (case-insensitive). */
  q?: string;
}

/**
 * One page of entries in a stable order (creation time, then id), with a cursor to the next;
 * `read` is the repository's page read (all columns, or the listed ones).
 * Each page is one indexed range scan, so paging through 100,000 entries never holds the event
 * loop for long, and an entry added or removed between pages neither shifts nor repeats others.
 */
export async function entryPage<F extends ListedFacts>(
  read: (query: EntriesPageQuery) => F[],
  query: EntryPageQuery,
): Promise<{ facts: F[]; next: string | null }> {
  const limit = query.limit ?? DEFAULT_PAGE;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE) {
    throw new MediaCacheError(ErrorCodes.INVALID_INPUT, `limit must be an integer from 1 to ${MAX_PAGE}`);
  }
  let after = query.cursor === undefined ? null : decodeCursor(query.cursor);
  const facts: F[] = [];
  for (let scanned = 0; ;) {
    // A slice at a time, yielding between: a page of 5,000 never holds the event loop in one go.
    const want = Math.min(SLICE, limit);
    const batch = read({ limit: want, after, pinned: query.pinned, q: query.q });
    for (const f of batch) {
      after = { createdAt: f.entry.createdAt, id: f.entry.id };
      if (query.state !== undefined && deriveState(f) !== query.state) continue;
      facts.push(f);
      if (facts.length === limit) return { facts, next: encodeCursor(after) };
    }
    scanned += batch.length;
    if (batch.length < want) return { facts, next: null };
    // A rare state: a page may come back short rather than read the whole index at once.
    if (scanned >= limit * SCAN_FACTOR && after) return { facts, next: encodeCursor(after) };
    await yieldToLoop();
  }
}

export function encodeCursor(c: EntryCursor): string {
  return Buffer.from(JSON.stringify([c.createdAt, c.id])).toString('base64url');
}

function decodeCursor(cursor: string): EntryCursor {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [unknown, unknown];
    if (typeof createdAt === 'number' && typeof id === 'string') return { createdAt, id };
  } catch {
    // falls through to the error below
  }
  throw new MediaCacheError(ErrorCodes.INVALID_INPUT, 'cursor is not one this server gave out');
}

/** Parses `state`, `pinned`, `limit`, `cursor`, `q` from a query string (400 on a bad value). */
export function parsePageQuery(params: URLSearchParams): EntryPageQuery {
  const query: EntryPageQuery = {};
  const limit = params.get('limit');
  if (limit !== null) {
    if (!/^\d{1,6}$/.test(limit)) throw new MediaCacheError(ErrorCodes.INVALID_INPUT, `limit must be an integer from 1 to ${MAX_PAGE}`);
    query.limit = Number(limit);
  }
  const cursor = params.get('cursor');
  if (cursor !== null && cursor !== '') query.cursor = cursor;
  const state = params.get('state');
  if (state !== null) {
    if (!(Object.values(EntryState) as string[]).includes(state)) {
      throw new MediaCacheError(ErrorCodes.INVALID_INPUT, `state must be one of ${Object.values(EntryState).join(', ')}`);
    }
    query.state = state as EntryState;
  }
  const pinned = params.get('pinned');
  if (pinned !== null) {
    if (pinned !== 'true' && pinned !== 'false') throw new MediaCacheError(ErrorCodes.INVALID_INPUT, 'pinned must be true or false');
    query.pinned = pinned === 'true';
  }
  const q = params.get('q');
  if (q !== null && q !== '') query.q = q.slice(0, 256);
  return query;
}
