/**
 * Row 15: the live event stream (issue 11). A data dir with 1,000 entries (generated straight into
 * SQLite as rows 10–14 do) and one cached entry, served by the proxy in its own process; 5 entries
 * pre-cache over the bench upstream (its 30 ms latency, paced at 4 MB/s per response, so 5 transfers
 * stay active the whole row). One event-stream client counts the messages for a while with only the
 * transfers moving (a stream read is a player: two messages more); then in alternating rounds a
 * cached stream is read with curl while one event-stream client is connected or not. The row
 * reports the message rate and the cached stream's throughput with the client against without it.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Upstream } from '../test/helpers/upstream.js';
import { SqliteRepository } from '../src/db/sqlite-repository.js';
import { fixtureFile, hasCurl, median, startProxyChild, timeBody, type ProxyChild, type Row } from './lib.js';
import { generate } from './scale-data.js';

const MB = 1_000_000;
const MiB = 1024 * 1024;
const TRANSFERS = 5;
/** The target: messages a second on the stream with 1,000 entries and 5 transfers. */
const MAX_MSG_PER_S = 50;
const MIN_RATIO = 0.95;

export interface DashboardSizes {
  entries: number;
  /** Each pre-caching entry's file (large enough to outlast the row). */
  loadSize: number;
  /** The cached entry read for throughput. */
  cachedSize: number;
  /** How long the message rate is measured. */
  rateMs: number;
  /** Throughput rounds per side and the least time a round lasts. */
  rounds: number;
  roundMs: number;
}

export const dashboardSizes = (quick: boolean): DashboardSizes =>
  quick
    ? { entries: 1_000, loadSize: 48 * MiB, cachedSize: 16 * MiB, rateMs: 2_000, rounds: 1, roundMs: 1_000 }
    : { entries: 1_000, loadSize: 512 * MiB, cachedSize: 256 * MiB, rateMs: 10_000, rounds: 4, roundMs: 5_000 };

const log = (s: string): void => void process.stderr.write(`[bench] ${s}\n`);

/** One event-stream client that only counts (messages, bytes); the snapshot is timed apart. */
interface Counter {
  messages: number;
  bytes: number;
  snapshotMs: number;
  snapshotBytes: number;
  /** Messages by type. */
  byType: Record<string, number>;
  close(): void;
}

function countEvents(url: string): Promise<Counter> {
  const MARK = '\nevent: ';
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.get(url, { headers: { accept: 'text/event-stream' } }, (res) => {
      const counter: Counter = { messages: 0, bytes: 0, snapshotMs: 0, snapshotBytes: 0, byType: {}, close: () => req.destroy() };
      let head = ''; // the first frame (the snapshot) until its blank line
      let tail = ''; // the last characters of the previous read, so a mark split across reads counts once
      res.setEncoding('utf8');
      res.on('data', (text: string) => {
        if (counter.snapshotMs === 0) {
          head += text;
          const end = head.indexOf('\n\n');
          if (end < 0) return;
          counter.snapshotMs = performance.now() - t0;
          counter.snapshotBytes = end + 2;
          text = head.slice(end + 2);
        }
        counter.bytes += text.length;
        const window = tail + text;
        const parts = window.split(MARK);
        counter.messages += parts.length - 1;
        for (const part of parts.slice(1)) {
          const type = part.slice(0, part.indexOf('\n') >>> 0);
          counter.byType[type] = (counter.byType[type] ?? 0) + 1;
        }
        tail = window.slice(-(MARK.length - 1));
      });
      resolve(counter);
    });
    req.on('error', reject);
  });
}

/** curl reads a whole body, in its own process and asynchronously (the upstream runs in this one). */
function curl(url: string): Promise<{ bytes: number; seconds: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['-s', '-o', '/dev/null', '-w', '%{size_download} %{time_total} %{http_code}', url]);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', () => {
      const [bytes = 0, seconds = 0, code = 0] = out.trim().split(' ').map(Number);
      if (code !== 200 || !bytes || !seconds) reject(new Error(`curl ${url}: ${out}`));
      else resolve({ bytes, seconds });
    });
  });
}

async function throughput(url: string): Promise<{ bytes: number; seconds: number }> {
  if (hasCurl()) return curl(url);
  const t = await timeBody(url);
  return { bytes: t.bytes, seconds: t.ms / 1000 };
}

async function waitComplete(proxy: ProxyChild, id: string, timeoutMs: number): Promise<void> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const e = await proxy.entry(id);
    if (e.totalBytes !== null && e.downloadedBytes >= e.totalBytes) return;
    if (performance.now() > until) throw new Error(`entry not complete: ${JSON.stringify(e)}`);
    await sleep(100);
  }
}

export async function dashboardRow(up: Upstream, workDir: string, sizes: DashboardSizes): Promise<Row> {
  const dir = mkdtempSync(path.join(workDir, 'dashboard-'));
  const dbFile = path.join(dir, 'cache.db');
  new SqliteRepository(dbFile).close(); // the schema
  generate(dbFile, sizes.entries, sizes.entries * 10);
  const saved = { ...up.options };
  const proxy = await startProxyChild(dir, ['--max-concurrent-downloads', String(TRANSFERS), '--background-fill', 'never']);
  try {
    // The cached entry, stored by one full play at the upstream's full speed.
    up.options.bytesPerSecond = undefined;
    up.setFileFromDisk('/dash/cached.mkv', fixtureFile('dash-cached', sizes.cachedSize, 15), { contentType: 'video/x-matroska' });
    const cached = await proxy.add(up.url('/dash/cached.mkv'));
    const played = await timeBody(cached.streamUrl);
    if (played.bytes !== sizes.cachedSize) throw new Error(`cached entry: played ${played.bytes} of ${sizes.cachedSize} bytes`);
    await waitComplete(proxy, cached.id, 60_000);

    // Five pre-caches (5 transfers at all times: the slots are 5), paced like a remote server.
    Object.assign(up.options, saved, { bytesPerSecond: 4 * MB });
    const load = fixtureFile('dash-load', sizes.loadSize, 16);
    for (let k = 0; k < TRANSFERS; k++) {
      up.setFileFromDisk(`/dash/load-${k}.mkv`, load, { contentType: 'video/x-matroska' });
      const { id } = await proxy.add(up.url(`/dash/load-${k}.mkv`));
      await proxy.prefetch(id);
    }
    await sleep(1_500);

    // The stream's rate with only the 5 transfers moving (no player: each read below is a player,
    // two more messages).
    const watcher = await countEvents(`${proxy.url}/api/events`);
    while (watcher.snapshotMs === 0) await sleep(10);
    const snapshot = { ms: watcher.snapshotMs, bytes: watcher.snapshotBytes };
    const t0 = performance.now();
    await sleep(sizes.rateMs);
    const seconds = (performance.now() - t0) / 1000;
    watcher.close();
    const { messages, bytes, byType } = watcher;
    log(`row 15: ${messages} messages in ${seconds.toFixed(1)} s, by type ${JSON.stringify(byType)}`);

    // A cached stream's throughput, in alternating rounds with one event client connected or none,
    // after one untimed read (the first read of a file is slower for reasons of its own).
    await throughput(cached.streamUrl);
    const sides = { without: [] as number[], with: [] as number[] };
    for (let r = 0; r < 2 * sizes.rounds; r++) {
      const withClient = r % 2 === 1;
      const client = withClient ? await countEvents(`${proxy.url}/api/events`) : undefined;
      while (client && client.snapshotMs === 0) await sleep(10);
      const start = performance.now();
      const rates: number[] = [];
      while (performance.now() - start < sizes.roundMs) {
        const t = await throughput(cached.streamUrl);
        rates.push(t.bytes / t.seconds);
      }
      client?.close();
      (withClient ? sides.with : sides.without).push(median(rates));
      log(`row 15 round ${r + 1}: ${withClient ? 'with' : 'without'} the event client, ${(median(rates) / MB).toFixed(0)} MB/s`);
    }
    const msgPerS = messages / seconds;
    const withRate = median(sides.with);
    const withoutRate = median(sides.without);
    const ratio = withRate / withoutRate;
    return {
      id: 15,
      scenario: `live event stream: ${sizes.entries} entries, ${TRANSFERS} transfers at 4 MB/s each; msg/s on the stream, and a cached stream's throughput with one event client vs none`,
      proxy: `${msgPerS.toFixed(1)} msg/s (${(bytes / seconds / 1024).toFixed(1)} KiB/s); ${(withRate / MB).toFixed(0)} MB/s with the client`,
      baseline: `${(withoutRate / MB).toFixed(0)} MB/s without`,
      diff: `${ratio.toFixed(2)}×`,
      target: `≤ ${MAX_MSG_PER_S} msg/s and ≥ ${MIN_RATIO}× throughput`,
      pass: msgPerS <= MAX_MSG_PER_S && ratio >= MIN_RATIO,
      data: {
        entries: sizes.entries,
        transfers: TRANSFERS,
        messages,
        seconds,
        msgPerSecond: msgPerS,
        byType,
        streamBytesPerSecond: bytes / seconds,
        snapshotMs: snapshot.ms,
        snapshotBytes: snapshot.bytes,
        throughputWith: sides.with,
        throughputWithout: sides.without,
        ratio,
      },
    };
  } finally {
    await proxy.stop();
    Object.assign(up.options, saved);
    rmSync(dir, { recursive: true, force: true });
  }
}
