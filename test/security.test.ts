import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { MediaCache } from '../src/cache.js';
import { startServer } from '../src/server/http-server.js';
import { makeData, sha256, startUpstream, type Upstream } from './helpers/upstream.js';
import { fetchBytes, tempDir } from './helpers/harness.js';
import { startCli } from './helpers/cli-process.js';

const TOKEN = 'test-token-0123456789abcdef';
const SECRET = 'plexsecret-9f8e7d6c5b4a';

let upstream: Upstream;
const data = makeData(200_000, 91);
const dirs: string[] = [];
before(async () => {
  upstream = await startUpstream();
  upstream.setFile('/sec.mp4', data);
});
after(async () => {
  await upstream.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function openCache(extra: Parameters<typeof MediaCache.open>[0] = {}): Promise<MediaCache> {
  const dataDir = tempDir();
  dirs.push(dataDir);
  return MediaCache.open({ dataDir, chunkSize: 64 * 1024, minFree: 0, ...extra });
}

test('binding a non-loopback address without an auth token is refused (library and CLI)', async () => {
  const cache = await openCache();
  try {
    await assert.rejects(startServer(cache, { host: '0.0.0.0', port: 0 }), /auth token/);
  } finally {
    await cache.close();
  }
  const dataDir = tempDir();
  dirs.push(dataDir);
  const run = startCli(['serve', '--host', '0.0.0.0', '--port', '0', '--data-dir', dataDir, '--log-level', 'silent'], {
    MEDIACACHE_AUTH_TOKEN: '',
  });
  const result = await run.done;
  assert.equal(result.code, 2);
  assert.match(result.stderr, /--auth-token/);
  assert.doesNotMatch(result.stderr, /\n\s+at /);
});

test('with a token, /api and /metrics need it (401 JSON otherwise); /stream and /healthz do not', async () => {
  const cache = await openCache();
  const server = await startServer(cache, { host: '127.0.0.1', port: 0, authToken: TOKEN });
  try {
    const auth = { authorization: `Bearer ${TOKEN}` };
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: TOKEN }] as Array<Record<string, string>>) {
      const res = await fetchBytes(`${server.url}/api/entries`, { headers });
      assert.equal(res.status, 401);
      assert.equal(res.headers['www-authenticate'], 'Bearer');
      assert.equal((JSON.parse(res.body.toString()) as { error: { code: string } }).error.code, 'MC_ERR_UNAUTHORIZED');
    }
    assert.equal((await fetchBytes(`${server.url}/metrics`)).status, 401);
    const post = await fetchBytes(`${server.url}/api/entries`, { method: 'POST', body: JSON.stringify({ url: upstream.url('/sec.mp4') }) });
    assert.equal(post.status, 401, 'no entry can be added without the token');
    const added = await fetchBytes(`${server.url}/api/entries`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ url: upstream.url('/sec.mp4') }),
    });
    assert.equal(added.status, 201);
    const { streamUrl } = JSON.parse(added.body.toString()) as { streamUrl: string };
    const streamed = await fetchBytes(streamUrl);
    assert.equal(streamed.status, 200);
    assert.equal(sha256(streamed.body), sha256(data));
    assert.equal((await fetchBytes(`${server.url}/healthz`)).status, 200);
    assert.equal((await fetchBytes(`${server.url}/api/entries`, { headers: auth })).status, 200);
  } finally {
    await server.close();
    await cache.close();
  }
});

test('--allow-upstream: URLs on other hosts are refused with a 403 JSON error', async () => {
  const cache = await openCache({ allowedUpstreamHosts: ['127.0.0.1'] });
  const server = await startServer(cache, { port: 0 });
  try {
    const add = (url: string) =>
      fetchBytes(`${server.url}/api/entries`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ url }),
      });
    const refused = await add(upstream.url('/sec.mp4').replace('127.0.0.1', 'localhost'));
    assert.equal(refused.status, 403);
    assert.equal((JSON.parse(refused.body.toString()) as { error: { code: string } }).error.code, 'MC_ERR_UPSTREAM_REFUSED');
    const other = await add('http://169.254.169.254/latest/meta-data');
    assert.equal(other.status, 403);
    assert.equal((await add(upstream.url('/sec.mp4'))).status, 201);
    assert.equal(cache.listEntries().length, 1);
  } finally {
    await server.close();
    await cache.close();
  }
});

test('bad input gets a 4xx JSON error and the server keeps running', async () => {
  const cache = await openCache();
  const server = await startServer(cache, { port: 0 });
  try {
    const post = (body: string, type = 'application/json') =>
      fetchBytes(`${server.url}/api/entries`, { method: 'POST', headers: { 'content-type': type }, body });
    const cases: Array<[Promise<{ status: number; body: Buffer }>, number]> = [
      [post('{not json'), 400],
      [post(JSON.stringify({ url: 'x'.repeat(70_000) })), 413],
      [post(JSON.stringify({})), 400],
      [post(JSON.stringify({ url: 'file:///etc/passwd' })), 400],
      [post(JSON.stringify({ url: 'data:text/plain,hi' })), 400],
      [post(JSON.stringify({ url: 'not a url' })), 400],
      [post(JSON.stringify({ url: upstream.url('/sec.mp4') }), 'text/plain'), 415],
      [fetchBytes(`${server.url}/stream/..%2F..%2Fetc%2Fpasswd`), 404],
      [fetchBytes(`${server.url}/stream/${'A'.repeat(22)}`), 404],
      [fetchBytes(`${server.url}/api/entries/../../cache.db`), 404],
    ];
    for (const [pending, status] of cases) {
      const res = await pending;
      assert.equal(res.status, status, res.body.toString());
      const body = JSON.parse(res.body.toString()) as { error: { code: string; message: string } };
      assert.match(body.error.code, /^MC_ERR_/);
      assert.doesNotMatch(body.error.message, /\n\s+at /);
    }
    assert.equal((await fetchBytes(`${server.url}/healthz`)).status, 200);
  } finally {
    await server.close();
    await cache.close();
  }
});

test('a token in the upstream URL never appears in API listings, error messages or logs', async () => {
  const dataDir = tempDir();
  dirs.push(dataDir);
  const run = startCli(['serve', '--port', '0', '--data-dir', dataDir, '--log-level', 'trace', '--chunk-size', '64KiB', '--min-free', '0']);
  const url = await run.url;
  assert.ok(url);
  const secretUrl = `${upstream.url('/sec.mp4')}?X-Plex-Token=${SECRET}&quality=1`;
  const missingUrl = `${upstream.url('/missing.mp4')}?api_key=${SECRET}`;
  const bodies: string[] = [];
  for (const u of [secretUrl, missingUrl]) {
    const added = await fetchBytes(`${url}/api/entries`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url: u }),
    });
    bodies.push(added.body.toString());
    const { streamUrl } = JSON.parse(added.body.toString()) as { streamUrl: string };
    bodies.push((await fetchBytes(streamUrl)).body.toString('latin1').slice(0, 2000));
  }
  bodies.push((await fetchBytes(`${url}/api/entries`)).body.toString());
  assert.match(bodies.at(-1) ?? '', /REDACTED/);
  run.child.kill('SIGTERM');
  const { stdout, stderr } = await run.done;
  assert.ok(stderr.length > 0, 'something was logged');
  for (const text of [...bodies, stdout, stderr]) assert.ok(!text.includes(SECRET), `secret leaked in: ${text.slice(0, 300)}`);
});
