import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { MediaCache } from '../src/cache.js';
import { startServer, type CacheServer } from '../src/server/http-server.js';
import { makeData, sha256, startUpstream, type Upstream } from './helpers/upstream.js';
import { fetchBytes, tempDir, type FetchResult } from './helpers/harness.js';
import { startCli } from './helpers/cli-process.js';

const TOKEN = 'rebinding-token-0123456789';
const JSON_TYPE = { 'content-type': 'application/json' };
const data = makeData(100_000, 23);
let upstream: Upstream;
const dirs: string[] = [];
before(async () => {
  upstream = await startUpstream();
  upstream.setFile('/reb.mp4', data);
});
after(async () => {
  await upstream.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function serve(
  options: Parameters<typeof startServer>[1],
): Promise<{ cache: MediaCache; server: CacheServer; close(): Promise<void> }> {
  const dataDir = tempDir();
  dirs.push(dataDir);
  const cache = await MediaCache.open({ dataDir, chunkSize: 64 * 1024, minFree: 0 });
  const server = await startServer(cache, { port: 0, ...options });
  return {
    cache,
    server,
    close: async () => {
      await server.close();
      await cache.close();
    },
  };
}

/** Connects to 127.0.0.1 (always), sending whatever Host a rebinding page's browser would. */
function asHost(server: CacheServer, host: string, path: string, init: Parameters<typeof fetchBytes>[1] = {}): Promise<FetchResult> {
  return fetchBytes(`http://127.0.0.1:${server.port}${path}`, { ...init, headers: { ...init.headers, host } });
}

function codeOf(res: FetchResult): string {
  return (JSON.parse(res.body.toString()) as { error: { code: string } }).error.code;
}

test('DNS rebinding: on a loopback bind, a Host that is not ours gets 421 MC_ERR_MISDIRECTED on the API, metrics, health and streams', async () => {
  const s = await serve({ host: '127.0.0.1' });
  try {
    const { entry } = s.cache.addEntry({ url: upstream.url('/reb.mp4') });
    const paths = ['/api/entries', `/api/entries/${entry.id}`, '/api/stats', '/metrics', '/healthz', `/stream/${entry.id}`];
    const foreign = ['evil.example', `evil.example:${s.server.port}`, 'localhost.evil.example', '127.0.0.1.nip.io', '192.168.1.20'];
    for (const host of foreign) {
      for (const path of paths) {
        const res = await asHost(s.server, host, path);
        assert.equal(res.status, 421, `${host} ${path}`);
        assert.equal(codeOf(res), 'MC_ERR_MISDIRECTED');
      }
      const add = await asHost(s.server, host, '/api/entries', {
        method: 'POST',
        headers: JSON_TYPE,
        body: JSON.stringify({ url: upstream.url('/x') }),
      });
      assert.equal(add.status, 421);
    }
    assert.equal(s.cache.listEntries().length, 1, 'nothing was added through a foreign Host');
    upstream.resetStats();
    for (const host of [
      'localhost',
      `localhost:${s.server.port}`,
      'LOCALHOST.',
      'player.localhost',
      `127.0.0.1:${s.server.port}`,
      '127.1.2.3',
      `[::1]:${s.server.port}`,
    ]) {
      assert.equal((await asHost(s.server, host, '/api/entries')).status, 200, host);
      assert.equal((await asHost(s.server, host, '/healthz')).status, 200, host);
    }
    const streamed = await asHost(s.server, 'localhost', `/stream/${entry.id}`);
    assert.equal(streamed.status, 200);
    assert.equal(sha256(streamed.body), sha256(data));
  } finally {
    await s.close();
  }
});

test('--public-host names are answered besides loopback (library option; CLI flag and MEDIACACHE_PUBLIC_HOST)', async () => {
  const s = await serve({ host: '127.0.0.1', publicHosts: ['media.home', 'NAS.lan:8080'] });
  try {
    for (const host of ['media.home', 'media.home:7171', 'nas.lan'])
      assert.equal((await asHost(s.server, host, '/api/entries')).status, 200, host);
    assert.equal((await asHost(s.server, 'other.home', '/api/entries')).status, 421);
  } finally {
    await s.close();
  }
  for (const [args, env] of [
    [['--public-host', 'media.home,tv.home'], {}],
    [[], { MEDIACACHE_PUBLIC_HOST: 'media.home,tv.home' }],
  ] as Array<[string[], Record<string, string>]>) {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const run = startCli(['serve', '--port', '0', '--data-dir', dataDir, '--log-level', 'silent', ...args], env);
    const url = await run.url;
    assert.ok(url);
    const get = (host: string) => fetchBytes(`${url}/api/entries`, { headers: { host } });
    assert.equal((await get('tv.home')).status, 200);
    assert.equal((await get('media.home:7171')).status, 200);
    assert.equal((await get('evil.example')).status, 421);
    run.child.kill('SIGTERM');
    assert.equal((await run.done).code, 0);
  }
});

test("wildcard bind with a token: streams answer any Host (LAN players), the API only its own names and the machine's interface addresses", async () => {
  const s = await serve({ host: '0.0.0.0', authToken: TOKEN, publicHosts: ['media.home'] });
  const auth = { authorization: `Bearer ${TOKEN}` };
  try {
    const { entry } = s.cache.addEntry({ url: upstream.url('/reb.mp4') });
    const streamed = await asHost(s.server, 'living-room-tv.local', `/stream/${entry.id}`);
    assert.equal(streamed.status, 200, 'a player may use any name for the machine');
    assert.equal(sha256(streamed.body), sha256(data));
    assert.equal((await asHost(s.server, 'evil.example', '/api/entries', { headers: auth })).status, 421, 'the token alone is not enough');
    assert.equal((await asHost(s.server, 'evil.example', '/metrics', { headers: auth })).status, 421);
    assert.equal((await asHost(s.server, 'media.home', '/api/entries', { headers: auth })).status, 200);
    assert.equal((await asHost(s.server, `127.0.0.1:${s.server.port}`, '/api/entries', { headers: auth })).status, 200);
    // The address a LAN client used: one of this machine's (sent only as a header; the connection stays on 127.0.0.1).
    const lan = Object.values(networkInterfaces())
      .flatMap((list) => list ?? [])
      .find((i) => !i.internal && i.family === 'IPv4');
    if (lan) {
      const res = await asHost(s.server, `${lan.address}:${s.server.port}`, '/api/entries', { headers: auth });
      assert.equal(res.status, 200, `interface address ${lan.address}`);
      const listed = JSON.parse(res.body.toString()) as { entries: Array<{ streamUrl: string }> };
      assert.equal(listed.entries[0]?.streamUrl, `http://${lan.address}:${s.server.port}/stream/${entry.id}`);
    }
    assert.equal((await asHost(s.server, '203.0.113.9', '/api/entries', { headers: auth })).status, 421, 'not an address of this machine');
  } finally {
    await s.close();
  }
});

test('a cross-site simple request cannot change anything: POST/DELETE under /api need JSON (415 MC_ERR_UNSUPPORTED_MEDIA_TYPE) or the bearer token', async () => {
  const s = await serve({ host: '127.0.0.1' });
  try {
    const { entry } = s.cache.addEntry({ url: upstream.url('/reb.mp4') });
    const body = JSON.stringify({ url: upstream.url('/other.mp4') });
    const attempts: Array<[string, 'POST' | 'DELETE', Record<string, string>]> = [
      ['/api/entries', 'POST', { 'content-type': 'text/plain' }],
      ['/api/entries', 'POST', { 'content-type': 'application/x-www-form-urlencoded' }],
      ['/api/entries', 'POST', { 'content-type': 'multipart/form-data; boundary=x' }],
      ['/api/entries', 'POST', { 'content-type': 'application/jsonp' }],
      ['/api/entries', 'POST', {}],
      [`/api/entries/${entry.id}`, 'DELETE', {}],
      [`/api/entries/${entry.id}/prefetch`, 'POST', { 'content-type': 'text/plain' }],
      [`/api/entries/${entry.id}/pin`, 'POST', {}],
      ['/api/gc', 'POST', {}],
      ['/api/verify', 'POST', { 'content-type': 'text/plain;charset=UTF-8' }],
    ];
    for (const [path, method, headers] of attempts) {
      const res = await fetchBytes(`${s.server.url}${path}`, { method, headers, body });
      assert.equal(res.status, 415, `${method} ${path} ${JSON.stringify(headers)}`);
      assert.equal(codeOf(res), 'MC_ERR_UNSUPPORTED_MEDIA_TYPE');
    }
    const still = s.cache.getEntry(entry.id);
    assert.ok(still, 'not removed');
    assert.equal(still.pinned, false, 'not pinned');
    assert.equal(s.cache.listEntries().length, 1, 'nothing added');
    // JSON, with or without a body, is how the CLI and API clients talk.
    assert.equal((await fetchBytes(`${s.server.url}/api/entries/${entry.id}/pin`, { method: 'POST', headers: JSON_TYPE })).status, 200);
    assert.equal(
      (
        await fetchBytes(`${s.server.url}/api/entries`, {
          method: 'POST',
          headers: { 'content-type': 'Application/JSON; charset=utf-8' },
          body,
        })
      ).status,
      201,
    );
    assert.equal((await fetchBytes(`${s.server.url}/api/entries/${entry.id}`, { method: 'DELETE', headers: JSON_TYPE })).status, 204);
  } finally {
    await s.close();
  }
  const guarded = await serve({ host: '127.0.0.1', authToken: TOKEN });
  try {
    const { entry } = guarded.cache.addEntry({ url: upstream.url('/reb.mp4') });
    const del = (headers: Record<string, string>) =>
      fetchBytes(`${guarded.server.url}/api/entries/${entry.id}`, { method: 'DELETE', headers });
    assert.equal((await del({})).status, 401);
    assert.equal((await del({ authorization: `Bearer ${TOKEN}` })).status, 204, 'a valid bearer token is enough without JSON');
  } finally {
    await guarded.close();
  }
});
