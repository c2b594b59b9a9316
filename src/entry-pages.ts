import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { EntriesPageQuery, EntryCursor, ListedFacts, ListedJsonSlice } from './db/repository.js';
import { ErrorCodes, MediaCacheError } from './errors.js';
import { deriveState, EntryState } from './state/entry-state.js';

export const DEFAULT_PAGE = 500;
export const MAX_PAGE = 5_000;
/** With a state filter, at most this many entries are read per page asked for (then `next` says where to go on). */
const SCAN_FACTOR = 10;
/** Entries read per database call before the loop gets a turn (a few milliseconds each). */
const SLICE = 100;
/** Entries written as JSON per database call (~1 ms per 500 at 100,000 entries). */
const JSON_SLICE = 500;

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
  const limit = pageLimit(query);
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

function pageLimit(query: EntryPageQuery): number {
  const limit = query.limit ?? DEFAULT_PAGE;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE) {
    throw new MediaCacheError(ErrorCodes.INVALID_INPUT, `limit must be an integer from 1 to ${MAX_PAGE}`);
  }
  return limit;
}

/** What a page in JSON needs: the database's slices, and a JS rendering for rows it cannot write. */
export interface JsonPageSource {
  slice(query: EntriesPageQuery): ListedJsonSlice;
  /** Entries whose summary shows a transfer or a recent rate now (the database writes none). */
  live(): ReadonlySet<string>;
  /** A URL as listings show it (redacted): the database writes it as stored. */
  listedUrl(url: string): string;
  /** The same rows rendered in JS: their JSON objects joined by commas. */
  render(query: EntriesPageQuery): string;
}

const OPEN = Buffer.from('{"entries":[');
const COMMA = Buffer.from(',');

/**
 * entryPage() without a state filter, as the API's body `{"entries":[…],"next":…}`: the same
 * entries and cursor, byte for byte the JSON of its summaries. URLs to redact are replaced in the
 * database's text; a slice with a row it cannot write (a transfer running) is rendered in JS.
 * The body comes in parts, for the socket to gather (no copy of 300 KB into one buffer).
 */
export async function entryJsonPage(source: JsonPageSource, query: Omit<EntryPageQuery, 'state'>): Promise<Buffer[]> {
  const limit = pageLimit(query);
  let after = query.cursor === undefined ? null : decodeCursor(query.cursor);
  const parts: Buffer[] = [OPEN];
  for (let count = 0; ;) {
    const want = Math.min(JSON_SLICE, limit - count);
    const slice: EntriesPageQuery = { limit: want, after, pinned: query.pinned, q: query.q };
    const { json, rows } = source.slice(slice);
    const last = rows[rows.length - 1];
    if (last) {
      if (count > 0) parts.push(COMMA);
      const live = source.live();
      const exact = rows.every(([id, , , ok]) => ok === 1 && !live.has(id));
      const written = exact ? withListedUrls(json, rows, source.listedUrl) : null;
      parts.push(written ?? Buffer.from(source.render(slice)));
      after = { createdAt: last[2], id: last[0] };
      count += rows.length;
    }
    const next = count === limit && after ? encodeCursor(after) : rows.length < want ? null : undefined;
    if (next !== undefined) {
      parts.push(Buffer.from(`],"next":${JSON.stringify(next)}}`));
      return parts;
    }
    await yieldToLoop();
  }
}

/**
 * The slice with each URL that listings show otherwise (credentials, tokens) replaced in place:
 * a row's text starts `{"id":<id>,"url":<url>`, both quoted as JSON.stringify quotes them, and
 * `{"id":` occurs nowhere else (a quote inside a string is escaped). Null if a row is not found.
 */
function withListedUrls(json: Buffer, rows: ListedJsonSlice['rows'], listedUrl: (url: string) => string): Buffer | null {
  const out: Buffer[] = [];
  let from = 0;
  for (const [id, url] of rows) {
    const shown = listedUrl(url);
    if (shown === url) continue;
    const head = Buffer.from(`{"id":${JSON.stringify(id)},"url":`);
    const at = json.indexOf(head, from);
    if (at < 0) return null;
    out.push(json.subarray(from, at + head.length), Buffer.from(JSON.stringify(shown)));
    from = at + head.length + Buffer.byteLength(JSON.stringify(url));
  }
  return from === 0 ? json : Buffer.concat([...out, json.subarray(from)]);
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
