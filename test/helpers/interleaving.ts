/** Shared pieces of the interleaving tests (issue 9): readers that pause, version maps, row checks. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { crc32 } from 'node:zlib';
import { request as undiciRequest } from 'undici';
import type { MediaCache } from '../../src/cache.js';
import { fetchBytes } from './harness.js';
import { sha256 } from './upstream.js';

export const CHUNK = 64 * 1024;

/** Every recorded row's CRC-32 matches both the bytes in the entry's current file and `data`. */
export function assertRowsAre(cache: MediaCache, id: string, data: Buffer): number {
  const entry = cache.inspect(id).entry;
  assert.ok(entry, 'entry exists');
  const file = readFileSync(entry.filePath);
  for (const r of entry.rows) {
    assert.ok(r.end < file.length, `row ${r.start}-${r.end} past the file end ${file.length}`);
    assert.equal(crc32(data.subarray(r.start, r.end + 1)), r.checksum, `row ${r.start}-${r.end} is of the current version`);
    assert.equal(crc32(file.subarray(r.start, r.end + 1)), r.checksum, `row ${r.start}-${r.end} matches its file`);
  }
  return entry.rows.length;
}

/**
 * A streamed GET the test can pause: reads up to `pauseAt` bytes (or until the body ends or is
 * cut), then resume() reads the rest.
 */
export async function pausableGet(url: string, pauseAt: number, headers: Record<string, string> = {}) {
  const res = await undiciRequest(url, { headers });
  const parts: Buffer[] = [];
  let got = 0;
  let cut = false;
  let ended = false;
  const body = res.body as unknown as AsyncIterable<Buffer>;
  const it = body[Symbol.asyncIterator]();
  try {
    while (got < pauseAt) {
      const next = await it.next();
      if (next.done) {
        ended = true;
        break;
      }
      parts.push(next.value);
      got += next.value.length;
    }
  } catch {
    cut = true;
  }
  return {
    status: res.statusCode,
    received: () => Buffer.concat(parts),
    /** Reads to the end; ok=false when the body was cut. */
    async resume(): Promise<{ body: Buffer; ok: boolean }> {
      if (cut || ended) return { body: Buffer.concat(parts), ok: !cut };
      try {
        for (;;) {
          const next = await it.next();
          if (next.done) break;
          parts.push(next.value);
        }
        return { body: Buffer.concat(parts), ok: true };
      } catch {
        return { body: Buffer.concat(parts), ok: false };
      }
    },
  };
}

/** Polls `cond` every 5 ms for up to `ms` (for state no event announces, like a transfer's first bytes). */
export async function until(cond: () => boolean, ms = 3000): Promise<void> {
  for (const start = performance.now(); !cond(); await sleep(5)) {
    if (performance.now() - start > ms) throw new Error(`condition not met within ${ms} ms: ${cond.toString()}`);
  }
}

/** Fetches the whole body, retrying a response that was cut or refused (an invalidation under way). */
export async function fetchWhole(url: string, attempts = 5): Promise<Buffer> {
  let last = '';
  for (let i = 0; i < attempts; i++) {
    try {
      const res = await fetchBytes(url);
      if (res.status === 200) return res.body;
      last = `${res.status} ${res.body.toString().slice(0, 200)}`;
    } catch (err) {
      last = String(err);
    }
    await sleep(50);
  }
  throw new Error(`no complete 200 after ${attempts} attempts: ${last}`);
}

/** Which version each chunk of `body` matches: '1', '2', or '?' (neither), e.g. "2221111". */
export function versionMap(body: Buffer, v1: Buffer, v2: Buffer): string {
  let map = '';
  for (let pos = 0; pos < body.length; pos += CHUNK) {
    const part = body.subarray(pos, pos + CHUNK);
    const end = pos + part.length;
    map += part.equals(v2.subarray(pos, end)) ? '2' : part.equals(v1.subarray(pos, end)) ? '1' : '?';
  }
  return map;
}

/** Asserts one response holds only bytes of `data`: a prefix when cut, all of it when complete. */
export function assertOneVersion(got: { body: Buffer; ok: boolean }, data: Buffer, what: string): void {
  assert.equal(sha256(got.body), sha256(data.subarray(0, got.body.length)), `${what}: only bytes of the version it began with`);
  if (got.ok) assert.equal(got.body.length, data.length, `${what}: a response that ended cleanly is complete`);
}
