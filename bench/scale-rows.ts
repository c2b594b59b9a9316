/** The rows 10–14 computed from both sides' measurements (bench/scale.ts). */
import { median, percentile, type Row } from './lib.js';
import type { ScaleSizes } from './scale.js';
import { ENDPOINTS, PAGE_EVERY_MS, ms, type Round, type Side } from './scale-load.js';

const MiB = 1024 * 1024;

/**
 * The lag histogram's growth over the rounds (last scrape minus first, summed): how many samples,
 * the share over 10 ms, and the smallest bucket bound holding 99 % of them (p99 ≤ that bound).
 */
function lagOver(rounds: Round[]): { buckets: Map<string, number>; samples: number; over10: number; p99Bound: number } {
  const buckets = new Map<string, number>();
  for (const r of rounds) {
    for (const [le, n] of r.lagTo) buckets.set(le, (buckets.get(le) ?? 0) + n - (r.lagFrom.get(le) ?? 0));
  }
  const samples = buckets.get('+Inf') ?? 0;
  const at10 = buckets.get('0.01') ?? 0;
  const bounds = [...buckets.entries()].filter(([le]) => le !== '+Inf').sort((a, b) => Number(a[0]) - Number(b[0]));
  const p99Bound = Number(bounds.find(([, n]) => samples > 0 && n / samples >= 0.99)?.[0] ?? Infinity);
  return { buckets, samples, over10: samples ? (samples - at10) / samples : 1, p99Bound };
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

export function rowsOf(small: Side, big: Side, want: (n: number) => boolean, { playSize, idleWaitMs, warmUpMs }: ScaleSizes): Row[] {
  const out: Row[] = [];
  const N = big.entries.toLocaleString('en-US');
  const rowsN = big.chunkRows.toLocaleString('en-US');
  const at = `${N} entries, ${rowsN} chunk rows`;
  if (want(10)) {
    const m = (s: Side): number[] => ENDPOINTS.map((e) => median(s.scrape[e] ?? []));
    const [bm, sm] = [m(big), m(small)];
    out.push({
      id: 10,
      scenario: `Scrape at ${at}: \`/metrics\` / \`GET /api/stats\` / first page of \`GET /api/entries\` (500), median of ${big.scrape['/metrics']?.length}`,
      proxy: bm.map(ms).join(' / '),
      baseline: `${sm.map(ms).join(' / ')} at ${small.entries} entries`,
      diff: `max ${ms(Math.max(...bm))}`,
      target: 'each ≤ 50 ms',
      pass: bm.every((x) => x <= 50),
      data: { big: big.scrape, small: small.scrape },
    });
  }
  const loop = (s: Side) => {
    const p99 = s.rounds.flatMap((r) => r.loopP99);
    const max = s.rounds.flatMap((r) => r.loopMax);
    return { ...lagOver(s.rounds), worstWindowP99: Math.max(...p99), worstMax: Math.max(...max), medianWindowP99: median(p99) };
  };
  const [bl, sl] = [loop(big), loop(small)];
  const pages = big.rounds.flatMap((r) => r.pageMs).sort((a, b) => a - b);
  const walks = sum(big.rounds.map((r) => r.walks));
  const walkErrors = [big, small].flatMap((s) => [...(s.warmUp?.walkErrors ?? []), ...s.rounds.flatMap((r) => r.walkErrors)]);
  const rounds = big.rounds.length;
  const roundS = rounds ? big.rounds[0]?.seconds.toFixed(0) : '0';
  const load = `5 players streaming cached files at full speed, \`/metrics\` every 100 ms, paging through all entries (a page of 500 every ${PAGE_EVERY_MS} ms); ${rounds} rounds of ${roundS} s per side in ABBA order with the 10-entry proxy, after an untimed ${(warmUpMs / 1000).toFixed(0)} s warm-up round on each`;
  if (want(11)) {
    const d = (x: number): number => x * 1000;
    const pct = (x: number): string => `${(x * 100).toFixed(2)} %`;
    out.push({
      id: 11,
      scenario: `Event-loop delay at ${at} (${load}): p99 of all ${bl.samples} samples of the proxy's 10 ms sampler under load (\`mediacache_event_loop_lag_seconds\` bucket deltas); per-scrape windows (~10 samples each) beside it`,
      proxy: `p99 ≤ ${ms(d(bl.p99Bound))} (${pct(bl.over10)} of samples over 10 ms); windows: median p99 ${ms(d(bl.medianWindowP99))}, worst ${ms(d(bl.worstWindowP99))}, max ${ms(d(bl.worstMax))}; ${walks} full walks, page p50 ${ms(percentile(pages, 50))} p99 ${ms(percentile(pages, 99))}`,
      baseline: `10 entries: p99 ≤ ${ms(d(sl.p99Bound))} (${pct(sl.over10)} over 10 ms), worst window ${ms(d(sl.worstWindowP99))}`,
      diff: `${pct(bl.over10 - sl.over10)} over 10 ms`,
      target: 'p99 ≤ 10 ms',
      pass: walkErrors.length === 0 && walks > 0 && bl.samples > 0 && bl.over10 <= 0.01,
      data: {
        big: {
          lag: Object.fromEntries(bl.buckets),
          windowP99: big.rounds.flatMap((r) => r.loopP99),
          windowMax: big.rounds.flatMap((r) => r.loopMax),
          walks,
          walkMs: big.rounds.flatMap((r) => r.walkMs),
          pageMs: { p50: percentile(pages, 50), p99: percentile(pages, 99), max: pages.at(-1) },
        },
        small: { lag: Object.fromEntries(sl.buckets), windowP99: small.rounds.flatMap((r) => r.loopP99) },
        walkErrors,
        scrapeMs: big.rounds.flatMap((r) => r.scrapeMs),
      },
    });
  }
  if (want(12)) {
    const rate = (s: Side): number => sum(s.rounds.map((r) => r.bytes)) / sum(s.rounds.map((r) => r.seconds));
    const [b, s] = [rate(big), rate(small)];
    // Round r of each side ran back to back (ABBA): their ratio compares like with like, whatever
    // the machine did in between; the median of the pairs is what the target reads.
    const perRound = (side: Side): number[] => side.rounds.map((r) => r.bytes / r.seconds);
    const [bigRounds, smallRounds] = [perRound(big), perRound(small)];
    const ratios = bigRounds.map((x, i) => x / (smallRounds[i] ?? NaN));
    const ratio = median(ratios);
    const gbps = (x: number): string => `${(x / 1e9).toFixed(2)} GB/s`;
    out.push({
      id: 12,
      scenario: `Players' throughput at ${at} (${load}; ${(playSize / MiB).toFixed(0)} MiB files): median over the ${ratios.length} ABBA pairs of a round's bytes/s at ${N} entries ÷ the adjacent round's at 10 entries; totals beside it`,
      proxy: `${gbps(b)} (${sum(big.rounds.map((r) => r.reads))} reads)`,
      baseline: `${gbps(s)} at 10 entries (${sum(small.rounds.map((r) => r.reads))} reads)`,
      diff: `median ${ratio.toFixed(2)} × (pairs ${ratios.map((x) => x.toFixed(2)).join(', ')}; totals ${(b / s).toFixed(2)} ×)`,
      target: '≥ 0.95 ×',
      pass: ratio >= 0.95,
      data: {
        big: bigRounds,
        small: smallRounds,
        ratios,
        bigTotal: b,
        smallTotal: s,
        warmUp: {
          big: big.warmUp && big.warmUp.bytes / big.warmUp.seconds,
          small: small.warmUp && small.warmUp.bytes / small.warmUp.seconds,
        },
      },
    });
  }
  if (want(13)) {
    const [b, s] = [median(big.startMs), median(small.startMs)];
    out.push({
      id: 13,
      scenario: `Start-up at ${at}: process spawn to first \`/healthz\` 200, median of ${big.startMs.length}`,
      proxy: `${(b / 1000).toFixed(3)} s`,
      baseline: `${(s / 1000).toFixed(3)} s at 10 entries`,
      diff: `+${(b - s).toFixed(0)} ms`,
      target: '≤ 0.5 s',
      pass: b <= 500,
      data: { bigMs: big.startMs, smallMs: small.startMs },
    });
  }
  if (want(14)) {
    const m = (x: number): string => `${(x / MiB).toFixed(1)} MiB`;
    const idleS = (idleWaitMs / 1000).toFixed(0);
    out.push({
      id: 14,
      scenario: `Idle RSS at ${at}, ${idleS} s after the start-up work ended (counters read, then CPU quiet for 1 s)`,
      proxy: `${m(big.idleRss)} (${m(big.quietRss)} when the work ended, ${(big.settleMs / 1000).toFixed(1)} s after \`/healthz\`)`,
      baseline: `${m(small.idleRss)} at 10 entries (${m(small.quietRss)})`,
      diff: `+${m(big.idleRss - small.idleRss)}`,
      target: '≤ 120 MiB',
      pass: big.idleRss <= 120 * MiB,
      data: {
        bigRss: big.idleRss,
        smallRss: small.idleRss,
        bigQuietRss: big.quietRss,
        smallQuietRss: small.quietRss,
        bigSettleMs: big.settleMs,
        smallSettleMs: small.settleMs,
      },
    });
  }
  return out;
}
