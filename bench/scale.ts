/**
 * Rows 10–14: the index at scale (issue 13). Two data dirs are prepared side by side:
 *
 * - "small": 5 real entries (filled through a proxy over the test upstream, so their files, chunk
 *   rows and CRC-32 checksums are the proxy's own) plus 5 generated ones: 10 entries;
 * - "big": a copy of the same 5 real entries plus generated ones up to `entries` (100,000 in the
 *   full run) and 10 chunk rows per entry on average (1,000,000), written straight into SQLite with
 *   prepared statements in large transactions. Generated entries have no files (nothing reads them).
 *
 * A proxy is started on each the way the other rows start it (`dist/cli.js serve`, its own process)
 * and the same measurements are taken on both; the small one is the baseline column. The parts:
 * scale-data.ts (the data dirs), scale-load.ts (the clients and load rounds), scale-rows.ts (the rows).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Upstream } from '../test/helpers/upstream.js';
import { hasCurl, type ProxyChild, type Row } from './lib.js';
import { copyDataDir, countRows, fillReal, generate } from './scale-data.js';
import { agent, loadRound, log, scrapeTimes, settle, timedStart, useCurl, type Side } from './scale-load.js';
import { rowsOf } from './scale-rows.js';

const MiB = 1024 * 1024;

export interface ScaleSizes {
  entries: number;
  /** Size of each of the 5 players' files. */
  playSize: number;
  /** Load rounds per side (ABBA pairs: short ones follow the machine's other load closely), their length, and the untimed warm-up round's. */
  rounds: number;
  roundMs: number;
  warmUpMs: number;
  /** Timed requests per endpoint (row 10) and timed start-ups per data dir (row 13). */
  scrapeTrials: number;
  starts: number;
  /** How long after the start-up work ends the idle RSS is read (row 14). */
  idleWaitMs: number;
}

export const scaleSizes = (quick: boolean): ScaleSizes =>
  quick
    ? { entries: 2_000, playSize: 16 * MiB, rounds: 2, roundMs: 1_500, warmUpMs: 1_500, scrapeTrials: 5, starts: 2, idleWaitMs: 2_000 }
    : { entries: 100_000, playSize: 64 * MiB, rounds: 8, roundMs: 4_000, warmUpMs: 8_000, scrapeTrials: 9, starts: 3, idleWaitMs: 15_000 };

export const SCALE_ROWS = [10, 11, 12, 13, 14];

/** Rows 10–14 (those `want` asks for). */
export async function scaleRows(up: Upstream, sizes: ScaleSizes, want: (n: number) => boolean): Promise<Row[]> {
  useCurl(hasCurl());
  const mk = (label: string): Side => ({
    label,
    walk: { cursor: null, seen: new Set<string>(), ms: 0 },
    dir: mkdtempSync(path.join(tmpdir(), `mediacache-bench-scale-${label}-`)),
    entries: 0,
    chunkRows: 0,
    streamUrls: [],
    startMs: [],
    quietRss: NaN,
    idleRss: NaN,
    settleMs: NaN,
    scrape: {},
    rounds: [],
  });
  const small = mk('small');
  const big = mk('big');
  try {
    const streamPaths = await fillReal(up, small.dir, sizes.playSize);
    copyDataDir(small.dir, big.dir);
    const real = countRows(path.join(small.dir, 'cache.db'));
    let t0 = performance.now();
    generate(path.join(small.dir, 'cache.db'), 10 - real.entries, 10 * 10 - real.chunkRows);
    generate(path.join(big.dir, 'cache.db'), sizes.entries - real.entries, 10 * sizes.entries - real.chunkRows);
    for (const s of [small, big]) Object.assign(s, countRows(path.join(s.dir, 'cache.db')));
    log(`scale: generated ${big.entries} entries / ${big.chunkRows} chunk rows in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    // Start-ups, alternating; the last one of each side stays up for the other rows.
    for (let i = 0; i < sizes.starts; i++) {
      for (const s of [small, big]) {
        const p = await timedStart(s);
        if (i < sizes.starts - 1) await p.stop();
        else s.proxy = p;
      }
    }
    await Promise.all([small, big].map((s) => settle(s, s.proxy as ProxyChild, sizes.idleWaitMs)));
    for (const s of [small, big]) {
      const p = s.proxy as ProxyChild;
      s.streamUrls = streamPaths.map((sp) => p.url + sp);
      if (want(10)) await scrapeTimes(s, p, sizes.scrapeTrials);
    }
    if (want(11) || want(12)) {
      t0 = performance.now();
      // Untimed: the players' files enter the page cache and both processes' JIT warms up, so the
      // side that runs first is not the one that pays for it (first rounds ran ~15 % slower).
      for (const s of [small, big]) s.warmUp = await loadRound(s, s.proxy as ProxyChild, sizes.warmUpMs);
      // ABBA: S B, B S, S B, … — round r of each side is a pair that ran back to back.
      for (let r = 0; r < sizes.rounds; r++) {
        for (const s of r % 2 ? [big, small] : [small, big]) {
          const round = await loadRound(s, s.proxy as ProxyChild, sizes.roundMs);
          s.rounds.push(round);
          if (process.env.BENCH_DEBUG)
            log(`scale round ${r} ${s.label}: ${JSON.stringify({ ...round, pageMs: round.pageMs.length, scrapeMs: undefined })}`);
        }
      }
      log(`scale: load rounds took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    return rowsOf(small, big, want, sizes);
  } finally {
    for (const s of [small, big]) {
      await s.proxy?.stop();
      // BENCH_SCALE_KEEP=1 keeps the data dirs, to start a proxy on them by hand (profiling).
      if (process.env.BENCH_SCALE_KEEP) log(`scale: kept ${s.dir}`);
      else rmSync(s.dir, { recursive: true, force: true });
    }
    agent.destroy();
  }
}
