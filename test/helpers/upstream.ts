/**
 * A real local HTTP media server for tests and benchmarks: serves in-memory files with
 * RFC 9110 range semantics, and can be slowed down or made to fail on demand.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import rangeParser from 'range-parser';

export interface UpstreamFileOptions {
  contentType?: string;
  /** null = header not sent */
  etag?: string | null;
  /** null = header not sent */
  lastModified?: string | null;
}

export interface UpstreamOptions {
  /** Delay before response headers are sent, per request. */
  latencyMs?: number;
  /** Per-response body rate limit; unlimited when unset. */
  bytesPerSecond?: number;
  /** Ignore Range headers: always 200 with the full body. */
  noRange?: boolean;
  /** If set, HEAD requests answer this status (some media servers reject HEAD). */
  headStatus?: number;
}

export type Fault =
  | { kind: 'status'; status: number; path?: string }
  | { kind: 'reset'; afterBytes: number; path?: string }
  | { kind: 'stall'; afterBytes: number; path?: string };

export interface RequestLog {
  method: string;
  path: string;
  range?: string;
  ifRange?: string;
  status: number;
  bytesSent: number;
  aborted: boolean;
  /** performance.now() when the request's headers arrived. */
  receivedAt: number;
}

/** When `swapAt` replaces a file: after this many body bytes of its path, or after this many requests for it. */
export type SwapTrigger = { afterBytes: number } | { afterRequests: number };

export interface Upstream {
  readonly origin: string;
  url(path: string): string;
  setFile(path: string, data: Buffer, opts?: UpstreamFileOptions): void;
  /** Serves a file from disk (read per slice, never held in memory): for fixtures of gigabytes. */
  setFileFromDisk(path: string, filePath: string, opts?: UpstreamFileOptions): void;
  deleteFile(path: string): void;
  /**
   * Replaces `path` with `data` once the trigger is reached, counted from this call: `afterBytes`
   * body bytes of that path sent (the reply that reaches the count is cut into slices so the swap
   * happens exactly at that byte), or `afterRequests` requests for that path answered. Like a
   * rename: replies already under way keep sending the old bytes; requests after the swap see the
   * new file and its new ETag. Resolves once swapped.
   */
  swapAt(path: string, trigger: SwapTrigger, data: Buffer, opts?: UpstreamFileOptions): Promise<void>;
  /** Resets (TCP RST) every connection open now, idle keep-alive ones included. */
  resetConnections(): void;
  /** Answers requests for `path` with `status` and `Location: location` (relative or absolute). */
  setRedirect(path: string, location: string, status?: number): void;
  options: UpstreamOptions;
  injectFault(fault: Fault, count?: number): void;
  readonly requests: RequestLog[];
  bytesSent(path?: string): number;
  activeResponses(): number;
  /** TCP connections accepted since start (or resetStats), and open now. */
  connections(): { accepted: number; open: number };
  resetStats(): void;
  waitQuiet(quietMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** Deterministic pseudo-random bytes (xorshift32), fast enough for 100 MB fixtures. */
export function makeData(size: number, seed = 1): Buffer {
  const words = new Uint32Array(Math.ceil(size / 4));
  // Scramble the seed so that small seeds differ immediately and 0 cannot lock xorshift at 0.
  let x = (Math.imul(seed, 0x9e3779b9) ^ 0x2545f491) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x;
  }
  return Buffer.from(words.buffer, 0, size);
}

export function sha256(buf: Buffer | Uint8Array): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** Bytes a reply can be cut from: an in-memory Buffer or a file on disk. */
interface Body {
  readonly length: number;
  slice(start: number, end: number): Buffer;
}

const bufferBody = (buf: Buffer): Body => ({ length: buf.length, slice: (s, e) => buf.subarray(s, e) });

/** Positional reads of an open file; synchronous because slices are small and in page cache. */
function diskBody(fd: number): Body {
  return {
    length: fstatSync(fd).size,
    slice(start, end) {
      const buf = Buffer.allocUnsafe(Math.max(0, end - start));
      let off = 0;
      while (off < buf.length) {
        const n = readSync(fd, buf, off, buf.length - off, start + off);
        if (n === 0) break;
        off += n;
      }
      return buf.subarray(0, off);
    },
  };
}

interface StoredFile {
  data: Body;
  /** Closes the file behind a disk-backed body. */
  dispose?: () => void;
  contentType: string;
  etag: string | null;
  lastModified: string | null;
}

interface Reply {
  status: number;
  headers: OutgoingHttpHeaders;
  body: Body;
}

const EDGE_BYTES = 64 * 1024;
const SLICE_BYTES = 16 * 1024;
const UNLIMITED_SLICE_BYTES = 64 * 1024;
// Module-wide so validators never repeat within a process, even across upstream restarts.
let fileVersion = 0;

function makeFile(data: Body, opts: UpstreamFileOptions): StoredFile {
  const version = ++fileVersion;
  // Hashing only the edges keeps setFile cheap for 100 MB fixtures; the version makes replacements distinct.
  const edges = createHash('sha256')
    .update(data.slice(0, Math.min(EDGE_BYTES, data.length)))
    .update(data.slice(Math.max(0, data.length - EDGE_BYTES), data.length));
  const etag = `"${edges.digest('hex').slice(0, 16)}-${data.length.toString(16)}-${version}"`;
  // HTTP dates have 1 s resolution, so one second per version keeps Last-Modified distinct.
  const lastModified = new Date(Date.UTC(2024, 0, 1) + version * 1000).toUTCString();
  return {
    data,
    contentType: opts.contentType ?? 'video/mp4',
    etag: opts.etag === undefined ? etag : opts.etag,
    lastModified: opts.lastModified === undefined ? lastModified : opts.lastModified,
  };
}

const pathOf = (url: string): string => url.split('?', 1)[0] ?? url;

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

function textReply(status: number, text: string): Reply {
  const body = Buffer.from(text);
  return { status, headers: { 'content-type': 'text/plain', 'content-length': body.length }, body: bufferBody(body) };
}

/** If-Range holds only for an exact strong ETag or the exact Last-Modified string (RFC 9110 §13.1.5). */
function ifRangeHolds(file: StoredFile, ifRange: string): boolean {
  const strongEtag = file.etag !== null && !file.etag.startsWith('W/') ? file.etag : null;
  return ifRange === strongEtag || ifRange === file.lastModified;
}

/** Chooses the response for a known file: 200 full, 206 single range, or 416. */
function fileReply(file: StoredFile, req: IncomingMessage, options: UpstreamOptions): Reply {
  const size = file.data.length;
  const headers: OutgoingHttpHeaders = {};
  if (!options.noRange) headers['accept-ranges'] = 'bytes';
  if (file.etag !== null) headers['etag'] = file.etag;
  if (file.lastModified !== null) headers['last-modified'] = file.lastModified;
  const full: Reply = {
    status: 200,
    headers: { ...headers, 'content-type': file.contentType, 'content-length': size },
    body: file.data,
  };

  const range = header(req, 'range');
  const ifRange = header(req, 'if-range');
  // Range is defined for GET only; multi-range (multipart) answers are deliberately unsupported.
  if (req.method !== 'GET' || options.noRange || range === undefined || range.includes(',')) return full;
  if (ifRange !== undefined && !ifRangeHolds(file, ifRange)) return full;
  // A spec with last < first is invalid syntax, not unsatisfiable (RFC 9110 §14.1.1); range-parser conflates them.
  const bounds = /^bytes=(\d+)-(\d+)$/.exec(range.trim());
  if (bounds && Number(bounds[2]) < Number(bounds[1])) return full;

  const parsed = rangeParser(size, range);
  if (parsed === -2 || (parsed !== -1 && parsed.type !== 'bytes')) return full;
  const first = parsed === -1 ? undefined : parsed[0];
  if (first === undefined) {
    return {
      status: 416,
      headers: { ...headers, 'content-range': `bytes */${size}`, 'content-length': 0 },
      body: bufferBody(Buffer.alloc(0)),
    };
  }
  const { start, end } = first;
  return {
    status: 206,
    headers: {
      ...headers,
      'content-type': file.contentType,
      'content-length': end - start + 1,
      'content-range': `bytes ${start}-${end}/${size}`,
    },
    body: { length: end - start + 1, slice: (s, e) => file.data.slice(start + s, start + e) },
  };
}

export async function startUpstream(initialOptions: UpstreamOptions = {}): Promise<Upstream> {
  const files = new Map<string, StoredFile>();
  const redirects = new Map<string, { location: string; status: number }>();
  const faults: Fault[] = [];
  const requests: RequestLog[] = [];
  const sentByPath = new Map<string, number>();
  let sentTotal = 0;
  let active = 0;
  let idleSince = performance.now();
  let closing: Promise<void> | undefined;
  interface PendingSwap {
    path: string;
    /** Bytes of the path sent, or requests for it answered, since swapAt was called. */
    count: number;
    trigger: SwapTrigger;
    apply: () => void;
  }
  let swaps: PendingSwap[] = [];
  const sockets = new Set<Socket>();
  let accepted = 0;

  /** Body bytes `path` may still send before its next byte-triggered swap (Infinity: none armed). */
  function bytesUntilSwap(path: string): number {
    let left = Infinity;
    for (const s of swaps) if (s.path === path && 'afterBytes' in s.trigger) left = Math.min(left, s.trigger.afterBytes - s.count);
    return left;
  }

  /** Counts `n` bytes or one request of `path` towards armed swaps and applies those reached. */
  function advanceSwaps(path: string, kind: 'afterBytes' | 'afterRequests', n: number): void {
    const due: PendingSwap[] = [];
    for (const s of swaps) {
      if (s.path !== path || !(kind in s.trigger)) continue;
      s.count += n;
      if (s.count >= (s.trigger as Record<string, number>)[kind]!) due.push(s);
    }
    if (due.length === 0) return;
    swaps = swaps.filter((s) => !due.includes(s));
    for (const s of due) s.apply();
  }

  function countBytes(log: RequestLog, n: number): void {
    log.bytesSent += n;
    sentTotal += n;
    sentByPath.set(log.path, (sentByPath.get(log.path) ?? 0) + n);
    advanceSwaps(log.path, 'afterBytes', n);
  }

  function takeFault(path: string): Fault | undefined {
    const index = faults.findIndex((f) => f.path === undefined || f.path === path);
    return index === -1 ? undefined : faults.splice(index, 1)[0];
  }

  /**
   * Writes body[0, limit) in slices, paced against the current rate (re-read per slice so tests
   * can change it mid-response) and waiting on 'drain' so slow clients see real backpressure.
   */
  async function writeBody(res: ServerResponse, log: RequestLog, body: Body, limit: number, signal: AbortSignal) {
    let rate: number | undefined;
    let paceStart = 0;
    let paceBase = 0;
    let sent = 0;
    while (sent < limit && !signal.aborted) {
      const current = upstream.options.bytesPerSecond;
      if (current !== rate) {
        // Restart the pacing clock whenever the rate changes, so earlier bytes don't skew it.
        rate = current;
        paceStart = performance.now();
        paceBase = sent;
      }
      if (rate) {
        // Elapsed-time pacing (not a fixed sleep per slice) absorbs timer overshoot at high rates.
        const wait = paceStart + ((sent - paceBase) * 1000) / rate - performance.now();
        if (wait > 1) {
          await sleep(wait, undefined, { signal }).catch(() => {});
          continue;
        }
      }
      // Slow rates get smaller slices (~100 ms of budget) so the stream stays smooth.
      const slice = rate ? Math.max(1, Math.min(SLICE_BYTES, Math.floor(rate / 10))) : UNLIMITED_SLICE_BYTES;
      // A byte-triggered swap lands exactly on its byte: the slice stops there.
      const n = Math.min(slice, limit - sent, Math.max(1, bytesUntilSwap(log.path)));
      const flowing = res.write(body.slice(sent, sent + n));
      sent += n;
      countBytes(log, n);
      if (!flowing) await once(res, 'drain', { signal }).catch(() => {});
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const path = pathOf(req.url ?? '/');
    const log: RequestLog = { method, path, status: 0, bytesSent: 0, aborted: false, receivedAt: performance.now() };
    const range = header(req, 'range');
    const ifRange = header(req, 'if-range');
    if (range !== undefined) log.range = range;
    if (ifRange !== undefined) log.ifRange = ifRange;
    requests.push(log);
    active++;

    // 'close' fires both after a normal finish and when the client (or close()) kills the socket.
    const gone = new AbortController();
    res.once('close', () => {
      log.aborted = !res.writableFinished;
      if (--active === 0) idleSince = performance.now();
      gone.abort();
    });
    // Writes racing a client abort must never crash the process.
    res.on('error', () => {});
    req.on('error', () => {});
    req.resume();

    const fault = method === 'GET' ? takeFault(path) : undefined;
    const { latencyMs, headStatus } = upstream.options;
    if (latencyMs) await sleep(latencyMs, undefined, { signal: gone.signal }).catch(() => {});
    if (gone.signal.aborted) return;

    const file = files.get(path);
    const redirect = redirects.get(path);
    let reply: Reply;
    if (method !== 'GET' && method !== 'HEAD') {
      reply = textReply(405, 'method not allowed\n');
      reply.headers['allow'] = 'GET, HEAD';
    } else if (method === 'HEAD' && headStatus !== undefined) reply = textReply(headStatus, '');
    else if (fault?.kind === 'status') reply = textReply(fault.status, `injected fault: status ${fault.status}\n`);
    else if (redirect !== undefined) {
      reply = textReply(redirect.status, `moved to ${redirect.location}\n`);
      reply.headers['location'] = redirect.location;
    } else if (file === undefined) reply = textReply(404, 'not found\n');
    else reply = fileReply(file, req, upstream.options);

    // This request counts towards a request-triggered swap once its reply (of the old file) is chosen.
    advanceSwaps(path, 'afterRequests', 1);
    res.writeHead(reply.status, reply.headers);
    log.status = reply.status;
    if (method === 'HEAD') {
      res.end();
      return;
    }

    const cut = fault !== undefined && fault.kind !== 'status' ? fault : undefined;
    const limit = cut ? Math.min(cut.afterBytes, reply.body.length) : reply.body.length;
    await writeBody(res, log, reply.body, limit, gone.signal);
    if (gone.signal.aborted) return;
    if (cut === undefined) {
      res.end();
      return;
    }
    // Faulted responses never end; flush headers in case no body byte was written.
    res.flushHeaders();
    // destroySoon flushes what was written before closing, so the client really gets afterBytes.
    if (cut.kind === 'reset') res.socket?.destroySoon();
    // 'stall': leave the response open until the client gives up or the server closes.
  }

  const server = createServer((req, res) => void handle(req, res));
  server.on('connection', (socket) => {
    accepted++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  // Requests can only arrive once this exists, so the handlers above may refer to it.
  const upstream: Upstream = {
    origin,
    options: { ...initialOptions },
    requests,
    url: (path) => origin + path,
    setFile(path, data, opts = {}) {
      files.get(pathOf(path))?.dispose?.();
      files.set(pathOf(path), makeFile(bufferBody(data), opts));
    },
    setFileFromDisk(path, filePath, opts = {}) {
      files.get(pathOf(path))?.dispose?.();
      const fd = openSync(filePath, 'r');
      files.set(pathOf(path), { ...makeFile(diskBody(fd), opts), dispose: () => closeSync(fd) });
    },
    deleteFile(path) {
      files.get(pathOf(path))?.dispose?.();
      files.delete(pathOf(path));
    },
    swapAt(path, trigger, data, opts = {}) {
      return new Promise<void>((resolve) => {
        const p = pathOf(path);
        swaps.push({
          path: p,
          count: 0,
          trigger,
          apply: () => {
            upstream.setFile(p, data, opts);
            resolve();
          },
        });
        // A trigger of 0 means now.
        advanceSwaps(p, 'afterBytes' in trigger ? 'afterBytes' : 'afterRequests', 0);
      });
    },
    resetConnections() {
      for (const socket of sockets) socket.resetAndDestroy();
    },
    setRedirect(path, location, status = 302) {
      redirects.set(pathOf(path), { location, status });
    },
    injectFault(fault, count = 1) {
      for (let i = 0; i < count; i++) faults.push(fault);
    },
    bytesSent: (path) => (path === undefined ? sentTotal : (sentByPath.get(path) ?? 0)),
    activeResponses: () => active,
    connections: () => ({ accepted, open: sockets.size }),
    resetStats() {
      accepted = 0;
      requests.length = 0;
      sentByPath.clear();
      sentTotal = 0;
    },
    async waitQuiet(quietMs = 100) {
      // Always one turn of the loop first: a caller polling in a loop (`while (busy) await
      // waitQuiet()`) must not spin on microtasks while the work it waits for needs I/O callbacks.
      await sleep(0);
      for (;;) {
        const idleFor = active === 0 ? performance.now() - idleSince : -1;
        if (idleFor >= quietMs) return;
        await sleep(active === 0 ? quietMs - idleFor : 10);
      }
    },
    close() {
      // Idempotent, so tests may close explicitly and again in cleanup.
      closing ??= new Promise<void>((resolve) => {
        for (const file of files.values()) file.dispose?.();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
  return upstream;
}
