import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BandwidthSnapshot } from '../src/download/bandwidth.js';
import { makeData, sha256, startUpstream, type Upstream } from './helpers/upstream.js';
import { fetchBytes, getJson, getRange, startProxy, tempDir, type Proxy } from './helpers/harness.js';
import { runCli, startCli } from './helpers/cli-process.js';

const MiB = 1024 * 1024;
const MB = 1_000_000;
const CHUNK = 512 * 1024;
const TRANSFERS = 3;
/**
 * What may pass beyond rate × window: the bucket's capacity (a tenth of a second of the rate), the
 * piece each transfer holds while it waits (≤ 64 KiB), and what sits in the sockets. The upstream
 * counts bytes as written into its socket, and on loopback the kernel's buffers take a whole
 * reply of 512 KiB before backpressure reaches it: up to one chunk per transfer is in flight.
 * Plus 256 KiB of slack.
 */
const burst = (rate: number): number => rate / 10 + TRANSFERS * (64 * 1024 + CHUNK) + 256 * 1024;
/** The window each test measures (long enough for the budget to dwarf the burst only in a failing run). */
const WINDOW_MS = 2000;

/** Bytes the upstream sent for `p` during `work`, and how long it took (the test's own window). */
async function measured(up: Upstream, p: string, work: () => Promise<void>): Promise<{ bytes: number; seconds: number }> {
  const before = up.bytesSent(p);
  const t0 = performance.now();
  await work();
  return { bytes: up.bytesSent(p) - before, seconds: (performance.now() - t0) / 1000 };
}

const prefetch = (proxy: Proxy, id: string): Promise<unknown> =>
  fetchBytes(`${proxy.server.url}/api/entries/${id}/prefetch`, { method: 'POST', headers: { 'content-type': 'application/json' } });

describe('bandwidth limits (--limit-rate, --limit-rate-all)', () => {
  let upstream: Upstream;
  const data = makeData(40 * MiB + 123, 21);
  let n = 0;
  /** A fresh path per test: every entry starts cold. */
  const fresh = (): string => {
    const p = `/limit/${++n}.mkv`;
    upstream.setFile(p, data, { contentType: 'video/x-matroska' });
    return p;
  };

  before(async () => {
    upstream = await startUpstream();
  });
  after(async () => {
    await upstream.close();
  });

  const limited = (extra: Parameters<typeof startProxy>[0] = {}): Promise<Proxy> =>
    startProxy({ chunkSize: CHUNK, maxConcurrentDownloads: TRANSFERS, backgroundFill: false, maxSize: 1e9, minFree: 0, ...extra });

  test('a limited pre-cache: its upstream bytes over a window stay within rate × window + one burst, and status shows it', async () => {
    const rate = 2 * MB;
    const proxy = await limited({ limitRate: '2MB/s' });
    try {
      const p = fresh();
      const { id } = await proxy.add(upstream.url(p));
      const window = await measured(upstream, p, async () => {
        await prefetch(proxy, id);
        await sleep(WINDOW_MS);
      });
      assert.ok(window.bytes > 0, 'the pre-cache runs');
      const budget = rate * window.seconds + burst(rate);
      assert.ok(window.bytes <= budget, `${window.bytes} bytes in ${window.seconds.toFixed(2)} s: over the budget of ${budget}`);

      const stats = await getJson<{ bandwidth: BandwidthSnapshot }>(`${proxy.server.url}/api/stats`);
      assert.deepEqual(stats.bandwidth.limitRate, { timetable: '2MB/s', bytesPerSecond: rate, next: null });
      assert.equal(stats.bandwidth.limitRateAll, null);
      assert.ok(stats.bandwidth.upstream.MEDIUM.bytes > 0);
      assert.equal(stats.bandwidth.upstream.CRITICAL.bytes, 0);
      assert.ok(stats.bandwidth.upstream.MEDIUM.bytesPerSecond > 0);
      const metrics = (await fetchBytes(`${proxy.server.url}/metrics`)).body.toString();
      assert.match(metrics, /^mediacache_limit_rate_bytes_per_second\{scope="background"\} 2000000$/m);
      assert.doesNotMatch(metrics, /mediacache_limit_rate_bytes_per_second\{scope="all"\}/);
      const medium = /^mediacache_upstream_bytes_total\{priority="MEDIUM"\} (\d+)$/m.exec(metrics);
      assert.ok(medium && Number(medium[1]) >= stats.bandwidth.upstream.MEDIUM.bytes);
      assert.match(metrics, /^mediacache_upstream_bytes_total\{priority="CRITICAL"\} 0$/m);
    } finally {
      await proxy.close();
    }
  });

  test('a reader of the same limited entry is not limited: its bytes arrive beyond the budget, byte-exact', async () => {
    const rate = 2 * MB;
    const proxy = await limited({ limitRate: '2MB/s' });
    try {
      const p = fresh();
      const { id, streamUrl } = await proxy.add(upstream.url(p));
      await prefetch(proxy, id);
      let body: Buffer = Buffer.alloc(0);
      const window = await measured(upstream, p, async () => {
        body = (await fetchBytes(streamUrl)).body;
      });
      assert.equal(sha256(body), sha256(data));
      // Under the background limit, this window would allow at most `budget` bytes.
      const budget = rate * window.seconds + burst(rate);
      assert.ok(window.bytes > budget, `${window.bytes} bytes in ${window.seconds.toFixed(2)} s: no more than the budget of ${budget}`);
      const { upstream: up } = (await getJson<{ bandwidth: BandwidthSnapshot }>(`${proxy.server.url}/api/stats`)).bandwidth;
      assert.ok(up.CRITICAL.bytes + up.HIGH.bytes > 0, 'playback bytes are counted as such');
    } finally {
      await proxy.close();
    }
  });

  test('--limit-rate-all limits a reader too: its upstream bytes stay within the budget', async () => {
    const rate = 4 * MB;
    const proxy = await limited({ limitRateAll: 4 * MB });
    try {
      const p = fresh();
      const { streamUrl } = await proxy.add(upstream.url(p));
      const want = 8 * MiB;
      let body: Buffer = Buffer.alloc(0);
      const window = await measured(upstream, p, async () => {
        body = (await getRange(streamUrl, `bytes=0-${want - 1}`)).body;
      });
      assert.equal(sha256(body), sha256(data.subarray(0, want)));
      const budget = rate * window.seconds + burst(rate);
      assert.ok(window.bytes <= budget, `${window.bytes} bytes in ${window.seconds.toFixed(2)} s: over the budget of ${budget}`);
      const { limitRateAll } = (await getJson<{ bandwidth: BandwidthSnapshot }>(`${proxy.server.url}/api/stats`)).bandwidth;
      assert.equal(limitRateAll?.bytesPerSecond, rate);
    } finally {
      await proxy.close();
    }
  });

  test('raising a limited transfer to CRITICAL mid-transfer removes the limit at once (the same request goes on)', async () => {
    // 1 kB/s: once its first pieces are in, the background transfer would wait minutes per piece.
    const proxy = await limited({ limitRate: '1kB/s', chunkSize: 4 * MiB, waitTimeoutMs: 15_000 });
    try {
      const p = fresh();
      const { id, streamUrl } = await proxy.add(upstream.url(p));
      await prefetch(proxy, id);
      // Every transfer of the pre-cache holds a piece and waits for the limit (minutes per piece).
      const running = (): number => proxy.cache.inspect().transfers.filter((t) => t.entryId === id).length;
      while (running() === 0 || proxy.cache.statistics().bandwidth.waiting < running()) await sleep(5);
      const res = await getRange(streamUrl, `bytes=0-${4 * MiB - 1}`);
      assert.equal(res.status, 206);
      assert.equal(sha256(res.body), sha256(data.subarray(0, 4 * MiB)));
      const first = upstream.requests.filter((r) => r.path === p && r.range?.startsWith('bytes=0-'));
      assert.equal(first.length, 1, 'chunk 0 came in the one request the pre-cache started');
    } finally {
      await proxy.close();
    }
  });
});

describe('bandwidth limit options on the command line', () => {
  test('a bad rate or timetable is a usage error (exit 2) naming the culprit and the code, from a flag, the env or the config file', async () => {
    const dataDir = tempDir();
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [['--limit-rate', 'fast'], {}, /"fast" is not a rate.*MC_ERR_INVALID_INPUT/],
      [['--limit-rate-all', '08:00,1M 24:00,off'], {}, /24:00 is not a time of day/],
      [[], { MEDIACACHE_LIMIT_RATE: 'Mon-8:00,1M Fun-09:00,off' }, /"Fun" is not a day/],
    ];
    for (const [args, env, message] of cases) {
      const r = await runCli(['serve', '--port', '0', '--data-dir', dataDir, ...args], env);
      assert.equal(r.code, 2, `${args.join(' ')} ${JSON.stringify(env)}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    const config = path.join(dataDir, 'bad.json');
    writeFileSync(config, JSON.stringify({ 'limit-rate': '2lightyears' }));
    const r = await runCli(['serve', '--port', '0', '--data-dir', dataDir, '--config', config]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /"limit-rate".*is not a rate/);
  });

  test('serve takes a timetable from the config file; status and stats show the limit and its next switch', async () => {
    const dataDir = tempDir();
    writeFileSync(path.join(dataDir, 'config.json'), JSON.stringify({ limitRate: '00:00,1MB 12:00,2MB', limitRateAll: 50_000_000 }));
    const server = startCli(['serve', '--port', '0', '--data-dir', dataDir]);
    try {
      const url = await server.url;
      if (!url) assert.fail((await server.done).stderr);
      const status = await runCli(['status', '--server', url]);
      assert.equal(status.code, 0, status.stderr);
      assert.match(
        status.stdout,
        /^limit: background [12]\.00 MB\/s \([12]\.00 MB\/s from \w{3} (00|12):00\), all 50\.00 MB\/s; upstream now: CRITICAL 0 B\/s, HIGH 0 B\/s, MEDIUM 0 B\/s, LOW 0 B\/s$/m,
      );
      const stats = await runCli(['stats', '--server', url]);
      assert.equal(stats.code, 0, stats.stderr);
      assert.match(stats.stdout, /^limit \(background\): +[12]\.00 MB\/s \([12]\.00 MB\/s from \w{3} (00|12):00\)$/m);
      assert.match(stats.stdout, /^limit \(all\): +50\.00 MB\/s$/m);
      const json = await getJson<{ bandwidth: BandwidthSnapshot }>(`${url}/api/stats`);
      assert.equal(json.bandwidth.limitRate?.timetable, '00:00,1MB 12:00,2MB');
      assert.ok(json.bandwidth.limitRate?.next && Date.parse(json.bandwidth.limitRate.next.at) > Date.now());
    } finally {
      server.child.kill('SIGTERM');
      await server.done;
    }
  });
});
