import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { makeData, sha256, startUpstream } from './helpers/upstream.js';
import { fetchBytes, startProxy, tempDir } from './helpers/harness.js';
import { request, type Dispatcher } from 'undici';
import { MediaCache } from '../src/cache.js';
import { startServer } from '../src/server/http-server.js';

const SECRET = 'ids-test-secret-0123456789';
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('without a cluster secret ids stay random; with one they come from the key; entries with random ids keep working', async () => {
  const upstream = await startUpstream();
  const data = makeData(300_000, 5);
  upstream.setFile('/a.mkv', data);
  const dataDir = tempDir();
  dirs.push(dataDir);
  const before = await startProxy({ dataDir });
  const random = before.cache.addEntry({ url: upstream.url('/a.mkv'), sourceId: 's', mediaId: '1' }).entry.id;
  await before.stop();

  // Two independent caches with the secret compute the same id for the same key.
  const other = await MediaCache.open({ dataDir: tempDir(), clusterSecret: SECRET });
  dirs.push(other.dataDir);
  const derived = other.addEntry({ url: upstream.url('/b.mkv'), sourceId: 's', mediaId: '2' }).entry.id;
  await other.close();

  const proxy = await startProxy({ dataDir, clusterSecret: SECRET });
  try {
    assert.equal(
      proxy.cache.addEntry({ url: upstream.url('/a.mkv?token=new'), sourceId: 's', mediaId: '1' }).entry.id,
      random,
      'a known key keeps its random id',
    );
    assert.equal(
      proxy.cache.addEntry({ url: upstream.url('/b.mkv'), sourceId: 's', mediaId: '2' }).entry.id,
      derived,
      'a new key gets the derived id',
    );
    const got = await fetchBytes(proxy.server.streamUrl(random));
    assert.equal(sha256(got.body), sha256(data));
  } finally {
    await proxy.stop();
    await upstream.close();
  }
});

test('with --public-url the balancer’s Host is one of ours, stream URLs are on it, and /healthz names the node', async () => {
  const cache = await MediaCache.open({ dataDir: tempDir(), clusterSecret: SECRET });
  dirs.push(cache.dataDir);
  const server = await startServer(cache, {
    port: 0,
    cluster: { publicUrl: 'http://media.lan:8080', clusterSecret: SECRET, nodeName: 'edge-1' },
  });
  try {
    const ask = (host: string): Promise<Dispatcher.ResponseData> => request(`${server.url}/healthz`, { headers: { host } });
    const ours = await ask('media.lan:8080');
    assert.equal(ours.statusCode, 200);
    assert.deepEqual(await ours.body.json(), { status: 'ok', node: 'edge-1' });
    assert.equal(ours.headers['x-mediacache-node'], 'edge-1');
    const other = await ask('evil.example');
    assert.equal(other.statusCode, 421);
    await other.body.dump();
    const { entry } = cache.addEntry({ url: 'http://127.0.0.1:9/x.mkv?token=abc' });
    assert.match(server.streamUrl(entry.id), new RegExp(`^http://media\\.lan:8080/stream/${entry.id}\\?t=[A-Za-z0-9_-]+$`));
  } finally {
    await server.close();
    await cache.close();
  }
});
