import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { MediaCache, type CacheEvents, type CacheOptions } from '../../src/cache.js';
import { startServer, type CacheServer } from '../../src/server/http-server.js';

export function tempDir(prefix = 'mediacache-test-'): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

export interface Proxy {
  cache: MediaCache;
  server: CacheServer;
  dataDir: string;
  /** Registers a URL and returns its entry id and stream URL. */
  add(
    url: string,
    extra?: { sourceId?: string; mediaId?: string; quality?: string; bitrate?: number },
  ): Promise<{ id: string; streamUrl: string }>;
  /** Closes server and cache, keeping the data dir (for restart tests). */
  stop(): Promise<void>;
  /** stop() and delete the data dir. */
  close(): Promise<void>;
}

/** A real cache on a temp data dir (or the given one) with its HTTP server on 127.0.0.1:0. */
export async function startProxy(options: CacheOptions = {}): Promise<Proxy> {
  const dataDir = options.dataDir ?? tempDir();
  // Tests were written for background fill of every opened entry; those of 'played' say so.
  const cache = await MediaCache.open({
    chunkSize: 256 * 1024,
    retry: { baseDelayMs: 20, maxDelayMs: 200 },
    backgroundFill: 'always',
    ...options,
    dataDir,
  });
  const server = await startServer(cache, { host: '127.0.0.1', port: 0 });
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await server.close();
    await cache.close();
  };
  return {
    cache,
    server,
    dataDir,
    async add(url, extra = {}) {
      const res = await fetchBytes(`${server.url}/api/entries`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ url, ...extra }),
      });
      if (res.status !== 201 && res.status !== 200) throw new Error(`add failed: ${res.status} ${res.body.toString()}`);
      const entry = JSON.parse(res.body.toString()) as { id: string; streamUrl: string };
      return { id: entry.id, streamUrl: entry.streamUrl };
    },
    stop,
    async close() {
      await stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface FetchResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One HTTP request, whole body buffered. */
export async function fetchBytes(
  url: string,
  init: { method?: 'GET' | 'HEAD' | 'POST' | 'DELETE'; headers?: Record<string, string>; body?: string } = {},
): Promise<FetchResult> {
  const res = await request(url, { method: init.method ?? 'GET', headers: init.headers, body: init.body });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body };
}

export function getRange(url: string, range: string): Promise<FetchResult> {
  return fetchBytes(url, { headers: { range } });
}

export async function getJson<T>(url: string): Promise<T> {
  const res = await fetchBytes(url);
  return JSON.parse(res.body.toString()) as T;
}

/** Waits, by the cache's events (no polling), until `done()` holds. */
export async function waitUntil(cache: MediaCache, done: () => boolean): Promise<void> {
  while (!done()) {
    await new Promise<void>((resolve) => {
      const wake = (): void => {
        cache.off('download-ended', wake);
        cache.off('chunk-stored', wake);
        cache.off('state-changed', wake);
        resolve();
      };
      cache.on('download-ended', wake);
      cache.on('chunk-stored', wake);
      cache.on('state-changed', wake);
    });
  }
}

/** Resolves with the payload of the cache's next `event`. */
export function nextEvent<E extends keyof CacheEvents>(cache: MediaCache, event: E): Promise<CacheEvents[E][0]> {
  return new Promise((resolve) => {
    const once = (...args: CacheEvents[E]): void => {
      cache.off(event, once);
      resolve(args[0]);
    };
    cache.on(event, once);
  });
}

/** Waits until an entry has all its bytes recorded. */
export function waitComplete(proxy: Proxy, id: string): Promise<void> {
  return waitUntil(proxy.cache, () => proxy.cache.inspect(id).entry?.isComplete === true);
}
