import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { makeData, sha256, startUpstream, type Upstream } from './helpers/upstream.js';
import { fetchBytes, getJson, getRange, startProxy, waitComplete, type Proxy } from './helpers/harness.js';

const CHUNK = 256 * 1024;

describe('streaming through the proxy', () => {
  let upstream: Upstream;
  let proxy: Proxy;
  const data = makeData(3 * CHUNK + 12345, 7);

  before(async () => {
    upstream = await startUpstream();
    upstream.setFile('/movie.mp4', data, { contentType: 'video/mp4' });
    proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false });
  });
  after(async () => {
    await proxy.close();
    await upstream.close();
  });

  test('a full read is byte-exact, with the upstream content type and exact length', async () => {
    const { streamUrl } = await proxy.add(upstream.url('/movie.mp4'));
    const res = await fetchBytes(streamUrl);
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'video/mp4');
    assert.equal(res.headers['content-length'], String(data.length));
    assert.equal(res.headers['accept-ranges'], 'bytes');
    assert.equal(res.headers['transfer-encoding'], undefined);
    assert.equal(sha256(res.body), sha256(data));
  });

  test('random ranges are byte-exact 206 replies', async () => {
    const { streamUrl } = await proxy.add(upstream.url('/movie.mp4'));
    let seed = 42;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 25; i++) {
      const a = rnd(data.length);
      const b = Math.min(data.length - 1, a + rnd(2 * CHUNK));
      const res = await getRange(streamUrl, `bytes=${a}-${b}`);
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], `bytes ${a}-${b}/${data.length}`);
      assert.equal(res.headers['content-length'], String(b - a + 1));
      assert.equal(sha256(res.body), sha256(data.subarray(a, b + 1)), `range ${a}-${b}`);
    }
  });

  test('bytes=0- is a 206 with the true total, as players need to seek', async () => {
    const { streamUrl } = await proxy.add(upstream.url('/movie.mp4'));
    const res = await getRange(streamUrl, 'bytes=0-');
    assert.equal(res.status, 206);
    assert.equal(res.headers['content-range'], `bytes 0-${data.length - 1}/${data.length}`);
    assert.equal(sha256(res.body), sha256(data));
  });

  test('a Safari-style bytes=0-1 probe gets exactly two bytes', async () => {
    const { streamUrl } = await proxy.add(upstream.url('/movie.mp4'));
    const res = await getRange(streamUrl, 'bytes=0-1');
    assert.equal(res.status, 206);
    assert.equal(res.headers['content-range'], `bytes 0-1/${data.length}`);
    assert.deepEqual(res.body, data.subarray(0, 2));
  });

  test('suffix ranges return the last N bytes', async () => {
    const { streamUrl } = await proxy.add(upstream.url('/movie.mp4'));
    const res = await getRange(streamUrl, 'bytes=-1000');
    assert.equal(res.status, 206);
    assert.equal(res.headers['content-range'], `bytes ${data.length - 1000}-${data.length - 1}/${data.length}`);
    assert.equal(sha256(res.body), sha256(data.subarray(data.length - 1000)));
    const whole = await getRange(streamUrl, `bytes=-${data.length * 2}`);
    assert.equal(whole.status, 206);
    assert.equal(sha256(whole.body), sha256(data));
  });

  test('unsatisfiable ranges get 416 with bytes */SIZE', async () => {
    const { streamUrl } = await proxy.add(upstream.url('/movie.mp4'));
    for (const range of [`bytes=${data.length}-`, `bytes=${data.length + 10}-${data.length + 20}`, 'bytes=-0']) {
      const res = await getRange(streamUrl, range);
      assert.equal(res.status, 416, range);
      assert.equal(res.headers['content-range'], `bytes */${data.length}`);
      assert.equal(res.body.length, 0);
    }
  });

  test('malformed, reversed and other-unit ranges get the full body; several ranges a multipart 206', async () => {
    const { streamUrl } = await proxy.add(upstream.url('/movie.mp4'));
    for (const range of ['bytes=garbage', 'bytes=500-100', 'items=0-5', 'bytes=0-1,x']) {
      const res = await getRange(streamUrl, range);
      assert.equal(res.status, 200, range);
      assert.equal(sha256(res.body), sha256(data), range);
    }
    for (const range of ['BYTES=0-9', 'bytes=0-9,', 'bytes=,0-9']) {
      const res = await getRange(streamUrl, range);
      assert.equal(res.status, 206, range);
      assert.equal(res.headers['content-range'], `bytes 0-9/${data.length}`, range);
    }
    const multi = await getRange(streamUrl, 'bytes=0-1,100-200');
    assert.equal(multi.status, 206);
    const type = String(multi.headers['content-type']);
    const boundary = /^multipart\/byteranges; boundary=(\S+)$/.exec(type)?.[1];
    assert.ok(boundary, type);
    const expected = Buffer.concat([
      Buffer.from(`\r\n--${boundary}\r\nContent-Type: video/mp4\r\nContent-Range: bytes 0-1/${data.length}\r\n\r\n`),
      data.subarray(0, 2),
      Buffer.from(`\r\n--${boundary}\r\nContent-Type: video/mp4\r\nContent-Range: bytes 100-200/${data.length}\r\n\r\n`),
      data.subarray(100, 201),
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    assert.equal(multi.headers['content-length'], String(expected.length));
    assert.equal(sha256(multi.body), sha256(expected));
  });

  test('HEAD gives the headers of GET without a body', async () => {
    const { streamUrl } = await proxy.add(upstream.url('/movie.mp4'));
    const head = await fetchBytes(streamUrl, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(data.length));
    assert.equal(head.body.length, 0);
    const ranged = await fetchBytes(streamUrl, { method: 'HEAD', headers: { range: 'bytes=10-19' } });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers['content-range'], `bytes 10-19/${data.length}`);
    assert.equal(ranged.headers['content-length'], '10');
  });

  test('a zero-length upstream file is served as an empty 200', async () => {
    upstream.setFile('/empty.mp4', Buffer.alloc(0));
    const { id, streamUrl } = await proxy.add(upstream.url('/empty.mp4'));
    const res = await fetchBytes(streamUrl);
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-length'], '0');
    assert.equal(res.body.length, 0);
    const status = await getJson<{ state: string; totalBytes: number }>(`${proxy.server.url}/api/entries/${id}`);
    assert.deepEqual([status.state, status.totalBytes], ['Complete', 0]);
  });

  test('unknown stream ids are 404 JSON errors', async () => {
    const res = await fetchBytes(`${proxy.server.url}/stream/AAAAAAAAAAAAAAAAAAAAAA`);
    assert.equal(res.status, 404);
    assert.equal(JSON.parse(res.body.toString()).error.code, 'MC_ERR_NOT_FOUND');
  });
});

describe('upstream traffic', () => {
  let upstream: Upstream;
  before(async () => {
    upstream = await startUpstream();
  });
  after(() => upstream.close());

  test('a full play fetches the file once; a replay fetches nothing', async () => {
    const data = makeData(2 * 1024 * 1024 + 999, 11);
    upstream.setFile('/play.mkv', data, { contentType: 'video/x-matroska' });
    const proxy = await startProxy({ chunkSize: CHUNK });
    try {
      const { id, streamUrl } = await proxy.add(upstream.url('/play.mkv'));
      upstream.resetStats();
      const first = await fetchBytes(streamUrl);
      assert.equal(sha256(first.body), sha256(data));
      await waitComplete(proxy, id);
      await upstream.waitQuiet();
      const fetched = upstream.bytesSent('/play.mkv');
      assert.ok(fetched <= data.length * 1.01, `fetched ${fetched} for ${data.length}`);
      upstream.resetStats();
      const replay = await fetchBytes(streamUrl);
      assert.equal(sha256(replay.body), sha256(data));
      assert.equal(upstream.bytesSent(), 0);
      assert.equal(upstream.requests.length, 0);
    } finally {
      await proxy.close();
    }
  });

  test('concurrent readers of one entry fetch each chunk once', async () => {
    const data = makeData(8 * CHUNK, 12);
    upstream.setFile('/shared.mp4', data);
    upstream.options.bytesPerSecond = 8 * 1024 * 1024;
    const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false });
    try {
      const { streamUrl } = await proxy.add(upstream.url('/shared.mp4'));
      upstream.resetStats();
      const bodies = await Promise.all(Array.from({ length: 6 }, () => fetchBytes(streamUrl)));
      for (const b of bodies) assert.equal(sha256(b.body), sha256(data));
      await upstream.waitQuiet();
      const starts = upstream.requests.map((r) => r.range);
      assert.equal(new Set(starts).size, starts.length, `duplicate requests: ${starts.join(' ')}`);
      assert.ok(upstream.bytesSent() <= data.length, `fetched ${upstream.bytesSent()}`);
    } finally {
      upstream.options.bytesPerSecond = undefined;
      await proxy.close();
    }
  });

  test('after a restart on the same data dir, stored ranges cost zero upstream bytes', async () => {
    const data = makeData(3 * CHUNK, 13);
    upstream.setFile('/restart.mp4', data);
    const first = await startProxy({ chunkSize: CHUNK });
    const { id } = await first.add(upstream.url('/restart.mp4'));
    assert.equal(sha256((await fetchBytes(`${first.server.url}/stream/${id}`)).body), sha256(data));
    await waitComplete(first, id);
    await first.stop();

    upstream.resetStats();
    const second = await startProxy({ dataDir: first.dataDir, chunkSize: CHUNK });
    try {
      const status = await getJson<{ state: string }>(`${second.server.url}/api/entries/${id}`);
      assert.equal(status.state, 'Complete');
      const again = await fetchBytes(`${second.server.url}/stream/${id}`);
      assert.equal(sha256(again.body), sha256(data));
      const part = await getRange(`${second.server.url}/stream/${id}`, 'bytes=1000-300000');
      assert.equal(sha256(part.body), sha256(data.subarray(1000, 300001)));
      assert.equal(upstream.bytesSent(), 0);
      assert.equal(upstream.requests.length, 0);
    } finally {
      await second.close();
    }
  });

  test('a seek into a cold 100 MB file gets its first bytes before the chunk is complete', async () => {
    const size = 100 * 1024 * 1024;
    const data = makeData(size, 14);
    upstream.setFile('/big.mp4', data);
    upstream.options.bytesPerSecond = 10 * 1024 * 1024; // a 10 MiB chunk takes about a second
    const proxy = await startProxy({ chunkSize: 10 * 1024 * 1024, backgroundFill: false });
    try {
      const { id, streamUrl } = await proxy.add(upstream.url('/big.mp4'));
      const at = 55 * 1024 * 1024 + 4321;
      const res = await request(streamUrl, { headers: { range: `bytes=${at}-` } });
      assert.equal(res.statusCode, 206);
      const firstBytes: Buffer[] = [];
      let got = 0;
      for await (const piece of res.body as AsyncIterable<Buffer>) {
        firstBytes.push(piece);
        got += piece.length;
        if (got >= 64 * 1024) break;
      }
      // The chunk holding the seek target is still downloading: no row covers its end yet.
      const chunkEnd = 60 * 1024 * 1024 - 1;
      const snap = proxy.cache.inspect(id);
      assert.ok(!snap.entry?.rows.some((r) => r.start <= chunkEnd && chunkEnd <= r.end), 'no row covers the chunk end yet');
      assert.ok(snap.transfers.some((t) => t.entryId === id));
      const head = Buffer.concat(firstBytes).subarray(0, 64 * 1024);
      assert.equal(sha256(head), sha256(data.subarray(at, at + 64 * 1024)));
      res.body.destroy();
    } finally {
      upstream.options.bytesPerSecond = undefined;
      await proxy.close();
    }
  });
});
