import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import dc from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import { MediaCache } from '../src/cache.js';
import { isMediaCacheError } from '../src/errors.js';
import type { ResolvedAddress } from '../src/download/upstream-lookup.js';
import { makeData, sha256, startUpstream } from './helpers/upstream.js';
import { fetchBytes, startProxy, tempDir } from './helpers/harness.js';
import { runCli } from './helpers/cli-process.js';

const CHUNK = 64 * 1024;
const data = makeData(4 * CHUNK + 321, 57);
const upstream = await startUpstream();
upstream.setFile('/film.mkv', data);
const port = new URL(upstream.origin).port;
after(() => upstream.close());

// Every outgoing connection attempt of this process: none may leave 127.0.0.0/8.
const attempts: string[] = [];
dc.subscribe('net.client.socket', (message) => {
  (message as { socket: Socket }).socket.on('connectionAttempt', (ip: string) => attempts.push(ip));
});
after(() =>
  assert.deepEqual(
    attempts.filter((ip) => !ip.startsWith('127.')),
    [],
    'no connection left 127.0.0.0/8',
  ),
);

/** A resolver seam: offline, deterministic names (the system resolver is never asked for these). */
function fakeDns(): { resolve: (name: string) => Promise<ResolvedAddress[]>; asked: string[] } {
  const zone: Record<string, string[]> = {
    'media.test': ['127.0.0.1'],
    'metadata.test': ['169.254.169.254'],
    'mixed.test': ['127.0.0.1', 'fe80::1'],
    'mapped.test': ['::ffff:169.254.169.254'],
  };
  const asked: string[] = [];
  const resolve = (name: string): Promise<ResolvedAddress[]> => {
    asked.push(name);
    const found = zone[name];
    if (!found) return Promise.reject(Object.assign(new Error(`ENOTFOUND ${name}`), { code: 'ENOTFOUND' }));
    return Promise.resolve(found.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })));
  };
  return { resolve, asked };
}

function errorOf(body: Buffer): { code: string; message: string } {
  return (JSON.parse(body.toString()) as { error: { code: string; message: string } }).error;
}

test('adding a link-local or metadata address is refused with 403 MC_ERR_UPSTREAM_REFUSED in every spelling; --allow-link-local admits it', async () => {
  const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false });
  const open = await startProxy({ chunkSize: CHUNK, backgroundFill: false, allowLinkLocalUpstreams: true });
  try {
    const spellings = [
      'http://169.254.169.254/latest/meta-data/iam/',
      'http://2852039166/latest/meta-data/',
      'http://[fe80::1]:8080/x',
      'http://[::ffff:169.254.169.254]/x',
      'http://[fd00:ec2::254]/latest/meta-data/',
    ];
    for (const url of spellings) {
      const res = await fetchBytes(`${proxy.server.url}/api/entries`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ url }),
      });
      assert.equal(res.status, 403, url);
      assert.equal(errorOf(res.body).code, 'MC_ERR_UPSTREAM_REFUSED', url);
      assert.match(errorOf(res.body).message, /link-local|metadata/);
    }
    assert.equal(proxy.cache.listEntries().length, 0);
    // Admitted, not fetched: no test may send traffic there.
    assert.equal((await open.add('http://169.254.169.254/latest/meta-data/')).id.length, 22);
  } finally {
    await proxy.close();
    await open.close();
  }
});

test('a redirect from an allowed upstream to http://169.254.169.254/ is refused before any connection: 502, entry Failed, no retries', async () => {
  upstream.setRedirect('/to-metadata', 'http://169.254.169.254/latest/meta-data/iam/security-credentials/', 302);
  const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false });
  try {
    const { id, streamUrl } = await proxy.add(upstream.url('/to-metadata'));
    upstream.resetStats();
    const res = await fetchBytes(streamUrl);
    assert.equal(res.status, 502);
    assert.equal(errorOf(res.body).code, 'MC_ERR_ENTRY_FAILED');
    assert.match(errorOf(res.body).message, /redirect to a refused upstream: 169\.254\.169\.254 is a link-local address/);
    assert.equal(upstream.requests.length, 1, 'one request to the redirecting upstream, not retried');
    const entry = proxy.cache.getEntry(id);
    assert.equal(entry?.state, 'Failed');
    assert.match(entry?.error ?? '', /refused upstream/);
    assert.ok(!attempts.some((ip) => ip.startsWith('169.254.')));
    // Passthrough (the disk-full path) uses the same downloader and the same check.
    await assert.rejects(
      proxy.cache.passthrough(id, 0, 99, new AbortController().signal, () => Promise.resolve()),
      (err) => isMediaCacheError(err, 'MC_ERR_UPSTREAM_REFUSED'),
    );
  } finally {
    await proxy.close();
  }
});

test('names are judged after DNS resolution: one resolving to a closed address is refused (first URL and redirect hop), without connecting', async () => {
  const dns = fakeDns();
  upstream.setRedirect('/via-name', `http://metadata.test:${port}/film.mkv`, 307);
  const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false, resolveUpstream: dns.resolve });
  try {
    upstream.resetStats();
    for (const name of ['metadata.test', 'mixed.test', 'mapped.test']) {
      const { id, streamUrl } = await proxy.add(`http://${name}:${port}/film.mkv`);
      const res = await fetchBytes(streamUrl);
      assert.equal(res.status, 502, name);
      assert.match(
        errorOf(res.body).message,
        new RegExp(`upstream ${name.replace('.', '\\.')} resolves to .* (link-local|metadata) address`),
      );
      assert.equal(proxy.cache.getEntry(id)?.state, 'Failed');
    }
    assert.equal(upstream.requests.length, 0, 'nothing was sent for a refused name');
    const hop = await proxy.add(`http://media.test:${port}/via-name`);
    const res = await fetchBytes(hop.streamUrl);
    assert.equal(res.status, 502);
    assert.match(errorOf(res.body).message, /metadata\.test resolves to 169\.254\.169\.254/);
    assert.deepEqual(
      upstream.requests.map((r) => r.path),
      ['/via-name'],
    );
    assert.deepEqual(dns.asked.filter((n) => n === 'metadata.test').length, 2, 'resolved once per attempt, never retried');
  } finally {
    await proxy.close();
  }
});

test('a name resolving to 127.0.0.1 streams exact bytes through the checked lookup, and keep-alive pools the connection', async () => {
  const dns = fakeDns();
  const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false, maxConcurrentDownloads: 1, resolveUpstream: dns.resolve });
  try {
    const { streamUrl } = await proxy.add(`http://media.test:${port}/film.mkv`);
    upstream.resetStats();
    assert.equal(sha256((await fetchBytes(streamUrl)).body), sha256(data));
    assert.ok(upstream.requests.length >= 5, 'one request per chunk');
    assert.equal(dns.asked.length, 1, 'every chunk request over one pooled connection: the name was resolved once');
  } finally {
    await proxy.close();
  }
});

test('localhost (system DNS) is an allowed upstream', async () => {
  const proxy = await startProxy({ chunkSize: CHUNK });
  try {
    const { streamUrl } = await proxy.add(`http://localhost:${port}/film.mkv`);
    assert.equal(sha256((await fetchBytes(streamUrl)).body), sha256(data));
  } finally {
    await proxy.close();
  }
});

test('--allow-upstream is checked on every redirect hop, not only when the entry is added', async () => {
  upstream.setRedirect('/hop-elsewhere', `http://localhost:${port}/film.mkv`, 302);
  const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false, allowedUpstreamHosts: ['127.0.0.1'] });
  try {
    const { id, streamUrl } = await proxy.add(upstream.url('/hop-elsewhere'));
    upstream.resetStats();
    const res = await fetchBytes(streamUrl);
    assert.equal(res.status, 502);
    assert.match(errorOf(res.body).message, /redirect to a refused upstream: upstream host localhost is not in the allowed list/);
    assert.deepEqual(
      upstream.requests.map((r) => r.path),
      ['/hop-elsewhere'],
    );
    assert.equal(proxy.cache.getEntry(id)?.state, 'Failed');
  } finally {
    await proxy.close();
  }
});

test('an entry added before --allow-upstream was narrowed answers 403 MC_ERR_UPSTREAM_REFUSED on /stream', async () => {
  const dataDir = tempDir();
  const before = await startProxy({ dataDir, chunkSize: CHUNK });
  const { id } = await before.add(upstream.url('/film.mkv'));
  await before.stop();
  const proxy = await startProxy({ dataDir, chunkSize: CHUNK, allowedUpstreamHosts: ['nas.lan'] });
  try {
    upstream.resetStats();
    const res = await fetchBytes(`${proxy.server.url}/stream/${id}`);
    assert.equal(res.status, 403);
    assert.equal(errorOf(res.body).code, 'MC_ERR_UPSTREAM_REFUSED');
    assert.equal(upstream.requests.length, 0);
  } finally {
    await proxy.close();
  }
});

test('serve --help documents the upstream policy and the host rule', async () => {
  const help = await runCli(['serve', '--help']);
  assert.equal(help.code, 0);
  for (const text of [
    '--allow-upstream',
    '--allow-link-local',
    '169.254.0.0/16',
    'fe80::/10',
    'MEDIACACHE_ALLOW_LINK_LOCAL',
    '--public-host',
  ]) {
    assert.ok(help.stdout.includes(text), `serve --help mentions ${text}`);
  }
});

test('MediaCache.open with an allowlist refuses other hosts at add time (library API)', async () => {
  const dataDir = tempDir();
  const cache = await MediaCache.open({ dataDir, allowedUpstreamHosts: ['nas.lan'], minFree: 0 });
  try {
    assert.throws(
      () => cache.addEntry({ url: upstream.url('/film.mkv') }),
      (err) => isMediaCacheError(err, 'MC_ERR_UPSTREAM_REFUSED'),
    );
  } finally {
    await cache.close();
  }
});
