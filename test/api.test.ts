import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { makeData, sha256, startUpstream, type Upstream } from './helpers/upstream.js';
import { fetchBytes, getJson, startProxy, waitComplete, type Proxy } from './helpers/harness.js';

let upstream: Upstream;
let proxy: Proxy;
const data = makeData(600_000, 21);

before(async () => {
  upstream = await startUpstream();
  upstream.setFile('/item/1.mkv', data, { contentType: 'video/x-matroska' });
  proxy = await startProxy({ chunkSize: 128 * 1024, backgroundFill: false });
});
after(async () => {
  await proxy.close();
  await upstream.close();
});

const post = (body: unknown) =>
  fetchBytes(`${proxy.server.url}/api/entries`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

interface EntryJson {
  id: string;
  url: string;
  streamUrl: string;
  state: string;
  totalBytes: number | null;
  downloadedBytes: number;
  chunks: Array<[number, number]>;
  pendingChunks: number;
  error: string | null;
}

test('POST creates an entry (201) with an unguessable id; the same URL returns it (200)', async () => {
  const url = upstream.url('/item/1.mkv');
  const created = await post({ url });
  assert.equal(created.status, 201);
  const entry = JSON.parse(created.body.toString()) as EntryJson;
  assert.match(entry.id, /^[A-Za-z0-9_-]{22}$/); // 16 random bytes = 128 bits
  assert.equal(entry.streamUrl, `${proxy.server.url}/stream/${entry.id}`);
  assert.equal(entry.state, 'NotStarted');
  const again = await post({ url });
  assert.equal(again.status, 200);
  assert.equal((JSON.parse(again.body.toString()) as EntryJson).id, entry.id);
});

test('an entry keyed by source, media and quality keeps its bytes when the URL token rotates', async () => {
  const key = { sourceId: 'plex-1', mediaId: '4242', quality: 'original' };
  const first = JSON.parse((await post({ url: `${upstream.url('/item/1.mkv')}?X-Plex-Token=old`, ...key })).body.toString()) as EntryJson;
  assert.equal(sha256((await fetchBytes(first.streamUrl)).body), sha256(data));
  await waitComplete(proxy, first.id); // the last chunk's row lands just after its bytes were served
  const rotated = await post({ url: `${upstream.url('/item/1.mkv')}?X-Plex-Token=new`, ...key });
  assert.equal(rotated.status, 200);
  const entry = JSON.parse(rotated.body.toString()) as EntryJson;
  assert.equal(entry.id, first.id);
  assert.equal(entry.downloadedBytes, data.length, 'stored bytes survive the new URL');
  assert.ok(!entry.url.includes('new') && entry.url.includes('X-Plex-Token=REDACTED'), entry.url);
  upstream.resetStats();
  assert.equal(sha256((await fetchBytes(entry.streamUrl)).body), sha256(data));
  assert.equal(upstream.bytesSent(), 0);
  const other = await post({ url: upstream.url('/item/1.mkv'), ...key, quality: '720p' });
  assert.equal(other.status, 201, 'another quality is another entry');
});

test('GET /api/entries/<id> reports size, stored ranges and state from the database', async () => {
  const { id, streamUrl } = JSON.parse((await post({ url: `${upstream.url('/item/1.mkv')}?part` })).body.toString()) as EntryJson;
  await fetchBytes(streamUrl, { headers: { range: 'bytes=0-99' } });
  await upstream.waitQuiet();
  const entry = await getJson<EntryJson>(`${proxy.server.url}/api/entries/${id}`);
  assert.equal(entry.totalBytes, data.length);
  assert.ok(entry.downloadedBytes > 0 && entry.downloadedBytes < data.length);
  assert.ok(['Paused', 'Downloading'].includes(entry.state), entry.state);
  assert.equal(entry.error, null);
  assert.deepEqual(entry.chunks[0]?.[0], 0);
  const list = await getJson<{ entries: EntryJson[] }>(`${proxy.server.url}/api/entries`);
  assert.ok(list.entries.some((e) => e.id === id));
});

test('DELETE removes rows and file (204), then the entry is gone (404)', async () => {
  const { id, streamUrl } = JSON.parse((await post({ url: `${upstream.url('/item/1.mkv')}?del` })).body.toString()) as EntryJson;
  await fetchBytes(streamUrl);
  const file = proxy.cache.inspect(id).entry?.filePath ?? '';
  assert.ok(file);
  assert.ok(existsSync(file));
  const remove = () =>
    fetchBytes(`${proxy.server.url}/api/entries/${id}`, { method: 'DELETE', headers: { 'content-type': 'application/json' } });
  const del = await remove();
  assert.equal(del.status, 204);
  assert.ok(!existsSync(file));
  assert.equal((await fetchBytes(`${proxy.server.url}/api/entries/${id}`)).status, 404);
  assert.equal((await fetchBytes(streamUrl)).status, 404);
  assert.equal((await remove()).status, 404);
});

test('bad input gets a JSON 4xx with an error code', async () => {
  const cases: Array<[unknown, number]> = [
    [{ url: 'file:///etc/passwd' }, 400],
    [{ url: 'data:text/plain,hi' }, 400],
    [{ url: 'not a url' }, 400],
    [{}, 400],
    [{ url: upstream.url('/x'), sourceId: 'only-source' }, 400],
    [{ url: upstream.url('/x'), extra: true }, 400],
    [{ url: upstream.url('/x'), bitrate: 0 }, 400],
    [{ url: upstream.url('/x'), bitrate: 1.5 }, 400],
    [{ url: upstream.url('/x'), bitrate: '8M' }, 400],
  ];
  for (const [body, status] of cases) {
    const res = await post(body);
    assert.equal(res.status, status, JSON.stringify(body));
    assert.equal(JSON.parse(res.body.toString()).error.code, 'MC_ERR_INVALID_INPUT');
  }
  const notJson = await fetchBytes(`${proxy.server.url}/api/entries`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{nope',
  });
  assert.equal(notJson.status, 400);
  const huge = await fetchBytes(`${proxy.server.url}/api/entries`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ url: upstream.url('/x'), pad: 'x'.repeat(200_000) }),
  });
  assert.equal(huge.status, 413);
  for (const p of ['/api/entries/..%2F..%2Fetc', '/api/entries/nope', '/stream/..%2Fcache.db', '/nothing']) {
    assert.equal((await fetchBytes(`${proxy.server.url}${p}`)).status, 404, p);
  }
  assert.equal((await fetchBytes(`${proxy.server.url}/healthz`)).status, 200);
});
