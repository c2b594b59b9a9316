import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCodes, MediaCacheError, httpStatusOf, isDatabaseFailure } from '../errors.js';

/** Seconds a client is told to wait after a 503. */
export const RETRY_AFTER_S = 5;

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  // Encoded once: a page of 500 entries is ~300 KB, and byteLength() then end(string) is two passes.
  sendJsonBytes(res, status, Buffer.from(JSON.stringify(body)), headers);
}

/** sendJson() for a body already encoded, whole or in parts (written in order, gathered by the socket). */
export function sendJsonBytes(
  res: ServerResponse,
  status: number,
  body: Buffer | readonly Buffer[],
  headers: Record<string, string> = {},
): void {
  const parts = Buffer.isBuffer(body) ? [body] : body;
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': parts.reduce((n, p) => n + p.length, 0),
    'cache-control': 'no-store',
    ...headers,
  });
  // Corked: the parts leave in one writev, with the headers.
  res.cork();
  for (const p of parts) res.write(p);
  res.end();
  res.uncork();
}

/** `{"error": {"code", "message"}}` with the status the code maps to; never a stack trace. */
export function sendError(res: ServerResponse, err: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const status = httpStatusOf(err);
  let error = { code: 'MC_ERR_INTERNAL', message: 'internal error' };
  if (err instanceof MediaCacheError) error = { code: err.code, message: err.message };
  else if (isDatabaseFailure(err)) error = { code: ErrorCodes.DATABASE, message: 'the cache database is busy; retry shortly' };
  // Every 503 tells the client when to come back.
  const retry: Record<string, string> = status === 503 ? { 'retry-after': String(RETRY_AFTER_S) } : {};
  sendJson(res, status, { error }, { ...retry, ...headers });
}

/**
 * Reads a JSON body of at most `limit` bytes. `optional`: an empty body (whatever its type) is
 * `undefined`, for routes whose body may be left out.
 */
export async function readJson(req: IncomingMessage, limit: number, options: { optional?: boolean } = {}): Promise<unknown> {
  const bodyless = req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined;
  if (options.optional && (bodyless || req.headers['content-length'] === '0')) return undefined;
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\b/i.test(type)) {
    throw new MediaCacheError(ErrorCodes.INVALID_INPUT, 'request body must be application/json');
  }
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw tooLarge(limit);
  const parts: Buffer[] = [];
  let size = 0;
  for await (const part of req as AsyncIterable<Buffer>) {
    size += part.length;
    if (size > limit) throw tooLarge(limit);
    parts.push(part);
  }
  if (options.optional && size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch {
    throw new MediaCacheError(ErrorCodes.INVALID_INPUT, 'request body is not valid JSON');
  }
}

function tooLarge(limit: number): MediaCacheError {
  return new MediaCacheError(ErrorCodes.BODY_TOO_LARGE, `request body larger than ${limit} bytes`);
}
