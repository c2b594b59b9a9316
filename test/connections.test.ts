import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Downloader, type RangeRequest } from '../src/download/downloader.js';
import { ErrorCodes, isMediaCacheError } from '../src/errors.js';
import { makeData, sha256, startUpstream, type Upstream } from './helpers/upstream.js';

const MiB = 1024 * 1024;

/** Polls (bounded) until `done()`; the upstream's connection counts change without an event we could wait for. */
async function eventually(done: () => boolean, what: string): Promise<void> {
  for (let i = 0; !done(); i++) {
    assert.ok(i < 200, what);
    await sleep(10);
  }
}

function range(
  url: string,
  start: number,
  end: number,
  onData: RangeRequest['onData'],
  signal = new AbortController().signal,
): RangeRequest {
  return { url, start, end, validator: null, signal, onMetadata: () => undefined, onData };
}

test('a reply stopped mid-body leaves one spare connection to its origin, and the next request uses it', async (t) => {
  const up: Upstream = await startUpstream({ bytesPerSecond: 2 * MiB });
  t.after(() => up.close());
  const data = makeData(4 * MiB, 5);
  up.setFile('/a.mp4', data);
  up.setFile('/b.mp4', data);
  const downloader = new Downloader();
  t.after(() => downloader.close());

  // A seek or a cancel: the transfer stops after its first piece; its socket cannot go back to the pool.
  const stop = new AbortController();
  await assert.rejects(
    downloader.fetchRange(range(up.url('/a.mp4'), 0, data.length - 1, async () => stop.abort(), stop.signal)),
    (err: unknown) => isMediaCacheError(err, ErrorCodes.ABORTED),
  );
  await eventually(() => up.connections().accepted === 2 && up.connections().open === 1, 'the spare is connected');

  const pieces: Buffer[] = [];
  await downloader.fetchRange(range(up.url('/b.mp4'), 1000, 1999, async (_at, piece) => void pieces.push(Buffer.from(piece))));
  assert.equal(sha256(Buffer.concat(pieces)), sha256(data.subarray(1000, 2000)));
  assert.equal(up.connections().accepted, 2, 'the request went out on the spare: no new connection');
  assert.deepEqual(
    up.requests.map((r) => [r.path, r.range]),
    [
      ['/a.mp4', `bytes=0-${data.length - 1}`],
      ['/b.mp4', 'bytes=1000-1999'],
    ],
  );

  await downloader.close();
  await eventually(() => up.connections().open === 0, 'close() ends the pooled connection (once the spare)');
});

test('a reply read to its end keeps its connection pooled: no spare is opened', async (t) => {
  const up = await startUpstream();
  t.after(() => up.close());
  const data = makeData(100_000, 6);
  up.setFile('/c.mp4', data);
  const downloader = new Downloader();
  t.after(() => downloader.close());
  for (let i = 0; i < 3; i++) await downloader.fetchRange(range(up.url('/c.mp4'), 0, 999, async () => undefined));
  await sleep(50);
  assert.deepEqual(up.connections(), { accepted: 1, open: 1 });
});
