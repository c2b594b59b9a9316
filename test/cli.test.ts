import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EntryStatus } from '../src/cache.js';
import { makeData, sha256, startUpstream, type Upstream } from './helpers/upstream.js';
import { fetchBytes, getJson, tempDir } from './helpers/harness.js';
import { CLI, runCli, startCli, type CliProcess } from './helpers/cli-process.js';

const CHUNK = 64 * 1024;

const run = runCli;
const start = startCli;

describe('the mediacache CLI against a real server', () => {
  let upstream: Upstream;
  let server: CliProcess;
  let url = '';
  const dataDir = tempDir();
  const data = makeData(12 * CHUNK + 77, 5);

  before(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run 'npm run build' first (npm test does)`);
    upstream = await startUpstream();
    upstream.setFile('/show/s01e01.mkv', data);
    upstream.setFile('/show/s01e02.mkv', data);
    server = startCli([
      'serve',
      '--port',
      '0',
      '--data-dir',
      dataDir,
      '--chunk-size',
      '64KiB',
      '--no-background-fill',
      '--max-size',
      '1GB',
      '--min-free',
      '0',
      '--log-level',
      'warn',
    ]);
    url = await server.url;
    assert.ok(url, 'the server printed its URL');
  });
  after(async () => {
    server.child.kill('SIGTERM');
    await server.done;
    await upstream.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('ls on an empty cache; --help; --version; usage, unreachable and not-found exit codes', async () => {
    const empty = await run(['ls', '--server', url]);
    assert.equal(empty.code, 0);
    assert.equal(empty.stdout, 'no entries\n');
    const help = await run(['gc', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: mediacache gc/);
    const version = await run(['--version']);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
    const usage = await run(['ls', '--no-such-flag']);
    assert.equal(usage.code, 2);
    const badSize = await run(['pin', 'AAAAAAAAAAAAAAAAAAAAAA', '--head', 'lots', '--server', url]);
    assert.equal(badSize.code, 2);
    const unreachable = await run(['stats', '--server', 'http://127.0.0.1:1']);
    assert.equal(unreachable.code, 3);
    assert.match(unreachable.stderr, /cannot reach the mediacache server/);
    const missing = await run(['status', 'AAAAAAAAAAAAAAAAAAAAAA', '--server', url]);
    assert.equal(missing.code, 4);
  });

  test('prefetch URL → complete; ls, status, pin, unpin, stats, verify, gc, rm', async () => {
    const secret = `${upstream.url('/show/s01e01.mkv')}?api_key=hunter2`;
    const pre = await run(['prefetch', secret, '--pin', '--server', url]);
    assert.equal(pre.code, 0, pre.stderr);
    const id = /^complete: (\S+)/m.exec(pre.stdout)?.[1] as string;
    assert.ok(id);

    const ls = await run(['ls', '--server', url]);
    assert.equal(ls.code, 0);
    const [header, row] = ls.stdout.trimEnd().split('\n');
    assert.match(header as string, /^ID\s+STATE\s+SIZE\s+CACHED\s+PINNED\s+LAST ACCESS\s+URL$/);
    assert.match(
      row as string,
      new RegExp(`^${id}\\s+Complete\\s+768\\.1 KiB\\s+100\\.0%\\s+yes\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\dZ\\s+http`),
    );
    assert.ok(!ls.stdout.includes('hunter2'), 'credentials are redacted');
    const lsJson = JSON.parse((await run(['ls', '--json', '--server', url])).stdout) as EntryStatus[];
    assert.equal(lsJson[0]?.state, 'Complete');

    const status = await run(['status', id, '--server', url]);
    assert.match(status.stdout, /state:\s+Complete/);
    assert.match(status.stdout, /chunk map:\s+\[█{60}\]/);

    const pin = await run(['pin', id, '--head', '128KiB', '--server', url]);
    assert.equal(pin.code, 0);
    assert.equal(pin.stdout, `pinned ${id} (head 128.0 KiB and tail chunk)\n`);
    const unpin = await run(['unpin', id, '--json', '--server', url]);
    assert.equal((JSON.parse(unpin.stdout) as EntryStatus).pinned, false);

    const res = await fetchBytes(`${url}/stream/${id}`);
    assert.equal(sha256(res.body), sha256(data));
    const stats = JSON.parse((await run(['stats', '--json', '--server', url])).stdout) as { totals: Record<string, number> };
    assert.equal(stats.totals.bytesFromUpstream, data.length);
    assert.ok((stats.totals.hits ?? 0) >= 1);
    const statsText = await run(['stats', '--server', url]);
    assert.match(statsText.stdout, /fetched upstream:\s+768\.1 KiB/);

    const verify = await run(['verify', id, '--server', url]);
    assert.equal(verify.code, 0, verify.stderr);
    assert.match(verify.stdout, /^verified \d+ chunks \(768\.1 KiB\) of 1 entry\n$/);
    const verifyAll = JSON.parse((await run(['verify', '--json', '--server', url])).stdout) as { bytes: number; damaged: unknown[] };
    assert.deepEqual([verifyAll.bytes, verifyAll.damaged], [data.length, []]);

    const gc = await run(['gc', '--server', url]);
    assert.equal(gc.code, 0);
    assert.match(gc.stdout, /^freed 0 B \(0 entries, 0 ranges, 0 stray files\)\nusing /);

    const rm = await run(['rm', id, '--server', url]);
    assert.equal(rm.code, 0);
    assert.equal(rm.stdout, `removed ${id}\n`);
    assert.equal((await run(['status', id, '--server', url])).code, 4);
    assert.equal((await run(['rm', id, '--server', url])).code, 4);
  });

  test('Ctrl-C during prefetch leaves the entry Paused; a re-run resumes from the stored chunks', async () => {
    const target = upstream.url('/show/s01e02.mkv');
    upstream.options.bytesPerSecond = 256 * 1024;
    try {
      const first = start(['prefetch', target, '--server', url]);
      // Wait (polling the server, which runs in another process) until some chunks are stored.
      let entry: EntryStatus | undefined;
      while (!entry || entry.downloadedBytes < 2 * CHUNK) {
        await sleep(50);
        const list = await getJson<{ entries: EntryStatus[] }>(`${url}/api/entries`);
        entry = list.entries.find((e) => e.url === target);
      }
      first.child.kill('SIGINT');
      const stopped = await first.done;
      assert.equal(stopped.code, 130, stopped.stderr);
      assert.match(stopped.stdout, /^paused: \S+ at \d+\.\d%/);
      const paused = await getJson<EntryStatus>(`${url}/api/entries/${entry.id}`);
      assert.equal(paused.state, 'Paused');
      assert.ok(paused.downloadedBytes > 0 && paused.downloadedBytes < data.length);

      upstream.options.bytesPerSecond = undefined;
      await upstream.waitQuiet();
      upstream.resetStats();
      const again = await run(['prefetch', entry.id, '--json', '--server', url]);
      assert.equal(again.code, 0, again.stderr);
      assert.equal((JSON.parse(again.stdout) as EntryStatus).state, 'Complete');
      assert.equal(upstream.bytesSent(), data.length - paused.downloadedBytes, 'only the missing bytes');
    } finally {
      upstream.options.bytesPerSecond = undefined;
    }
  });

  test('configuration: flags > MEDIACACHE_* env > config file > defaults', async () => {
    const dir = tempDir();
    try {
      const good = path.join(dir, 'good.json');
      const bad = path.join(dir, 'bad.json');
      writeFileSync(good, JSON.stringify({ server: url }));
      writeFileSync(bad, JSON.stringify({ server: 'http://127.0.0.1:1' }));
      assert.equal((await run(['ls', '--config', good])).code, 0, 'file beats the default');
      assert.equal((await run(['ls', '--config', bad], { MEDIACACHE_SERVER: url })).code, 0, 'env beats the file');
      assert.equal((await run(['ls', '--server', url], { MEDIACACHE_SERVER: 'http://127.0.0.1:1' })).code, 0, 'flag beats env');
      assert.equal((await run(['ls'], { MEDIACACHE_CONFIG: bad })).code, 3, 'MEDIACACHE_CONFIG names the file');
      writeFileSync(bad, JSON.stringify({ sever: url }));
      const typo = await run(['ls', '--config', bad]);
      assert.equal(typo.code, 2);
      assert.match(typo.stderr, /unknown option "sever"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
