import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import Database from 'better-sqlite3';
import { request } from 'undici';
import { pino } from 'pino';
import { startServer } from '../src/server/http-server.js';
import { makeData, sha256, startUpstream, type Upstream } from './helpers/upstream.js';
import { fetchBytes, startProxy, tempDir, waitComplete } from './helpers/harness.js';
import { startCli } from './helpers/cli-process.js';

const CHUNK = 64 * 1024;

const serve = (dataDir: string, extra: string[] = []) =>
  startCli(['serve', '--port', '0', '--data-dir', dataDir, '--chunk-size', '64KiB', '--min-free', '0', '--log-level', 'silent', ...extra]);

let upstream: Upstream;
const dirs: string[] = [];
before(async () => {
  upstream = await startUpstream({ bytesPerSecond: 256 * 1024 });
});
after(async () => {
  await upstream.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('SIGKILL mid-download: after restart the DB opens cleanly and no chunk row points at unwritten bytes', async () => {
  const data = makeData(12 * CHUNK + 333, 71);
  upstream.setFile('/crash.mp4', data);
  const dataDir = tempDir();
  dirs.push(dataDir);
  const server = serve(dataDir);
  const url = await server.url;
  assert.ok(url, 'server started');
  const added = await fetchBytes(`${url}/api/entries`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ url: upstream.url('/crash.mp4') }),
  });
  const { id } = JSON.parse(added.body.toString()) as { id: string };

  // Stream until a few chunks have passed, then kill -9 while downloads are mid-chunk.
  const res = await request(`${url}/stream/${id}`);
  let received = 0;
  const killed = new Promise<void>((resolve) => {
    res.body.on('data', (d: Buffer) => {
      received += d.length;
      if (received >= 3 * CHUNK + 1000 && server.child.exitCode === null && !server.child.killed) {
        server.child.kill('SIGKILL');
        resolve();
      }
    });
  });
  res.body.on('error', () => undefined);
  await killed;
  await server.done;
  await upstream.waitQuiet(50); // the upstream sees the dead sockets close a moment later
  assert.ok(
    upstream.requests.some((r) => r.aborted),
    'a transfer was cut mid-way',
  );

  const db = new Database(path.join(dataDir, 'cache.db'), { readonly: true });
  try {
    assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    const entry = db.prepare('SELECT file_path FROM cache_entries WHERE id = ?').get(id) as { file_path: string };
    const rows = db.prepare('SELECT start_byte, end_byte, checksum FROM cache_chunks WHERE cache_entry_id = ?').all(id) as Array<{
      start_byte: number;
      end_byte: number;
      checksum: number;
    }>;
    assert.ok(rows.length >= 1, 'some chunks were recorded before the kill');
    const file = readFileSync(path.join(dataDir, 'files', entry.file_path));
    for (const r of rows) {
      assert.ok(r.end_byte < file.length, `row ${r.start_byte}-${r.end_byte} within the file`);
      const bytes = file.subarray(r.start_byte, r.end_byte + 1);
      assert.equal(crc32(bytes), r.checksum, `row ${r.start_byte}-${r.end_byte} checksum`);
      assert.equal(sha256(bytes), sha256(data.subarray(r.start_byte, r.end_byte + 1)), 'row holds the upstream bytes');
    }
  } finally {
    db.close();
  }

  // The restarted cache resumes and serves the whole file byte-exact.
  const proxy = await startProxy({ dataDir, chunkSize: CHUNK, minFree: 0 });
  const logs: string[] = [];
  const logged = await startServer(proxy.cache, {
    port: 0,
    logger: pino({ level: 'error' }, { write: (line: string) => logs.push(line) }),
  });
  try {
    upstream.options.bytesPerSecond = undefined;
    const again = await fetchBytes(`${logged.url}/stream/${id}`);
    assert.equal(again.status, 200, `${again.body.toString().slice(0, 200)} ${logs.join('\n')}`);
    assert.equal(sha256(again.body), sha256(data));
    await waitComplete(proxy, id);
  } finally {
    await logged.close();
    await proxy.stop();
    upstream.options.bytesPerSecond = 256 * 1024;
  }
});

test('a corrupt database file: a clear error naming it and --reset-db; --reset-db moves it aside and starts fresh', async () => {
  const dataDir = tempDir();
  dirs.push(dataDir);
  const dbFile = path.join(dataDir, 'cache.db');
  writeFileSync(dbFile, Buffer.concat([Buffer.from('this is not a database'), makeData(8192, 3)]));

  const refused = serve(dataDir);
  const result = await refused.done;
  assert.equal(result.code, 1);
  assert.ok(result.stderr.includes(dbFile), `names the file: ${result.stderr}`);
  assert.match(result.stderr, /--reset-db/);
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');

  const reset = serve(dataDir, ['--reset-db']);
  const url = await reset.url;
  assert.ok(url, `started with --reset-db: ${(await Promise.race([reset.done, Promise.resolve({ stderr: '' })])).stderr}`);
  const health = await fetchBytes(`${url}/healthz`);
  assert.equal(health.status, 200);
  const listing = JSON.parse((await fetchBytes(`${url}/api/entries`)).body.toString()) as { entries: unknown[] };
  assert.deepEqual(listing.entries, []);
  reset.child.kill('SIGTERM');
  assert.equal((await reset.done).code, 0);
  const aside = readdirSync(dataDir).filter((f) => f.startsWith('cache.db.corrupt-'));
  assert.equal(aside.length, 1, `moved aside: ${readdirSync(dataDir).join(', ')}`);
  assert.ok(existsSync(dbFile));
});
