import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';
import { closeSync, ftruncateSync, openSync, readFileSync, readSync, readdirSync, statSync, utimesSync, writeSync } from 'node:fs';
import { Agent, request as undiciRequest } from 'undici';
import { makeData, sha256, startUpstream, type Upstream } from './helpers/upstream.js';
import { fetchBytes, getRange, startProxy, waitComplete, type Proxy } from './helpers/harness.js';
import type { VerifyReport } from '../src/cache.js';
import type { CoreSnapshot } from '../src/inspect.js';

const CHUNK = 256 * 1024;

/** Every chunk row's CRC-32 matches the bytes in the entry's sparse file. */
function assertRowsMatchFile(proxy: Proxy, id: string): number {
  const entry = proxy.cache.inspect(id).entry;
  assert.ok(entry);
  const file = readFileSync(entry.filePath);
  const rows = entry.rows;
  for (const r of rows) {
    assert.ok(r.end < file.length, `row ${r.start}-${r.end} past the file end ${file.length}`);
    assert.equal(crc32(file.subarray(r.start, r.end + 1)), r.checksum, `row ${r.start}-${r.end} checksum`);
  }
  return rows.length;
}

/** A GET whose body may be cut mid-way: the bytes received and whether it ended cleanly. */
async function tryFetch(url: string): Promise<{ status: number; body: Buffer; ok: boolean }> {
  const parts: Buffer[] = [];
  let status = 0;
  try {
    const res = await undiciRequest(url);
    status = res.statusCode;
    for await (const part of res.body as AsyncIterable<Buffer>) parts.push(part);
    return { status, body: Buffer.concat(parts), ok: true };
  } catch {
    return { status, body: Buffer.concat(parts), ok: false };
  }
}

describe('upstream errors mid-download', () => {
  let upstream: Upstream;
  before(async () => {
    upstream = await startUpstream();
  });
  after(() => upstream.close());

  test('5xx and resets mid-chunk are retried from the written offset; the reader gets exact bytes', async () => {
    const data = makeData(3 * CHUNK + 777, 31);
    upstream.setFile('/flaky.mp4', data);
    const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false, maxConcurrentDownloads: 1 });
    try {
      const { id, streamUrl } = await proxy.add(upstream.url('/flaky.mp4'));
      upstream.resetStats();
      upstream.injectFault({ kind: 'status', status: 503, path: '/flaky.mp4' });
      upstream.injectFault({ kind: 'reset', afterBytes: 100_000, path: '/flaky.mp4' });
      upstream.injectFault({ kind: 'status', status: 500, path: '/flaky.mp4' });
      upstream.injectFault({ kind: 'reset', afterBytes: 50_000, path: '/flaky.mp4' });
      const res = await fetchBytes(streamUrl);
      assert.equal(res.status, 200);
      assert.equal(sha256(res.body), sha256(data));
      // The retry after a reset asks for the rest of the chunk, not the whole chunk again.
      const ranges = upstream.requests.map((r) => r.range);
      const afterReset = upstream.requests.findIndex((r) => r.aborted) + 1;
      assert.ok(afterReset > 0, `a reset was logged: ${JSON.stringify(ranges)}`);
      const resumed = ranges
        .slice(afterReset)
        .some((r) => r !== undefined && /^bytes=(\d+)-/.exec(r)?.[1] !== '0' && Number(/^bytes=(\d+)-/.exec(r)?.[1]) % CHUNK !== 0);
      assert.ok(resumed, `a retry continued mid-chunk: ${JSON.stringify(ranges)}`);
      await upstream.waitQuiet();
      assert.equal(proxy.cache.getEntry(id)?.error, null);
      assertRowsMatchFile(proxy, id);
    } finally {
      await proxy.close();
    }
  });

  test('after the retry budget the entry is Failed with its error; a later request retries and succeeds', async () => {
    const data = makeData(2 * CHUNK, 32);
    upstream.setFile('/down.mp4', data);
    const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false, retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 20 } });
    try {
      const { id, streamUrl } = await proxy.add(upstream.url('/down.mp4'));
      upstream.resetStats();
      upstream.injectFault({ kind: 'status', status: 503, path: '/down.mp4' }, 3);
      const failed = await fetchBytes(streamUrl);
      assert.equal(failed.status, 502);
      const body = JSON.parse(failed.body.toString()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, 'MC_ERR_ENTRY_FAILED');
      assert.match(body.error.message, /503/);
      assert.equal(upstream.requests.length, 3, 'bounded: exactly the retry budget');
      const status = proxy.cache.getEntry(id);
      assert.equal(status?.state, 'Failed');
      assert.match(status?.error ?? '', /503/);
      assert.equal(proxy.cache.inspect(id).entry?.rows.length, 0, 'nothing recorded for a failed chunk');

      const retried = await fetchBytes(streamUrl);
      assert.equal(retried.status, 200);
      assert.equal(sha256(retried.body), sha256(data));
      assert.equal(proxy.cache.getEntry(id)?.error, null);
    } finally {
      await proxy.close();
    }
  });

  for (const status of [404, 403, 401]) {
    test(`upstream ${status} fails fast: one upstream request, a 502 JSON error`, async () => {
      const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false });
      try {
        upstream.setFile('/gone.mp4', makeData(CHUNK, 1));
        const { id, streamUrl } = await proxy.add(upstream.url('/gone.mp4'));
        upstream.resetStats();
        upstream.injectFault({ kind: 'status', status, path: '/gone.mp4' });
        const res = await fetchBytes(streamUrl);
        assert.equal(res.status, 502);
        assert.equal(res.headers['content-type'], 'application/json; charset=utf-8');
        assert.match(res.body.toString(), new RegExp(String(status)));
        assert.equal(upstream.requests.length, 1);
        assert.equal(proxy.cache.getEntry(id)?.state, 'Failed');
      } finally {
        await proxy.close();
      }
    });
  }
});

describe('unreachable upstream', () => {
  test('stored ranges keep playing offline; missing ranges fail with a JSON 5xx; nothing is invalidated', async () => {
    const upstream = await startUpstream();
    const data = makeData(4 * CHUNK, 33);
    upstream.setFile('/offline.mp4', data);
    const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false, retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 10 } });
    try {
      const { id, streamUrl } = await proxy.add(upstream.url('/offline.mp4'));
      const head = await getRange(streamUrl, `bytes=0-${CHUNK - 1}`);
      assert.equal(sha256(head.body), sha256(data.subarray(0, CHUNK)));
      await upstream.waitQuiet();
      const rowsBefore = proxy.cache.inspect(id).entry?.rows ?? [];
      assert.ok(rowsBefore.length > 0);
      await upstream.close();

      for (let i = 0; i < 3; i++) {
        const cached = await getRange(streamUrl, `bytes=100-${CHUNK - 1}`);
        assert.equal(cached.status, 206);
        assert.equal(sha256(cached.body), sha256(data.subarray(100, CHUNK)));
        const missing = await getRange(streamUrl, `bytes=${2 * CHUNK}-${2 * CHUNK + 10}`);
        assert.ok(missing.status === 502 || missing.status === 503, `status ${missing.status}`);
        assert.match(String(missing.headers['content-type']), /application\/json/);
        assert.ok((JSON.parse(missing.body.toString()) as { error: { code: string } }).error.code.startsWith('MC_ERR_'));
      }
      assert.deepEqual(proxy.cache.inspect(id).entry?.rows, rowsBefore, 'stored rows untouched');
      assertRowsMatchFile(proxy, id);
    } finally {
      await proxy.close();
      await upstream.close();
    }
  });
});

describe('upstream file changed', () => {
  let upstream: Upstream;
  before(async () => {
    upstream = await startUpstream({ bytesPerSecond: 4 * 1024 * 1024 });
  });
  after(() => upstream.close());

  test('If-Range answers 200: the entry is invalidated, a reader mid-body is cut, never mixed bytes; then only new bytes', async () => {
    const v1 = makeData(4 * CHUNK, 41);
    const v2 = makeData(4 * CHUNK, 42);
    upstream.setFile('/changing.mp4', v1);
    const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false, maxConcurrentDownloads: 1 });
    try {
      const { id, streamUrl } = await proxy.add(upstream.url('/changing.mp4'));
      const head = await getRange(streamUrl, `bytes=0-${CHUNK - 1}`);
      assert.equal(sha256(head.body), sha256(v1.subarray(0, CHUNK)));
      await upstream.waitQuiet();
      upstream.setFile('/changing.mp4', v2);
      upstream.resetStats();

      // Starts in stored v1 bytes, then needs bytes only the changed upstream has.
      const mixed = await tryFetch(streamUrl);
      // Its headers (200, v1's length) went out before the change was found: the body must be cut.
      assert.equal(mixed.status, 200, 'the response began on the stored v1 head');
      assert.equal(mixed.ok, false, `the old-version response was cut, not completed (${mixed.body.length} bytes)`);
      // Whatever arrived before the cut is v1 only (the stored head), never v2 bytes after it.
      assert.ok(mixed.body.length <= 2 * CHUNK, `received ${mixed.body.length}`);
      assert.equal(sha256(mixed.body), sha256(v1.subarray(0, mixed.body.length)), 'only v1 bytes in that response');
      assert.ok(
        upstream.requests.some((r) => r.ifRange !== undefined && r.status === 200),
        'If-Range was sent and answered 200',
      );

      const fresh = await fetchBytes(streamUrl);
      assert.equal(fresh.status, 200);
      assert.equal(sha256(fresh.body), sha256(v2));
      await waitComplete(proxy, id).catch(() => undefined);
      await upstream.waitQuiet();
      assertRowsMatchFile(proxy, id);
      const ranged = await getRange(streamUrl, `bytes=0-${CHUNK - 1}`);
      assert.equal(sha256(ranged.body), sha256(v2.subarray(0, CHUNK)));
    } finally {
      await proxy.close();
    }
  });

  test('a request that starts on a missing chunk after a change gets the new version', async () => {
    const v1 = makeData(3 * CHUNK + 5, 43);
    const v2 = makeData(3 * CHUNK + 999, 44);
    upstream.setFile('/swap.mp4', v1);
    const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false });
    try {
      const { streamUrl } = await proxy.add(upstream.url('/swap.mp4'));
      const head = await getRange(streamUrl, `bytes=0-99`);
      assert.equal(sha256(head.body), sha256(v1.subarray(0, 100)));
      await upstream.waitQuiet();
      upstream.setFile('/swap.mp4', v2);
      const res = await getRange(streamUrl, `bytes=${CHUNK + 10}-${CHUNK + 5000}`);
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], `bytes ${CHUNK + 10}-${CHUNK + 5000}/${v2.length}`);
      assert.equal(sha256(res.body), sha256(v2.subarray(CHUNK + 10, CHUNK + 5001)));
    } finally {
      await proxy.close();
    }
  });
});

describe('upstream that ignores Range', () => {
  test('one sequential download feeds the reader, records every chunk and is not repeated', async () => {
    const upstream = await startUpstream({ noRange: true, bytesPerSecond: 8 * 1024 * 1024 });
    const data = makeData(5 * CHUNK + 4321, 51);
    upstream.setFile('/norange.mp4', data);
    const proxy = await startProxy({ chunkSize: CHUNK });
    try {
      const { id, streamUrl } = await proxy.add(upstream.url('/norange.mp4'));
      upstream.resetStats();
      const [full, mid] = await Promise.all([fetchBytes(streamUrl), getRange(streamUrl, `bytes=${3 * CHUNK + 5}-${4 * CHUNK + 100}`)]);
      assert.equal(full.status, 200);
      assert.equal(sha256(full.body), sha256(data));
      assert.equal(mid.status, 206);
      assert.equal(sha256(mid.body), sha256(data.subarray(3 * CHUNK + 5, 4 * CHUNK + 101)));
      await waitComplete(proxy, id);
      await upstream.waitQuiet();
      const whole = upstream.requests.filter((r) => r.status === 200 && !r.aborted);
      assert.equal(whole.length, 1, `one full download: ${JSON.stringify(upstream.requests)}`);
      assert.ok(upstream.bytesSent('/norange.mp4') < 2 * data.length, 'no repeated full download');
      assert.equal(proxy.cache.getEntry(id)?.state, 'Complete');
      assert.ok(assertRowsMatchFile(proxy, id) >= 6);

      upstream.resetStats();
      const replay = await getRange(streamUrl, `bytes=${CHUNK}-`);
      assert.equal(sha256(replay.body), sha256(data.subarray(CHUNK)));
      assert.equal(upstream.requests.length, 0);
    } finally {
      await proxy.close();
      await upstream.close();
    }
  });
});

describe('cache file damaged behind our back', () => {
  test('bit flips and truncation are caught by the chunk checksums after a restart; readers get correct bytes', async () => {
    const upstream = await startUpstream();
    const data = makeData(4 * CHUNK + 1000, 61);
    upstream.setFile('/rot.mp4', data);
    let proxy = await startProxy({ chunkSize: CHUNK });
    const dataDir = proxy.dataDir;
    try {
      const { id, streamUrl } = await proxy.add(upstream.url('/rot.mp4'));
      assert.equal(sha256((await fetchBytes(streamUrl)).body), sha256(data));
      await waitComplete(proxy, id);
      const file = proxy.cache.inspect(id).entry?.filePath ?? '';
      await proxy.stop();

      // Flip one bit in chunk 1 and cut the file inside chunk 3.
      const fd = openSync(file, 'r+');
      const one = Buffer.alloc(1);
      readSync(fd, one, 0, 1, CHUNK + 12345);
      one[0] = (one[0] ?? 0) ^ 0x10;
      writeSync(fd, one, 0, 1, CHUNK + 12345);
      ftruncateSync(fd, 3 * CHUNK + 100);
      closeSync(fd);

      proxy = await startProxy({ chunkSize: CHUNK, dataDir });
      upstream.resetStats();
      const invalid: Array<{ start: number; end: number }> = [];
      proxy.cache.on('chunk-invalid', (e) => invalid.push(e));
      const res = await fetchBytes(streamUrl.replace(/^http:\/\/[^/]+/, proxy.server.url));
      assert.equal(res.status, 200);
      assert.equal(sha256(res.body), sha256(data));
      // Exactly the damaged rows were dropped: the one holding the flipped bit, those past the cut.
      const damaged = (r: { start: number; end: number }): boolean =>
        (r.start <= CHUNK + 12345 && r.end >= CHUNK + 12345) || r.end >= 3 * CHUNK + 100;
      assert.ok(invalid.length >= 2 && invalid.every(damaged), JSON.stringify(invalid));
      assert.ok(invalid.some((r) => r.start <= CHUNK + 12345 && r.end >= CHUNK + 12345));
      assert.ok(upstream.requests.length >= 2, 'damaged chunks were fetched again');
      await waitComplete(proxy, id);
      await upstream.waitQuiet();
      assertRowsMatchFile(proxy, id);
      upstream.resetStats();
      assert.equal(sha256((await fetchBytes(`${proxy.server.url}/stream/${id}`)).body), sha256(data));
      assert.equal(upstream.requests.length, 0, 'verified rows are served without upstream traffic');
    } finally {
      await proxy.close();
      await upstream.close();
    }
  });

  test('bit rot that leaves size and mtime alone is found by verify; only the damaged chunk is fetched again', async () => {
    const upstream = await startUpstream();
    const data = makeData(4 * CHUNK, 63);
    upstream.setFile('/quiet-rot.mp4', data);
    const proxy = await startProxy({ chunkSize: CHUNK });
    try {
      const { id, streamUrl } = await proxy.add(upstream.url('/quiet-rot.mp4'));
      assert.equal(sha256((await fetchBytes(streamUrl)).body), sha256(data));
      await waitComplete(proxy, id);
      await upstream.waitQuiet();
      const file = proxy.cache.inspect(id).entry?.filePath ?? '';
      const before = statSync(file);
      const fd = openSync(file, 'r+');
      writeSync(fd, Buffer.from([(data[2 * CHUNK + 77] ?? 0) ^ 0x01]), 0, 1, 2 * CHUNK + 77);
      closeSync(fd);
      utimesSync(file, before.atime, before.mtime); // silent corruption: nothing on the surface moved

      const verify = async (route: string): Promise<VerifyReport> => {
        const res = await fetchBytes(`${proxy.server.url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' } });
        assert.equal(res.status, 200, res.body.toString());
        return JSON.parse(res.body.toString()) as VerifyReport;
      };
      const found = await verify(`/api/entries/${id}/verify`);
      assert.equal(found.entries, 1);
      assert.equal(found.bytes, data.length, 'every stored byte re-read');
      assert.deepEqual(found.damaged, [{ id, start: 2 * CHUNK, end: 3 * CHUNK - 1 }]);
      assert.equal(proxy.cache.getEntry(id)?.state, 'Paused', 'no longer complete');

      upstream.resetStats();
      assert.equal(sha256((await fetchBytes(streamUrl)).body), sha256(data));
      await waitComplete(proxy, id);
      await upstream.waitQuiet();
      assert.equal(upstream.bytesSent(), CHUNK, 'only the damaged chunk came from upstream');
      const clean = await verify('/api/verify');
      assert.deepEqual([clean.bytes, clean.damaged], [data.length, []]);
    } finally {
      await proxy.close();
      await upstream.close();
    }
  });

  test('a file changed while running (size/mtime differ) is re-verified before its rows are served', async () => {
    const upstream = await startUpstream();
    const data = makeData(2 * CHUNK, 62);
    upstream.setFile('/live-rot.mp4', data);
    const proxy = await startProxy({ chunkSize: CHUNK });
    try {
      const { id, streamUrl } = await proxy.add(upstream.url('/live-rot.mp4'));
      assert.equal(sha256((await fetchBytes(streamUrl)).body), sha256(data));
      await waitComplete(proxy, id);
      await upstream.waitQuiet();
      const file = proxy.cache.inspect(id).entry?.filePath ?? '';
      const fd = openSync(file, 'r+');
      writeSync(fd, Buffer.from('garbage!'), 0, 8, 100);
      closeSync(fd);
      utimesSync(file, new Date(2001, 1, 1), new Date(2001, 1, 1)); // an outside writer moved mtime
      const res = await getRange(streamUrl, 'bytes=0-999');
      assert.equal(res.status, 206);
      assert.equal(sha256(res.body), sha256(data.subarray(0, 1000)));
    } finally {
      await proxy.close();
      await upstream.close();
    }
  });
});

describe('clients that leave', () => {
  test('1000 disconnects mid-body: waiters, demand, downloads, slots and fds return to baseline', async () => {
    const upstream = await startUpstream();
    const hot = makeData(2 * 1024 * 1024, 71);
    const cold = makeData(4 * CHUNK, 72);
    upstream.setFile('/hot.mp4', hot);
    upstream.setFile('/cold.mp4', cold);
    const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false });
    const agent = new Agent({ connections: 16 });
    try {
      const a = await proxy.add(upstream.url('/hot.mp4'));
      const b = await proxy.add(upstream.url('/cold.mp4'));
      assert.equal(sha256((await fetchBytes(a.streamUrl)).body), sha256(hot));
      await upstream.waitQuiet();
      const fds = (): number => readdirSync('/proc/self/fd').length;
      const baseline = { fds: fds() };

      /** Reads until the first body bytes, then drops the connection. */
      const leaveMidBody = async (url: string, range?: string): Promise<void> => {
        const res = await undiciRequest(url, { dispatcher: agent, headers: range ? { range } : {} });
        await new Promise<void>((resolve) => {
          res.body.once('data', () => {
            res.body.destroy();
            resolve();
          });
          res.body.once('error', () => resolve());
          res.body.once('end', () => resolve());
        });
      };
      upstream.options.bytesPerSecond = 2 * 1024 * 1024;
      for (let i = 0; i < 1000; i += 10) {
        const batch = [];
        for (let j = 0; j < 10; j++) {
          const n = i + j;
          // Mostly cached reads; every 10th starts a cold download at a random chunk.
          if (n % 10 === 9) batch.push(leaveMidBody(b.streamUrl, `bytes=${(n % 4) * CHUNK + 17}-`));
          else batch.push(leaveMidBody(a.streamUrl));
        }
        await Promise.all(batch);
      }
      upstream.options.bytesPerSecond = undefined;
      await agent.close();
      await upstream.waitQuiet();

      // Counts settle once the last sockets close: poll a bounded number of times, no timing asserts.
      // The core's own bookkeeping, not process listeners (the core never adds any).
      const core = () => proxy.cache.inspect();
      const held = (s: CoreSnapshot) => s.demand.filter((d) => d.handles > 0);
      const settled = (): boolean => {
        const s = core();
        return s.waiters === 0 && held(s).length === 0 && s.transfers.length === 0 && s.slotsUsed === 0 && fds() <= baseline.fds + 4;
      };
      for (let i = 0; i < 200 && !settled(); i++) await new Promise((r) => setTimeout(r, 25));
      const after = core();
      assert.equal(after.waiters, 0, 'no reader waits');
      assert.deepEqual(held(after), [], 'no demand handle held by a reader that left');
      assert.deepEqual(after.transfers, [], 'abandoned downloads cancelled');
      assert.equal(after.slotsUsed, 0, 'no download slot held');
      assert.ok(after.openFiles <= 16, `${after.openFiles} files held open`);
      assert.deepEqual(
        proxy.cache.inspect(b.id).entry?.queue.filter((r) => r.priority <= 1),
        [],
        'no CRITICAL/HIGH work left queued for readers that left',
      );
      assert.ok(fds() <= baseline.fds + 4, `fds ${fds()} vs baseline ${baseline.fds}`);

      // Still serving correctly afterwards.
      assert.equal(sha256((await fetchBytes(b.streamUrl)).body), sha256(cold));
    } finally {
      await agent.close().catch(() => undefined);
      await proxy.close();
      await upstream.close();
    }
  });
});

describe('many readers at once', () => {
  test('50 concurrent readers over 5 entries, 200 requests: 0 errors, every byte correct', async () => {
    const upstream = await startUpstream({ bytesPerSecond: 16 * 1024 * 1024 });
    const files = Array.from({ length: 5 }, (_, i) => makeData(3 * CHUNK + 1000 * i, 80 + i));
    files.forEach((d, i) => upstream.setFile(`/multi${i}.mp4`, d));
    const proxy = await startProxy({ chunkSize: CHUNK });
    try {
      const entries: Array<{ id: string; streamUrl: string }> = [];
      for (let i = 0; i < files.length; i++) entries.push(await proxy.add(upstream.url(`/multi${i}.mp4`)));
      let seed = 99;
      const rnd = (n: number): number => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed % n;
      };
      let next = 0;
      const errors: string[] = [];
      const worker = async (): Promise<void> => {
        while (next < 200) {
          next++;
          const k = rnd(files.length);
          const data = files[k] as Buffer;
          const url = (entries[k] as { streamUrl: string }).streamUrl;
          const start = rnd(data.length);
          const end = Math.min(data.length - 1, start + rnd(2 * CHUNK));
          const whole = rnd(4) === 0;
          try {
            const res = whole ? await fetchBytes(url) : await getRange(url, `bytes=${start}-${end}`);
            const want = whole ? data : data.subarray(start, end + 1);
            if (res.status !== (whole ? 200 : 206) || sha256(res.body) !== sha256(want)) errors.push(`${res.status} ${url}`);
          } catch (err) {
            errors.push(String(err));
          }
        }
      };
      await Promise.all(Array.from({ length: 50 }, worker));
      assert.deepEqual(errors, []);
      await upstream.waitQuiet();
      for (const e of entries) assertRowsMatchFile(proxy, e.id);
    } finally {
      await proxy.close();
      await upstream.close();
    }
  });
});
