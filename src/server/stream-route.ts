import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MediaCache } from '../cache.js';
import { ErrorCodes, isMediaCacheError } from '../errors.js';
import { planRange, startHint } from './range.js';
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
 * truncated 206; a failure mid-body can only close the connection.
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
  let reader;
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
    const plan = planRange(rangeHeader, size);
    if (plan.kind === 'unsatisfiable') {
      res.writeHead(416, { 'content-range': `bytes */${size}`, 'accept-ranges': 'bytes', 'content-length': 0 });
      res.end();
      return;
    }
    const [start, end] = plan.kind === 'partial' ? [plan.start, plan.end] : [0, size - 1];
    const headers: Record<string, string | number> = {
      'accept-ranges': 'bytes',
      'content-type': entry.mimeType ?? 'application/octet-stream',
      'content-length': end - start + 1,
    };
    if (plan.kind === 'partial') headers['content-range'] = `bytes ${start}-${end}/${size}`;
    const status = plan.kind === 'partial' ? 206 : 200;
    if (req.method === 'HEAD' || end < start) {
      res.writeHead(status, headers);
      res.end();
      return;
    }
    let sent = 0;
    const send = async (buf: Buffer): Promise<void> => {
      if (!res.headersSent) {
        res.writeHead(status, headers);
        options.onFirstByte?.((performance.now() - started) / 1000, start > 0);
      }
      // The reader reuses its buffers: the next one may be asked for only once this one is sent.
      await writeOut(res, buf, controller.signal);
      sent += buf.length;
    };
    try {
      for await (const buf of reader.read(start, end)) await send(buf);
    } catch (err) {
      if (!isMediaCacheError(err, ErrorCodes.STORAGE) || controller.signal.aborted) throw err;
      // The cache cannot write (disk full): serve the rest straight from the upstream.
      await cache.passthrough(id, start + sent, end, controller.signal, send);
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
  });
}
