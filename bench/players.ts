/**
 * Rows 16–19 (issue 14): real players through the proxy next to the same players direct, on media
 * generated here with Debian's ffmpeg (moov-at-end MP4s, cached under the OS temp dir between runs,
 * never committed). Their own upstream: 20 ms latency, 4 MB/s per response, the link of the issue.
 *
 * - 16 / 17: mpv (`--start=20 --end=22`), GStreamer (`souphttpsrc ! qtdemux ! avdec_h264`, the first
 *   50 frames: gst-launch cannot seek) and `ffmpeg -ss 20 … -frames:v 1`, each on a cold entry, wall
 *   time of the player's process, proxy ÷ direct (median of the trials, alternating sides).
 * - 18: a forward seek of 5 MiB inside a chunk a player is downloading, next to the same seek direct.
 * - 19: 20 cold 200 MB entries probed with ffprobe under `--background-fill played`: upstream bytes
 *   against what the same probes read direct plus the opening work, and none once they have ended.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startUpstream, type Upstream } from '../test/helpers/upstream.js';
import { median, timeBody, type ProxyChild, type Row } from './lib.js';

export const PLAYER_ROWS = [16, 17, 18, 19];

const MB = 1_000_000;
const MiB = 1024 * 1024;
const KiB = 1024;
const LATENCY_MS = 20;
const RATE = 4 * MB;

export interface PlayerBenchContext {
  quick: boolean;
  log(line: string): void;
  /** Runs `fn` against a fresh proxy process (own data dir) started with `extra` serve options. */
  withProxy<T>(extra: string[], fn: (proxy: ProxyChild) => Promise<T>): Promise<T>;
}

/** Trials per player (BENCH_PLAYER_TRIALS overrides), file size (loops of the small file), seeks, probes. */
function sizes(quick: boolean): { trials: number; loops: number; seekTrials: number; probes: number } {
  const base = quick ? { trials: 1, loops: 4, seekTrials: 3, probes: 3 } : { trials: 7, loops: 41, seekTrials: 7, probes: 20 };
  return { ...base, trials: Number(process.env.BENCH_PLAYER_TRIALS) || base.trials };
}

// ---- media ----------------------------------------------------------------------------------------

/** Whether `cmd` is on the PATH. */
const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/** The media directory shared with bench/lib.ts fixtures: outside the repository, kept between runs. */
const MEDIA_DIR = path.join(tmpdir(), 'mediacache-bench-data');

function ffmpegTo(file: string, args: string[]): string {
  if (existsSync(file) && statSync(file).size > 0) return file;
  mkdirSync(MEDIA_DIR, { recursive: true });
  const part = `${file}.part.mp4`;
  const r = spawnSync('ffmpeg', ['-nostdin', '-hide_banner', '-loglevel', 'error', '-y', ...args, part], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ffmpeg failed: ${r.stderr}`);
  renameSync(part, file);
  return file;
}

/**
 * 30 s of 640×360 H.264 at 1.5 Mbit/s + AAC, ~6 MB, `moov` at the end (ffmpeg's default without
 * `+faststart`): one 10 MiB chunk. ~1 s of ultrafast encoding.
 */
function smallMp4(): string {
  return ffmpegTo(path.join(MEDIA_DIR, 'players-small-v1.mp4'), [
    ...['-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'],
    ...['-t', '30', '-c:v', 'libx264', '-preset', 'ultrafast', '-b:v', '1500k', '-maxrate', '1500k', '-bufsize', '3000k'],
    ...['-g', '50', '-c:a', 'aac', '-b:a', '64k'],
  ]);
}

/**
 * The small file looped `loops` times with `-c copy`, a second of work. 41 loops: 20.5 min, 247.5 MB,
 * a 697 KB moov at the end of a 6.3 MB tail chunk, so the opening's download of that chunk (from its
 * start) is 5.6 MB behind the moov when a player asks for it.
 */
function largeMp4(loops: number): string {
  const small = smallMp4();
  return ffmpegTo(path.join(MEDIA_DIR, `players-large-v1-x${loops}.mp4`), [
    ...['-stream_loop', String(loops - 1), '-i', small, '-c', 'copy'],
  ]);
}

// ---- players --------------------------------------------------------------------------------------

interface Player {
  name: string;
  bin: string;
  args(url: string): string[];
}

const PLAYERS: Player[] = [
  {
    name: 'mpv',
    bin: 'mpv',
    args: (url) => ['--no-config', '--really-quiet', '--vo=null', '--ao=null', '--start=20', '--end=22', url],
  },
  {
    name: 'GStreamer',
    bin: 'gst-launch-1.0',
    // gst-launch has no seek: the pipeline reads the head, qtdemux seeks to the moov at the end and
    // back, then 50 frames (2 s) are decoded and identity ends the stream.
    args: (url) => [
      '-q',
      'souphttpsrc',
      `location=${url}`,
      '!',
      'qtdemux',
      '!',
      'avdec_h264',
      '!',
      'identity',
      'eos-after=50',
      '!',
      'fakesink',
    ],
  },
  {
    name: 'ffmpeg',
    bin: 'ffmpeg',
    args: (url) => ['-nostdin', '-hide_banner', '-loglevel', 'error', '-ss', '20', '-i', url, '-frames:v', '1', '-f', 'null', '-'],
  },
];

/** Runs a player to its end (asynchronously: the upstream lives in this process) and times it. */
function runPlayer(bin: string, args: string[]): Promise<{ ms: number; code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ ms: performance.now() - t0, code, stderr });
    });
  });
}

let seq = 0;
function servePath(up: Upstream, file: string, tag: string): string {
  const p = `/${tag}/${++seq}.mp4`;
  up.setFileFromDisk(p, file, { contentType: 'video/mp4' });
  return p;
}

/** The upstream's requests for `p`, relative to `t0`: where the time goes (BENCH_DEBUG=1). */
function requestLog(up: Upstream, p: string, t0: number): string {
  return up.requests
    .filter((r) => r.path === p)
    .map((r) => `${r.range ?? 'whole'} +${(r.receivedAt - t0).toFixed(0)} ms ${(r.bytesSent / KiB).toFixed(0)} KiB`)
    .join('; ');
}

interface PlayerTimes {
  name: string;
  direct: number[];
  proxy: number[];
  ratio: number;
}

/** One player: alternating direct and proxied runs, each on a fresh path (a cold entry for the proxy). */
async function timePlayer(
  ctx: PlayerBenchContext,
  up: Upstream,
  proxy: ProxyChild,
  file: string,
  player: Player,
  trials: number,
): Promise<PlayerTimes> {
  const direct: number[] = [];
  const viaProxy: number[] = [];
  for (let i = 0; i < trials; i++) {
    const dp = servePath(up, file, `${player.bin}-direct`);
    const t0 = performance.now();
    const d = await runPlayer(player.bin, player.args(up.url(dp)));
    if (d.code !== 0) throw new Error(`${player.name} direct exited ${d.code}: ${d.stderr}`);
    if (process.env.BENCH_DEBUG) ctx.log(`${player.name} direct ${d.ms.toFixed(0)} ms: ${requestLog(up, dp, t0)}`);
    const pp = servePath(up, file, player.bin);
    const { id, streamUrl } = await proxy.add(up.url(pp));
    const t1 = performance.now();
    const p = await runPlayer(player.bin, player.args(streamUrl));
    if (p.code !== 0) throw new Error(`${player.name} via proxy exited ${p.code}: ${p.stderr}`);
    if (process.env.BENCH_DEBUG) ctx.log(`${player.name} proxy ${p.ms.toFixed(0)} ms: ${requestLog(up, pp, t1)}`);
    await proxy.remove(id); // its transfers stop: the next trial has the upstream to itself
    await up.waitQuiet(200);
    direct.push(d.ms);
    viaProxy.push(p.ms);
  }
  return { name: player.name, direct, proxy: viaProxy, ratio: median(viaProxy) / median(direct) };
}

async function withUpstream<T>(fn: (up: Upstream) => Promise<T>): Promise<T> {
  const up = await startUpstream({ latencyMs: LATENCY_MS, bytesPerSecond: RATE });
  try {
    return await fn(up);
  } finally {
    await up.close();
  }
}

/** Players (and ffmpeg, which makes the media) not installed here. */
const missingPlayers = (): string[] => [...new Set([...PLAYERS.map((p) => p.bin), 'ffmpeg'])].filter((bin) => !has(bin));

const signed = (x: number): string => (x >= 0 ? '+' : '') + x.toFixed(0);

function skipped(ctx: PlayerBenchContext, id: number, scenario: string, why: string): Row {
  ctx.log(`row ${id} skipped: ${why}`);
  return { id, scenario, proxy: 'skipped', baseline: why, diff: '', target: '', pass: null, data: { skipped: why } };
}

/** Rows 16 (≈ 6 MB) and 17 (≥ 200 MB): each player through the proxy ÷ direct, target ≤ 1.10 ×. */
export async function playersRow(ctx: PlayerBenchContext, id: 16 | 17): Promise<Row> {
  const { trials, loops } = sizes(ctx.quick);
  const missing = missingPlayers();
  const scenario = `Real players on a cold moov-at-end MP4`;
  if (missing.length) return skipped(ctx, id, scenario, `not installed: ${missing.join(', ')}`);
  const file = id === 16 ? smallMp4() : largeMp4(loops);
  const size = statSync(file).size;
  return withUpstream((up) =>
    ctx.withProxy([], async (proxy) => {
      const results: PlayerTimes[] = [];
      // BENCH_PLAYERS=ffmpeg,mpv runs some of them (for looking into one).
      const only = process.env.BENCH_PLAYERS?.toLowerCase().split(',');
      for (const player of PLAYERS.filter((p) => !only || only.includes(p.name.toLowerCase()))) {
        results.push(await timePlayer(ctx, up, proxy, file, player, trials));
      }
      const fmt = (xs: number[]): string => `${(median(xs) / 1000).toFixed(2)} s`;
      const worst = Math.max(...results.map((r) => r.ratio));
      return {
        id,
        scenario: `${scenario} of ${(size / MB).toFixed(1)} MB (upstream ${LATENCY_MS} ms, 4 MB/s per response): mpv --start=20 --end=22 / GStreamer 50 frames / ffmpeg -ss 20 one frame, median of ${trials}`,
        proxy: results.map((r) => `${r.name} ${fmt(r.proxy)}`).join('; '),
        baseline: results.map((r) => `${fmt(r.direct)}`).join(' / ') + ' direct',
        // mpv's figure includes 2 s of playback at real speed: the difference in ms says more.
        diff: results.map((r) => `${r.ratio.toFixed(2)} × (${signed(median(r.proxy) - median(r.direct))} ms)`).join(' / '),
        target: '≤ 1.10 × each',
        pass: worst <= 1.1,
        data: { bytes: size, players: results },
      };
    }),
  );
}

// ---- row 18: a forward seek inside a running chunk -------------------------------------------------

/** A player reading from byte 0 at the upstream's pace; resolves once `bytes` arrived, stop() ends it. */
function startReading(url: string, bytes: number): Promise<{ stop(): void }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      let got = 0;
      const stop = (): void => void req.destroy();
      res.on('data', (d: Buffer) => {
        if (got < bytes && (got += d.length) >= bytes) resolve({ stop });
      });
      res.on('error', () => {});
    });
    req.on('error', reject);
  });
}

/** Row 18: 64 KiB at +5 MiB while a player streams the same chunk from 0, next to the same seek direct. */
export async function seekInRunningChunk(ctx: PlayerBenchContext): Promise<Row> {
  const { seekTrials, loops } = sizes(ctx.quick);
  if (!has('ffmpeg')) return skipped(ctx, 18, 'Forward seek inside a running chunk', 'ffmpeg not installed');
  const file = largeMp4(loops);
  const at = 5 * MiB;
  const range = `bytes=${at}-${at + 64 * KiB - 1}`;
  return withUpstream((up) =>
    ctx.withProxy([], async (proxy) => {
      const direct: number[] = [];
      const viaProxy: number[] = [];
      const seekOnce = async (url: string): Promise<number> => {
        const playing = await startReading(url, 64 * KiB);
        try {
          const t = await timeBody(url, { range });
          if (t.status !== 206 || t.bytes !== 64 * KiB) throw new Error(`row 18: status ${t.status}, ${t.bytes} bytes`);
          return t.ms;
        } finally {
          playing.stop();
        }
      };
      // One untimed round per side first: the JIT of a fresh process, not the design.
      for (let i = -1; i < seekTrials; i++) {
        const d = await seekOnce(up.url(servePath(up, file, 'seek-direct')));
        const pp = servePath(up, file, 'seek');
        const { id, streamUrl } = await proxy.add(up.url(pp));
        const t0 = performance.now();
        const p = await seekOnce(streamUrl);
        if (process.env.BENCH_DEBUG) ctx.log(`row 18: ${p.toFixed(1)} ms (direct ${d.toFixed(1)}): ${requestLog(up, pp, t0)}`);
        await proxy.remove(id);
        await up.waitQuiet(200);
        if (i < 0) continue;
        direct.push(d);
        viaProxy.push(p);
      }
      const [p, d] = [median(viaProxy), median(direct)];
      return {
        id: 18,
        scenario: `Forward seek of 5 MiB inside a running chunk (a player streams the chunk from byte 0; 64 KiB body complete; upstream ${LATENCY_MS} ms, 4 MB/s), median of ${seekTrials}`,
        proxy: `${p.toFixed(1)} ms`,
        baseline: `${d.toFixed(1)} ms direct`,
        diff: `+${(p - d).toFixed(1)} ms`,
        target: '≤ +10 ms',
        pass: p - d <= 10,
        data: { proxyMs: viaProxy, directMs: direct },
      };
    }),
  );
}

// ---- row 19: probes fetch what they read --------------------------------------------------------

function probe(url: string): Promise<{ ms: number; code: number | null; stderr: string }> {
  return runPlayer('ffprobe', ['-v', 'error', '-show_format', '-show_streams', url]);
}

/**
 * Row 19: a library scan. The same probes direct measure what ffprobe reads (the upstream's bytes
 * sent, in-flight bytes of abandoned requests included); through the proxy under the default
 * `--background-fill played`, upstream bytes may add the opening work (head and tail chunk, at most
 * one chunk each), and nothing may arrive once the probes have ended.
 */
export async function probeScan(ctx: PlayerBenchContext): Promise<Row> {
  const { probes, loops } = sizes(ctx.quick);
  if (!has('ffprobe')) return skipped(ctx, 19, 'ffprobe scan', 'ffprobe not installed');
  const file = largeMp4(loops);
  const size = statSync(file).size;
  return withUpstream((up) =>
    ctx.withProxy([], async (proxy) => {
      const directPaths = Array.from({ length: probes }, () => servePath(up, file, 'probe-direct'));
      for (const p of directPaths) {
        const r = await probe(up.url(p));
        if (r.code !== 0) throw new Error(`ffprobe direct exited ${r.code}: ${r.stderr}`);
      }
      await up.waitQuiet(500);
      const read = directPaths.reduce((sum, p) => sum + up.bytesSent(p), 0);
      const proxyPaths = Array.from({ length: probes }, () => servePath(up, file, 'probe'));
      const t0 = performance.now();
      for (const p of proxyPaths) {
        const { streamUrl } = await proxy.add(up.url(p));
        const r = await probe(streamUrl);
        if (r.code !== 0) throw new Error(`ffprobe via proxy exited ${r.code}: ${r.stderr}`);
      }
      const probesMs = performance.now() - t0;
      const upstreamBytes = (): number => proxyPaths.reduce((sum, p) => sum + up.bytesSent(p), 0);
      const atEnd = upstreamBytes();
      const quietMs = ctx.quick ? 1000 : 3000;
      await sleep(quietMs);
      const later = upstreamBytes();
      if (process.env.BENCH_DEBUG) for (const p of proxyPaths.slice(0, 3)) ctx.log(`row 19 ${p}: ${requestLog(up, p, t0)}`);
      const chunk = 10 * MiB;
      const tail = size % chunk || chunk;
      const opening = probes * (chunk + tail);
      const budget = read + opening;
      const mib = (x: number): string => `${(x / MiB).toFixed(1)} MiB`;
      return {
        id: 19,
        scenario: `ffprobe scan: ${probes} cold ${(size / MB).toFixed(0)} MB entries probed one after another under --background-fill played (upstream ${LATENCY_MS} ms, 4 MB/s), upstream bytes when the probes ended and ${quietMs / 1000} s later`,
        proxy: `${mib(atEnd)} upstream, +${mib(later - atEnd)} after the probes (${(probesMs / 1000).toFixed(1)} s)`,
        baseline: `${mib(read)} read by the probes direct + ${mib(opening)} opening (head and tail chunk each)`,
        diff: `${(atEnd / budget).toFixed(2)} × budget`,
        target: '≤ read + opening, 0 B after',
        pass: later <= budget && later === atEnd,
        data: {
          probes,
          entryBytes: size,
          directReadBytes: read,
          openingBytes: opening,
          upstreamAtEnd: atEnd,
          upstreamLater: later,
          probesMs,
        },
      };
    }),
  );
}
