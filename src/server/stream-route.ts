import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MediaCache } from '../cache.js';
import type { EntryReader } from '../read/entry-reader.js';
import { ErrorCodes, MediaCacheError, isMediaCacheError } from '../errors.js';
import { evaluatePreconditions, ifRangeHolds, validatorsOf } from './conditional.js';
import { multipartLayout } from './multipart.js';
import { planRange, startHint, type ByteRange } from './range.js';
import { sendError } from './respond.js';

export interface StreamOptions {
  /** Called once per response with the seconds to its first body byte; `seek` when not from byte 0. */
  onFirstByte?: (seconds: number, seek: boolean) => void;
  /** Start over once when the upstream changed before headers were sent. Default true. */
  retryOnChange?: boolean;
}

/**
 * GET|HEAD /stream/<id>. Headers are sent only once the first body bytes are at hand, so a
 * read that fails early still gets a proper status (503 + Retry-After, 502) instead of a
 * truncated 206; a failure mid-body can only close the connection. Conditions and If-Range are
 * evaluated against the validators of the version being served, once they are known (on a cold
 * entry: after the upstream's first reply), never against a guess.
 */
export async function handleStream(
  cache: MediaCache,
  id: string,
  req: IncomingMessage,
  res: ServerResponse,
  options: StreamOptions = {},
): Promise<void> {
  const started = performance.now();
  const controller = new AbortController();
  const onClose = (): void => {
    if (!res.writableFinished) controller.abort();
  };
  res.on('close', onClose);
  let reader: EntryReader;
  let buffersIdle = false;
  try {
    reader = cache.openReader(id, controller.signal);
  } catch (err) {
    res.off('close', onClose);
    sendError(res, err);
    return;
  }
  try {
    const rangeHeader = req.headers.range;
    const entry = await reader.ensureSize(startHint(rangeHeader));
    const size = entry.expectedTotalSize ?? 0;
    const validators = validatorsOf(entry);
    const common: Record<string, string | number> = { 'accept-ranges': 'bytes', etag: validators.etag };
    if (validators.lastModified !== null) common['last-modified'] = validators.lastModified;
    const precondition = evaluatePreconditions(
      {
        ifMatch: header(req, 'if-match'),
        ifNoneMatch: header(req, 'if-none-match'),
        ifModifiedSince: header(req, 'if-modified-since'),
        ifUnmodifiedSince: header(req, 'if-unmodified-since'),
      },
      validators,
    );
    if (precondition === 'failed') {
      sendError(
        res,
        new MediaCacheError(ErrorCodes.PRECONDITION_FAILED, 'a precondition (If-Match / If-Unmodified-Since) is false'),
        stringHeaders(common),
      );
      return;
    }
    if (precondition === 'not-modified') {
      res.writeHead(304, common);
      res.end();
      return;
    }
    const plan = ifRangeHolds(header(req, 'if-range'), validators) ? planRange(rangeHeader, size) : { kind: 'full' as const };
    if (plan.kind === 'unsatisfiable') {
      res.writeHead(416, { ...common, 'content-range': `bytes */${size}`, 'content-length': 0 });
      res.end();
      return;
    }
    const type = entry.mimeType ?? 'application/octet-stream';
    const layout = plan.kind === 'multipart' ? multipartLayout(plan.ranges, size, type) : undefined;
    const [start, end] = plan.kind === 'partial' ? [plan.start, plan.end] : [0, size - 1];
    const headers: Record<string, string | number> = {
      ...common,
      'content-type': layout?.contentType ?? type,
      'content-length': layout?.length ?? end - start + 1,
    };
    if (plan.kind === 'partial') headers['content-range'] = `bytes ${start}-${end}/${size}`;
    const status = plan.kind === 'full' ? 200 : 206;
    if (req.method === 'HEAD' || (!layout && end < start)) {
      res.writeHead(status, headers);
      res.end();
      return;
    }
    let sent = 0;
    const send = async (buf: Buffer): Promise<void> => {
      if (!res.headersSent) {
        res.writeHead(status, headers);
        options.onFirstByte?.((performance.now() - started) / 1000, start > 0 || layout !== undefined);
      }
      // The reader reuses its buffers: the next one may be asked for only once this one is sent.
      await writeOut(res, buf, controller.signal);
      sent += buf.length;
    };
    if (layout) {
      // Each part's bytes are read before its head goes out, so a failure before the first byte
      // still gets a status; the heads are small and ours.
      for (const part of layout.parts) await sendPart(reader, part.range, part.head, send);
      await send(layout.tail);
    } else {
      try {
        for await (const buf of reader.read(start, end)) await send(buf);
      } catch (err) {
        if (!isMediaCacheError(err, ErrorCodes.STORAGE) || controller.signal.aborted) throw err;
        // The cache cannot write (disk full): serve the rest straight from the upstream.
        await cache.passthrough(id, start + sent, end, controller.signal, send);
      }
    }
    buffersIdle = true; // every write above has completed
    res.end();
  } catch (err) {
    if (controller.signal.aborted || isMediaCacheError(err, ErrorCodes.ABORTED)) {
      res.destroy();
    } else if (!res.headersSent && options.retryOnChange !== false && isMediaCacheError(err, ErrorCodes.UPSTREAM_CHANGED)) {
      // The upstream file changed before we answered: a new version is current, so start over
      // once on it (its size and validators are learnt afresh). This reader's demand goes first.
      res.off('close', onClose);
      reader.close(false);
      await handleStream(cache, id, req, res, { ...options, retryOnChange: false });
    } else if (res.headersSent) {
      res.destroy(); // mid-body: closing is the only honest signal left
    } else {
      sendError(res, err);
    }
  } finally {
    res.off('close', onClose);
    // After an error a socket write may still hold one of the reader's buffers: let GC have them.
    reader.close(buffersIdle);
  }
}

/** One part of a multipart body: its head, then its bytes. */
async function sendPart(reader: EntryReader, range: ByteRange, head: Buffer, send: (buf: Buffer) => Promise<void>): Promise<void> {
  let first = true;
  for await (const buf of reader.read(range.start, range.end)) {
    if (first) await send(head);
    first = false;
    await send(buf);
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

function stringHeaders(h: Record<string, string | number>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k, String(v)]));
}

/** Resolves once `buf` has been handed to the socket (its write callback), so it can be reused. */
function writeOut(res: ServerResponse, buf: Buffer, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(new Error('client went away'));
    signal.addEventListener('abort', onAbort, { once: true });
    res.write(buf, (err) => {
      signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    });
    // node:http corks the socket on a write and uncorks it on process.nextTick, which runs only
    // once the microtask queue is empty (a download's next pieces, events): each write here is
    // one whole buffer, so it goes out now rather than after whatever is queued.
    res.socket?.uncork();
  });
}
