import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EntryStatus, MediaCache } from '../cache.js';
import { ErrorCodes, MediaCacheError } from '../errors.js';
import { readJson, sendJson, sendJsonBytes } from './respond.js';
import { parsePageQuery } from '../entry-pages.js';
import { z } from 'zod';

const BODY_LIMIT = 64 * 1024;
const PinBody = z.object({ headBytes: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional() }).strict();

export { ENTRY_ID } from '../cluster/ids.js';
import { ENTRY_ID } from '../cluster/ids.js';

export interface StreamUrls {
  of(req: IncomingMessage, id: string): string;
  /** The prefix every stream URL is `<prefix><id>` under, or null when each has its own token. */
  base(req: IncomingMessage): string | null;
}

/** The JSON API under /api: thin over MediaCache, which owns all behaviour. */
export async function handleApi(
  cache: MediaCache,
  streamUrls: StreamUrls,
  parts: string[],
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const method = req.method ?? 'GET';
  const withUrl = (e: EntryStatus): EntryStatus & { streamUrl: string } => ({ ...e, streamUrl: streamUrls.of(req, e.id) });

  if (parts.length === 1 && parts[0] === 'entries') {
    if (method === 'GET') {
      const query = parsePageQuery(new URL(req.url ?? '/', 'http://x').searchParams);
      const base = streamUrls.base(req);
      // The common page (no state filter, plain stream URLs) is written by the database: the same bytes.
      if (base !== null && query.state === undefined) return sendJsonBytes(res, 200, await cache.listPageJson(query, base));
      const page = await cache.listPage(query);
      // The summaries are this request's own: adding the URL in place spares a copy of 500 objects.
      const entries = page.entries.map((e) => Object.assign(e, { streamUrl: streamUrls.of(req, e.id) }));
      return sendJson(res, 200, { entries, next: page.next });
    }
    if (method === 'POST') {
      const body = await readJson(req, BODY_LIMIT);
      const { entry, created } = cache.addEntry(body as never);
      return sendJson(res, created ? 201 : 200, withUrl(entry));
    }
    throw methodNotAllowed(method);
  }
  if (parts[0] === 'entries' && parts.length >= 2) {
    const id = parts[1] ?? '';
    if (!ENTRY_ID.test(id)) throw new MediaCacheError(ErrorCodes.NOT_FOUND, 'no such entry');
    const action = parts.slice(2).join('/');
    if (action === '') {
      if (method === 'GET') {
        const entry = cache.getEntry(id);
        if (!entry) throw new MediaCacheError(ErrorCodes.NOT_FOUND, `no entry with id ${id}`);
        return sendJson(res, 200, withUrl(entry));
      }
      if (method === 'DELETE') {
        if (!(await cache.removeEntry(id))) throw new MediaCacheError(ErrorCodes.NOT_FOUND, `no entry with id ${id}`);
        res.writeHead(204).end();
        return;
      }
      throw methodNotAllowed(method);
    }
    if (action === 'prefetch') {
      if (method === 'POST') return sendJson(res, 202, withUrl(cache.prefetch(id)));
      // Pausing keeps every stored byte; POST again resumes.
      if (method === 'DELETE') return sendJson(res, 200, withUrl(await cache.pausePrefetch(id)));
      throw methodNotAllowed(method);
    }
    if (action === 'verify') {
      if (method !== 'POST') throw methodNotAllowed(method);
      return sendJson(res, 200, await cache.verify(id));
    }
    if (action === 'pin') {
      if (method === 'POST') {
        const body = PinBody.safeParse((await readJson(req, BODY_LIMIT, { optional: true })) ?? {});
        if (!body.success) throw new MediaCacheError(ErrorCodes.INVALID_INPUT, 'body must be {"headBytes"?: positive integer}');
        return sendJson(res, 200, withUrl(cache.pin(id, body.data.headBytes ?? null)));
      }
      if (method === 'DELETE') return sendJson(res, 200, withUrl(cache.unpin(id)));
      throw methodNotAllowed(method);
    }
  }
  if (parts.length === 1 && parts[0] === 'stats') {
    if (method !== 'GET') throw methodNotAllowed(method);
    return sendJson(res, 200, cache.statistics());
  }
  if (parts.length === 1 && parts[0] === 'verify') {
    if (method !== 'POST') throw methodNotAllowed(method);
    return sendJson(res, 200, await cache.verify());
  }
  if (parts.length === 1 && parts[0] === 'gc') {
    if (method !== 'POST') throw methodNotAllowed(method);
    return sendJson(res, 200, await cache.gc());
  }
  throw new MediaCacheError(ErrorCodes.NOT_FOUND, 'no such API route');
}

function methodNotAllowed(method: string): MediaCacheError {
  return new MediaCacheError(ErrorCodes.METHOD_NOT_ALLOWED, `method ${method} not allowed here`);
}
