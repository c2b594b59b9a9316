import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { makeData, sha256, startUpstream, type Upstream } from './helpers/upstream.js';

const MiB = 1024 * 1024;

interface Fetched {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** Set when the body stream failed after headers arrived (reset, stall timeout). */
  error?: Error & { code?: string };
}

async function fetchBody(
  url: string,
  init: { method?: 'GET' | 'HEAD'; headers?: Record<string, string>; bodyTimeout?: number } = {},
): Promise<Fetched> {
  const res = await request(url, { method: init.method ?? 'GET', headers: init.headers, bodyTimeout: init.bodyTimeout });
  const chunks: Buffer[] = [];
  let error: Fetched['error'];
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) chunks.push(chunk);
  } catch (err) {
    error = err as Fetched['error'];
  }
  return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), ...(error && { error }) };
}

async function serve(t: TestContext, files: Record<string, Buffer> = {}): Promise<Upstream> {
  const up = await startUpstream();
  t.after(() => up.close());
  for (const [path, data] of Object.entries(files)) up.setFile(path, data);
  return up;
}

test('makeData is deterministic, seed-dependent and exact in length', () => {
  assert.equal(sha256(makeData(1001, 7)), sha256(makeData(1001, 7)));
  assert.notEqual(sha256(makeData(1001, 7)), sha256(makeData(1001, 8)));
  assert.equal(makeData(1001).length, 1001);
  assert.equal(makeData(0).length, 0);
  // A prefix of a longer stream is the shorter stream: handy for comparing partial bodies.
  assert.equal(sha256(makeData(4096, 3).subarray(0, 1001)), sha256(makeData(1001, 3)));
});

test('full GET returns the whole file with metadata headers', async (t) => {
  const data = makeData(MiB + 3);
  const up = await serve(t, { '/a.mp4': data });
  const res = await fetchBody(up.url('/a.mp4?token=ignored'));
  assert.equal(res.status, 200);
  assert.equal(sha256(res.body), sha256(data));
  assert.equal(res.headers['content-length'], String(data.length));
  assert.equal(res.headers['content-type'], 'video/mp4');
  assert.equal(res.headers['accept-ranges'], 'bytes');
  assert.match(String(res.headers['etag']), /^"[^"]+"$/);
  assert.ok(res.headers['last-modified']);
});

test('unknown and deleted paths are 404', async (t) => {
  const up = await serve(t, { '/a': makeData(10) });
  assert.equal((await fetchBody(up.url('/missing'))).status, 404);
  up.deleteFile('/a');
  assert.equal((await fetchBody(up.url('/a'))).status, 404);
});

test('single ranges: 206, suffix, open-ended, and clamped end', async (t) => {
  const data = makeData(100_000);
  const up = await serve(t, { '/a': data });
  const cases: Array<[range: string, start: number, end: number]> = [
    ['bytes=1000-1999', 1000, 1999],
    ['bytes=-100', 99_900, 99_999],
    ['bytes=99000-', 99_000, 99_999],
    ['bytes=99990-5000000', 99_990, 99_999],
  ];
  for (const [range, start, end] of cases) {
    const res = await fetchBody(up.url('/a'), { headers: { range } });
    assert.equal(res.status, 206, range);
    assert.equal(res.headers['content-range'], `bytes ${start}-${end}/100000`, range);
    assert.equal(sha256(res.body), sha256(data.subarray(start, end + 1)), range);
  }
});

test('unsatisfiable range is 416; malformed and multi-range fall back to 200', async (t) => {
  const data = makeData(1000);
  const up = await serve(t, { '/a': data, '/empty': Buffer.alloc(0) });

  const unsatisfiable = await fetchBody(up.url('/a'), { headers: { range: 'bytes=1000-' } });
  assert.equal(unsatisfiable.status, 416);
  assert.equal(unsatisfiable.headers['content-range'], 'bytes */1000');

  for (const range of ['bytes=abc', 'bytes=10-5', 'items=0-5', 'bytes=0-1,5-6']) {
    const res = await fetchBody(up.url('/a'), { headers: { range } });
    assert.equal(res.status, 200, range);
    assert.equal(sha256(res.body), sha256(data), range);
  }

  const empty = await fetchBody(up.url('/empty'));
  assert.equal(empty.status, 200);
  assert.equal(empty.headers['content-length'], '0');
  const emptyRange = await fetchBody(up.url('/empty'), { headers: { range: 'bytes=0-' } });
  assert.equal(emptyRange.status, 416);
  assert.equal(emptyRange.headers['content-range'], 'bytes */0');
});

test('setFile bumps validators and If-Range only honours the current ones', async (t) => {
  const up = await serve(t);
  const data = makeData(5000);
  up.setFile('/a', data);
  const v1 = await fetchBody(up.url('/a'), { method: 'HEAD' });
  up.setFile('/a', data);
  const v2 = await fetchBody(up.url('/a'), { method: 'HEAD' });
  const etag1 = String(v1.headers['etag']);
  const etag2 = String(v2.headers['etag']);
  assert.notEqual(etag1, etag2);
  assert.notEqual(v1.headers['last-modified'], v2.headers['last-modified']);

  const range = 'bytes=10-19';
  const stale = await fetchBody(up.url('/a'), { headers: { range, 'if-range': etag1 } });
  assert.equal(stale.status, 200);
  assert.equal(sha256(stale.body), sha256(data));
  const current = await fetchBody(up.url('/a'), { headers: { range, 'if-range': etag2 } });
  assert.equal(current.status, 206);
  assert.equal(sha256(current.body), sha256(data.subarray(10, 20)));
  const byDate = await fetchBody(up.url('/a'), { headers: { range, 'if-range': String(v2.headers['last-modified']) } });
  assert.equal(byDate.status, 206);

  up.setFile('/b', data, { etag: null, lastModified: null, contentType: 'audio/mpeg' });
  const bare = await fetchBody(up.url('/b'), { method: 'HEAD' });
  assert.equal(bare.headers['etag'], undefined);
  assert.equal(bare.headers['last-modified'], undefined);
  assert.equal(bare.headers['content-type'], 'audio/mpeg');
});

test('noRange ignores Range and omits Accept-Ranges', async (t) => {
  const data = makeData(3000);
  const up = await serve(t, { '/a': data });
  up.options.noRange = true;
  const res = await fetchBody(up.url('/a'), { headers: { range: 'bytes=0-9' } });
  assert.equal(res.status, 200);
  assert.equal(res.headers['accept-ranges'], undefined);
  assert.equal(sha256(res.body), sha256(data));
});

test('HEAD answers headStatus when set, and never sends a body', async (t) => {
  const up = await serve(t, { '/a': makeData(2000) });
  const ok = await fetchBody(up.url('/a'), { method: 'HEAD' });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers['content-length'], '2000');
  assert.equal(ok.body.length, 0);

  up.options.headStatus = 500;
  assert.equal((await fetchBody(up.url('/a'), { method: 'HEAD' })).status, 500);
  assert.equal((await fetchBody(up.url('/a'))).status, 200);
  assert.equal(up.bytesSent(), 2000);
});

test('status faults hit the next matching GETs in FIFO order', async (t) => {
  const up = await serve(t, { '/a': makeData(100), '/b': makeData(100) });
  up.injectFault({ kind: 'status', status: 503, path: '/b' });
  up.injectFault({ kind: 'status', status: 500 }, 2);
  const statuses: number[] = [];
  for (const path of ['/a', '/b', '/b', '/a']) statuses.push((await fetchBody(up.url(path))).status);
  // '/a' skips the '/b'-only fault; '/b' takes its own fault first.
  assert.deepEqual(statuses, [500, 503, 500, 200]);
});

test('reset fault sends afterBytes then drops the connection', async (t) => {
  const data = makeData(MiB);
  const up = await serve(t, { '/a': data });
  up.injectFault({ kind: 'reset', afterBytes: 100_000 });
  const res = await fetchBody(up.url('/a'), { headers: { range: 'bytes=1000-' } });
  assert.equal(res.status, 206);
  assert.ok(res.error, 'body should fail');
  assert.equal(sha256(res.body), sha256(data.subarray(1000, 101_000)));
  await up.waitQuiet(20);
  assert.equal(up.bytesSent('/a'), 100_000);
  assert.deepEqual(
    up.requests.map((r) => [r.status, r.bytesSent, r.aborted]),
    [[206, 100_000, true]],
  );
  // The next request is healthy again.
  assert.equal(sha256((await fetchBody(up.url('/a'))).body), sha256(data));
});

test('stall fault sends afterBytes then goes silent until the client leaves', async (t) => {
  const data = makeData(MiB);
  const up = await serve(t, { '/a': data });
  up.injectFault({ kind: 'stall', afterBytes: 50_000 });
  const res = await fetchBody(up.url('/a'), { bodyTimeout: 150 });
  assert.equal(res.status, 200);
  assert.equal(res.error?.code, 'UND_ERR_BODY_TIMEOUT');
  assert.equal(sha256(res.body), sha256(data.subarray(0, 50_000)));
  await up.waitQuiet(20);
  assert.equal(up.activeResponses(), 0);
  assert.deepEqual(
    up.requests.map((r) => [r.bytesSent, r.aborted]),
    [[50_000, true]],
  );
});

test('bytesPerSecond paces the body and can be lifted mid-response', async (t) => {
  const data = makeData(MiB);
  const up = await serve(t, { '/a': data });
  const rate = 64 * 1024;
  const slice = rate / 10;
  up.options.bytesPerSecond = rate;

  const started = performance.now();
  const res = await request(up.url('/a'));
  const chunks: Buffer[] = [];
  let received = 0;
  let sentWhileLimited: number | undefined;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    received += chunk.length;
    if (sentWhileLimited === undefined && received >= 3 * slice) {
      // Upper bound only: a slow machine can send less, never more than rate * elapsed + one slice.
      const elapsedSec = (performance.now() - started) / 1000;
      sentWhileLimited = up.bytesSent('/a');
      assert.ok(sentWhileLimited <= rate * elapsedSec + slice, `${sentWhileLimited} B in ${elapsedSec} s`);
      up.options.bytesPerSecond = undefined;
    }
  }
  assert.ok(sentWhileLimited !== undefined && sentWhileLimited < data.length, 'limited part came first');
  assert.equal(sha256(Buffer.concat(chunks)), sha256(data));
  assert.equal(up.bytesSent('/a'), data.length);
});

test('bytesSent counts body bytes per path; resetStats clears the log', async (t) => {
  const a = makeData(10_000, 1);
  const b = makeData(20_000, 2);
  const up = await serve(t, { '/a': a, '/b': b });
  await fetchBody(up.url('/a'));
  await fetchBody(up.url('/a'), { headers: { range: 'bytes=0-99' } });
  await fetchBody(up.url('/b'), { method: 'HEAD' });
  await fetchBody(up.url('/b'));
  await up.waitQuiet(10);
  assert.equal(up.bytesSent('/a'), 10_100);
  assert.equal(up.bytesSent('/b'), 20_000);
  assert.equal(up.bytesSent(), 30_100);
  assert.deepEqual(
    up.requests.map((r) => [r.method, r.path, r.range, r.status, r.bytesSent, r.aborted]),
    [
      ['GET', '/a', undefined, 200, 10_000, false],
      ['GET', '/a', 'bytes=0-99', 206, 100, false],
      ['HEAD', '/b', undefined, 200, 0, false],
      ['GET', '/b', undefined, 200, 20_000, false],
    ],
  );
  up.resetStats();
  assert.equal(up.bytesSent(), 0);
  assert.equal(up.requests.length, 0);
});

test('latencyMs delays headers; close() ends in-flight responses', async (t) => {
  const up = await serve(t, { '/a': makeData(MiB) });
  up.options.latencyMs = 30;
  const res = await fetchBody(up.url('/a'));
  assert.equal(res.status, 200);
  up.options.latencyMs = 0;
  up.injectFault({ kind: 'stall', afterBytes: 10 });
  const stalled = await request(up.url('/a'));
  assert.equal(up.activeResponses(), 1);
  const drained = (async () => {
    for await (const _ of stalled.body);
  })();
  await up.close();
  await assert.rejects(drained);
});
