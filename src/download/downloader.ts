import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { ErrorCodes, MediaCacheError } from '../errors.js';
import { DEFAULT_UPSTREAM_POLICY, refusedUrlText, type UpstreamPolicy } from '../policy/upstream-policy.js';
import { checkedLookup, type UpstreamResolver } from './upstream-lookup.js';
import { withSpares } from './spare-agent.js';

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
   * Called after each piece (a bandwidth limit): while the promise it returns is pending the reply
   * is not read, so the socket stops and TCP backpressure holds the upstream; the idle timeout is
   * suspended meanwhile (a deliberate pause is not a stalled upstream).
   */
  pace?(bytes: number): Promise<void> | undefined;
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
  /** Which upstreams may be contacted: checked on the first URL and every redirect, after DNS. */
  policy?: UpstreamPolicy;
  /** Resolves upstream names (default `dns.lookup`): a seam for tests and split-horizon setups. */
  resolve?: UpstreamResolver;
}

const TRANSIENT_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);
const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;
const UNSATISFIED_RANGE = /^bytes \*\/(\d+)$/;
const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;
/** OpenSSL's and Node's codes for a certificate that failed verification. */
const TLS_REJECTED = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/;

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
  // node:http rather than undici: same keep-alive pooling, but its C parser costs no WASM
  // compilation; undici's import and llhttp tier-up were ~35 MB of the proxy's RSS (bench row 6).
  private readonly agents: { 'http:': http.Agent; 'https:': https.Agent };
  private readonly timeoutMs: number;
  private readonly userAgent: string;
  private readonly policy: UpstreamPolicy;

  constructor(options: DownloaderOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.userAgent = options.userAgent ?? 'mediacache';
    this.policy = options.policy ?? DEFAULT_UPSTREAM_POLICY;
    // `timeout` here closes pooled connections idle that long; requests set their own below.
    // Every new connection's name is resolved by checkedLookup, which refuses closed addresses
    // before connecting; a pooled socket keeps the address it was checked with.
    const lookup = checkedLookup(this.policy, options.resolve);
    const pool = { keepAlive: true, maxSockets: options.connectionsPerOrigin ?? 16, timeout: 30_000, lookup };
    this.agents = { 'http:': withSpares(new http.Agent(pool)), 'https:': withSpares(new https.Agent(pool)) };
  }

  /** Returns the number of body bytes received (0 when the range lies past the end of file). */
  async fetchRange(req: RangeRequest): Promise<number> {
    const headers: Record<string, string> = {
      range: `bytes=${req.start}-${req.end}`,
      'user-agent': this.userAgent,
      'accept-encoding': 'identity',
    };
    if (req.validator) headers['if-range'] = req.validator;

    const res = await this.follow(req.url, headers, req.signal);
    const statusCode = res.statusCode ?? 0;
    try {
      if (statusCode === 416) {
        const m = UNSATISFIED_RANGE.exec(header(res.headers, 'content-range') ?? '');
        if (!m) throw badReply(`416 without a usable Content-Range`);
        res.resume();
        // A 416 tells the size, but its headers describe an error page (text/html, no validators):
        // the type and validators come from a one-byte 206 of the file itself.
        req.onMetadata(await this.probe(req, Number(m[1]), headers));
        return 0;
      }
      if (statusCode === 200 && req.onWholeBody && sameVersion(res.headers, req.validator)) {
        return await this.readWholeBody(res, req);
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
      return await readBody(res, start, length, req, this.timeoutMs);
    } catch (err) {
      // A reply we stop reading must not go back to the pool: destroy its socket.
      res.destroy();
      if (err instanceof MediaCacheError) throw err;
      throw networkError(err, req.signal);
    }
  }

  /** The file's metadata from `bytes=0-0` (size `total` known from a 416); size only when that fails. */
  private async probe(req: RangeRequest, total: number, headers: Record<string, string>): Promise<UpstreamMetadata> {
    const sizeOnly = { totalSize: total, mimeType: null, etag: null, lastModified: null };
    if (total === 0) return sizeOnly;
    const res = await this.follow(req.url, { ...headers, range: 'bytes=0-0' }, req.signal);
    const m = CONTENT_RANGE.exec(header(res.headers, 'content-range') ?? '');
    if (res.statusCode !== 206 || !m || m[1] !== '0' || m[2] !== '0' || Number(m[3]) !== total) {
      res.destroy(); // never drain a whole body here
      return sizeOnly;
    }
    res.resume();
    return metadataOf(res.headers, total);
  }

  /**
   * Sends the GET, following up to MAX_REDIRECTS redirects (media behind a CDN or a signed URL) with
   * the same Range and If-Range. Every request follows them afresh: signed targets expire. Each
   * hop is judged by the upstream policy before it is sent (a redirect must not lead where an
   * added URL could not), and its name again once resolved (checkedLookup).
   */
  private async follow(url: string, headers: Record<string, string>, signal: AbortSignal): Promise<IncomingMessage> {
    for (let hops = 0; ; hops++) {
      const refusal = refusedTarget(url, this.policy);
      if (refusal) {
        throw new MediaCacheError(ErrorCodes.UPSTREAM_REFUSED, `${hops > 0 ? 'redirect to a refused upstream: ' : ''}${refusal}`);
      }
      const res = await this.send(url, headers, signal);
      const location = REDIRECT_STATUS.has(res.statusCode ?? 0) ? res.headers.location : undefined;
      if (location === undefined) return res;
      res.resume(); // a redirect's small body: drained, its connection goes back to the pool
      if (hops === MAX_REDIRECTS) throw badReply(`more than ${MAX_REDIRECTS} redirects`);
      try {
        url = new URL(location, url).href;
      } catch (err) {
        throw badReply(`redirect to an invalid Location`, false, err);
      }
    }
  }

  /**
   * Sends a GET and resolves with the reply once its headers are in. One idle timeout covers the
   * wait for headers and every gap between body pieces; it destroys the request with a network error.
   */
  private send(url: string, headers: Record<string, string>, signal: AbortSignal): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      let target: URL;
      try {
        target = new URL(url);
      } catch (err) {
        reject(new MediaCacheError(ErrorCodes.UPSTREAM_NETWORK, `invalid upstream URL`, { cause: err }));
        return;
      }
      const protocol = target.protocol;
      if (protocol !== 'http:' && protocol !== 'https:') {
        reject(new MediaCacheError(ErrorCodes.UPSTREAM_NETWORK, `unsupported upstream protocol ${protocol}`));
        return;
      }
      if (signal.aborted) {
        reject(networkError(signal.reason, signal));
        return;
      }
      const client = protocol === 'https:' ? https : http;
      // The signal is heard here rather than handed to http.get, whose stream plumbing for it
      // (addAbortSignal, end-of-stream watchers) was ~5 % of a cold request's path.
      const request = client.get(target, { headers, agent: this.agents[protocol] }, (res) => {
        // Errors reach the body's reader through iteration; unheard, a reset of a reply nobody
        // iterates (416, a rejected status) would crash the process.
        res.on('error', () => undefined);
        resolve(res);
      });
      const onAbort = (): void => void request.destroy(abortError());
      signal.addEventListener('abort', onAbort, { once: true });
      request.once('close', () => signal.removeEventListener('abort', onAbort));
      request.on('socket', guardSocket);
      request.setTimeout(this.timeoutMs, () => {
        request.destroy(Object.assign(new Error(`no upstream data for ${this.timeoutMs} ms`), { code: 'ETIMEDOUT' }));
      });
      request.on('error', (err) => reject(networkError(err, signal)));
    });
  }

  /** Streams a 200 reply's whole body to onData from byte 0; its length must be declared. */
  private async readWholeBody(res: IncomingMessage, req: RangeRequest): Promise<number> {
    const declared = header(res.headers, 'content-length');
    if (declared === undefined || !/^\d+$/.test(declared)) throw badReply('200 without a Content-Length');
    const length = Number(declared);
    req.onWholeBody?.();
    req.onMetadata(metadataOf(res.headers, length));
    return readBody(res, 0, length, req, this.timeoutMs);
  }

  close(): Promise<void> {
    this.agents['http:'].destroy();
    this.agents['https:'].destroy();
    return Promise.resolve();
  }
}

/** refusedUrl for a URL string; an unparsable one is left for send() to report. */
function refusedTarget(url: string, policy: UpstreamPolicy): string | null {
  try {
    return refusedUrlText(url, policy);
  } catch {
    return null;
  }
}

const guarded = new WeakSet<object>();

/**
 * A pooled keep-alive socket outlives its requests. An abort in the same tick as a reply's end
 * can leave it between owners with no 'error' listener, and an unheard socket error kills the
 * process: every socket gets one listener of its own, once (errors reach requests through theirs).
 */
function guardSocket(socket: NodeJS.EventEmitter): void {
  if (guarded.has(socket)) return;
  guarded.add(socket);
  socket.on('error', () => undefined);
}

/**
 * Hands the body to onData piece by piece. Async iteration reads the next piece only when asked:
 * while onData or a pace runs, the reply's buffer fills, the parser stops reading the socket
 * (readStop) and the kernel's window closes, so the upstream waits; nothing piles up here.
 */
async function readBody(res: IncomingMessage, start: number, length: number, req: RangeRequest, timeoutMs: number): Promise<number> {
  let received = 0;
  for await (const piece of res as AsyncIterable<Buffer>) {
    if (received + piece.length > length) throw badReply(`body longer than ${length} bytes`, true);
    await req.onData(start + received, piece);
    received += piece.length;
    const paused = req.pace?.(piece.length);
    if (paused) {
      res.socket?.setTimeout(0);
      await paused;
      res.socket?.setTimeout(timeoutMs);
    }
  }
  if (received !== length) throw badReply(`body ended after ${received} of ${length} bytes`, true);
  return received;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * A 200 is the same version when no validator was sent, or when it carries the validator we
 * sent (the upstream ignored Range, not If-Range's mismatch).
 */
function sameVersion(headers: IncomingHttpHeaders, validator: string | null): boolean {
  return validator === null || header(headers, 'etag') === validator || header(headers, 'last-modified') === validator;
}

function metadataOf(headers: IncomingHttpHeaders, totalSize: number): UpstreamMetadata {
  return {
    totalSize,
    mimeType: header(headers, 'content-type') ?? null,
    etag: header(headers, 'etag') ?? null,
    lastModified: header(headers, 'last-modified') ?? null,
  };
}

function abortError(): Error {
  return Object.assign(new Error('download aborted'), { name: 'AbortError' });
}

function badReply(message: string, transient = false, cause?: unknown): MediaCacheError {
  return new MediaCacheError(ErrorCodes.UPSTREAM_BAD_REPLY, `upstream reply rejected: ${message}`, { transient, cause });
}

function networkError(err: unknown, signal: AbortSignal): MediaCacheError {
  if (err instanceof MediaCacheError) return err;
  if (signal.aborted || (err as Error).name === 'AbortError') {
    return new MediaCacheError(ErrorCodes.ABORTED, 'download aborted', { cause: err });
  }
  const code = (err as { code?: string }).code ?? 'unknown';
  if (TLS_REJECTED.test(code)) {
    // Retrying cannot change a certificate verdict: fail fast and say how to trust a private CA.
    return new MediaCacheError(
      ErrorCodes.UPSTREAM_NETWORK,
      `upstream TLS certificate rejected (${code}); for a private CA start with NODE_EXTRA_CA_CERTS=ca.pem`,
      { transient: false, cause: err },
    );
  }
  return new MediaCacheError(ErrorCodes.UPSTREAM_NETWORK, `upstream unreachable or reset (${code})`, {
    transient: true,
    cause: err,
  });
}
