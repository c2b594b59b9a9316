import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { makeData, sha256, startUpstream, type Upstream } from './helpers/upstream.js';
import { fetchBytes, tempDir, waitUntil } from './helpers/harness.js';
import { createCache, startServer, EntryState } from '../src/index.js';
import { startCli } from './helpers/cli-process.js';

let upstream: Upstream;
let dataDir: string;
const data = makeData(300_000, 41);

before(async () => {
  upstream = await startUpstream();
  upstream.setFile('/cli.mp4', data);
  dataDir = tempDir();
});
after(async () => {
  await upstream.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test('serve prints its URL; add prints a stream URL; a second serve on the same dir is refused; SIGTERM exits 0', async () => {
  const server = startCli(['serve', '--port', '0', '--data-dir', dataDir, '--chunk-size', '64KiB', '--log-level', 'silent']);
  const url = await server.url;
  assert.ok(url, 'the server printed the URL it listens on');

  const add = startCli(['add', upstream.url('/cli.mp4'), '--server', url]);
  const added = await add.done;
  assert.equal(added.code, 0, added.stderr);
  const streamUrl = added.stdout.trim();
  assert.match(streamUrl, new RegExp(`^${url}/stream/[A-Za-z0-9_-]{22}$`));
  assert.equal(sha256((await fetchBytes(streamUrl)).body), sha256(data));

  const second = await startCli(['serve', '--port', '0', '--data-dir', dataDir]).done;
  assert.equal(second.code, 1);
  assert.match(second.stderr, /in use by another mediacache process \(pid \d+\)/);
  assert.doesNotMatch(second.stderr, /\n\s+at /, 'no stack trace');

  server.child.kill('SIGTERM');
  const stopped = await server.done;
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.match(stopped.stdout, /stopped/);
});

test('invalid flags are usage errors with a message, not stack traces', async () => {
  for (const args of [['serve', '--port', 'abc'], ['serve', '--chunk-size', 'huge'], ['serve', '--bogus'], ['frobnicate']]) {
    const res = await startCli(args).done;
    assert.notEqual(res.code, 0, args.join(' '));
    assert.ok(res.stderr.length > 0, args.join(' '));
    assert.doesNotMatch(res.stderr, /\n\s+at /, 'no stack trace');
  }
});

test('the programmatic API: open, serve, stream, events, status, close', async () => {
  const dir = tempDir();
  const cache = await createCache({ dataDir: dir, chunkSize: 64 * 1024 });
  const server = await startServer(cache, { port: 0 });
  try {
    const states: string[] = [];
    const stored: number[] = [];
    cache.on('state-changed', ({ state }) => states.push(state));
    cache.on('chunk-stored', ({ start }) => stored.push(start));
    const { entry, created } = cache.addEntry({ url: upstream.url('/cli.mp4'), sourceId: 'src', mediaId: 'm1' });
    assert.equal(created, true);
    const body = await fetchBytes(server.streamUrl(entry.id));
    assert.equal(sha256(body.body), sha256(data));
    // Events follow their commits by a tick, and a row's `chunk-stored` may come just after
    // another transfer's settle announced Complete (the row was committed; its event waits on
    // the integrity baseline's stat): wait for all three.
    const chunks = Math.ceil(data.length / (64 * 1024));
    await waitUntil(
      cache,
      () => cache.getEntry(entry.id)?.state === EntryState.Complete && states.includes(EntryState.Complete) && stored.length >= chunks,
    );
    assert.ok(stored.length >= chunks);
    assert.ok(states.includes(EntryState.Complete));
    assert.equal(cache.getEntry(entry.id)?.downloadedBytes, data.length);
  } finally {
    await server.close();
    await cache.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
