import { Agent, errors as undiciErrors, request } from 'undici';
import { ErrorCodes, MediaCacheError } from '../errors.js';

/** What the upstream told us about the file, taken from a verified reply. */
export interface UpstreamMetadata {
  totalSize: number;
  mimeType: string | null;
  etag: string | null;
  lastModified: string | null;
}

export interface RangeRequest {
  url: string;
  /** First byte wanted. */
  start: number;
  /** Last byte wanted, inclusive; may lie past the end of the file when the size is not known yet. */
  end: number;
  /** Sent as If-Range, so a changed file answers 200 instead of mixing versions. */
  validator: string | null;
  signal: AbortSignal;
  /** Called once the reply's headers have been verified, before any body byte. */
  onMetadata(meta: UpstreamMetadata): void;
  /** Called for each body piece in order; the next piece is not read until it resolves (backpressure). */
  onData(position: number, data: Buffer): Promise<void>;
  /**
   * When set, an upstream that ignores Range (200 with the whole body, same version) is not an
   * error: this is called before onMetadata, and onData then receives the whole file from byte 0.
   */
  onWholeBody?(): void;
}

export interface DownloaderOptions {
  /** Time allowed for the reply headers and between body pieces. */
  timeoutMs?: number;
  /** Upstream connections kept per origin. */
  connectionsPerOrigin?: number;
  userAgent?: string;
}

const TRANSIENT_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);
const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;
const UNSATISFIED_RANGE = /^bytes \*\/(\d+)$/;

/** A validator usable in If-Range: a strong ETag, else a Last-Modified date (RFC 9110 §13.1.5). */
export function ifRangeValidator(etag: string | null, lastModified: string | null): string | null {
  if (etag && !etag.startsWith('W/')) return etag;
  return lastModified;
}

/**
 * Fetches one byte range with a single HTTP Range request and verifies the reply strictly: status
 * 206, a Content-Range with exactly the asked start and end (or the true end of file), and a body
 * of exactly that length. Retries are the caller's business; this reports whether an error is
 * transient. Bytes are handed to `onData` as they arrive so readers can be fed before the end.
 */
export class Downloader {
  private readonly agent: Agent;
  private readonly timeoutMs: number;
  private readonly userAgent: string;

  constructor(options: DownloaderOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.userAgent = options.userAgent ?? 'mediacache';
    this.agent = new Agent({
      connections: options.connectionsPerOrigin ?? 16,
      keepAliveTimeout: 30_000,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
    });
  }

  /** Returns the number of body bytes received (0 when the range lies past the end of file). */
  async fetchRange(req: RangeRequest): Promise<number> {
    const headers: Record<string, string> = {
      range: `bytes=${req.start}-${req.end}`,
      'user-agent': this.userAgent,
      'accept-encoding': 'identity',
    };
    if (req.validator) headers['if-range'] = req.validator;

    let res;
    try {
      res = await request(req.url, { method: 'GET', headers, dispatcher: this.agent, signal: req.signal });
    } catch (err) {
      throw networkError(err, req.signal);
    }
    const { statusCode } = res;
    try {
      if (statusCode === 416) {
        const m = UNSATISFIED_RANGE.exec(header(res.headers, 'content-range') ?? '');
        if (!m) throw badReply(`416 without a usable Content-Range`);
        req.onMetadata(metadataOf(res.headers, Number(m[1])));
        return 0;
      }
      if (statusCode === 200 && req.onWholeBody && sameVersion(res.headers, req.validator)) {
        return await this.readWholeBody(res.headers, res.body as AsyncIterable<Buffer>, req);
      }
      if (statusCode === 200) {
        throw req.validator
          ? new MediaCacheError(ErrorCodes.UPSTREAM_CHANGED, 'upstream file changed (If-Range answered 200)')
          : new MediaCacheError(ErrorCodes.UPSTREAM_NO_RANGE, 'upstream ignored the Range header (200)');
      }
      if (statusCode !== 206) {
        throw new MediaCacheError(ErrorCodes.UPSTREAM_STATUS, `upstream answered ${statusCode}`, {
          status: statusCode,
          transient: TRANSIENT_STATUS.has(statusCode),
        });
      }
      const m = CONTENT_RANGE.exec(header(res.headers, 'content-range') ?? '');
      if (!m || m[3] === '*') throw badReply('206 without a complete Content-Range');
      const [start, end, total] = [Number(m[1]), Number(m[2]), Number(m[3])];
      const expectedEnd = Math.min(req.end, total - 1);
      if (start !== req.start || end !== expectedEnd) {
        throw badReply(`asked bytes ${req.start}-${req.end}, got Content-Range ${start}-${end}/${total}`);
      }
      const length = end - start + 1;
      const declared = header(res.headers, 'content-length');
      if (declared !== undefined && Number(declared) !== length) {
        throw badReply(`Content-Length ${declared} does not match Content-Range ${start}-${end}`);
      }
      req.onMetadata(metadataOf(res.headers, total));

      let received = 0;
      for await (const piece of res.body as AsyncIterable<Buffer>) {
        if (received + piece.length > length) throw badReply(`body longer than ${length} bytes`, true);
        await req.onData(start + received, piece);
        received += piece.length;
      }
      if (received !== length) throw badReply(`body ended after ${received} of ${length} bytes`, true);
      return received;
    } catch (err) {
      // undici emits an AbortError on destroy(); unheard, it would crash the process.
      res.body.on('error', () => undefined);
      res.body.destroy();
      if (err instanceof MediaCacheError) throw err;
      throw networkError(err, req.signal);
    } finally {
      // Drain nothing: an unread body would pin the connection; destroy() above frees it on error.
      if (!res.body.destroyed && statusCode !== 206) res.body.resume();
    }
  }

  /** Streams a 200 reply's whole body to onData from byte 0; its length must be declared. */
  private async readWholeBody(
    headers: Record<string, string | string[] | undefined>,
    body: AsyncIterable<Buffer>,
    req: RangeRequest,
  ): Promise<number> {
    const declared = header(headers, 'content-length');
    if (declared === undefined || !/^\d+$/.test(declared)) throw badReply('200 without a Content-Length');
    const length = Number(declared);
    req.onWholeBody?.();
    req.onMetadata(metadataOf(headers, length));
    let received = 0;
    for await (const piece of body) {
      if (received + piece.length > length) throw badReply(`body longer than ${length} bytes`, true);
      await req.onData(received, piece);
      received += piece.length;
    }
    if (received !== length) throw badReply(`body ended after ${received} of ${length} bytes`, true);
    return received;
  }

  async close(): Promise<void> {
    await this.agent.destroy().catch(() => undefined);
  }
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * A 200 is the same version when no validator was sent, or when it carries the validator we
 * sent (the upstream ignored Range, not If-Range's mismatch).
 */
function sameVersion(headers: Record<string, string | string[] | undefined>, validator: string | null): boolean {
  return validator === null || header(headers, 'etag') === validator || header(headers, 'last-modified') === validator;
}

function metadataOf(headers: Record<string, string | string[] | undefined>, totalSize: number): UpstreamMetadata {
  return {
    totalSize,
    mimeType: header(headers, 'content-type') ?? null,
    etag: header(headers, 'etag') ?? null,
    lastModified: header(headers, 'last-modified') ?? null,
  };
}

function badReply(message: string, transient = false): MediaCacheError {
  return new MediaCacheError(ErrorCodes.UPSTREAM_BAD_REPLY, `upstream reply rejected: ${message}`, { transient });
}

function networkError(err: unknown, signal: AbortSignal): MediaCacheError {
  if (signal.aborted || err instanceof undiciErrors.RequestAbortedError) {
    return new MediaCacheError(ErrorCodes.ABORTED, 'download aborted', { cause: err });
  }
  const code = (err as { code?: string }).code ?? 'unknown';
  return new MediaCacheError(ErrorCodes.UPSTREAM_NETWORK, `upstream unreachable or reset (${code})`, {
    transient: true,
    cause: err,
  });
}
