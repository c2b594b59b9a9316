/**
 * `node --import tsx bench/cold-trace.ts [trials] [--seek]`: where the milliseconds of a cold
 * request go (bench rows 1–2). The same request goes direct and through the proxy (upstream in its
 * own process, 30 ms latency, 20 MB/s), and each step's median time since the client sent its
 * request is printed: request parsed, entry looked up, transfer started, upstream request sent,
 * upstream received it, upstream headers in, size recorded, first body piece in, first body byte
 * written, client got headers and 64 KiB. The proxy's steps come from bench/trace-preload.mjs.
 */
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixtureFile, median, startProxyChild } from './lib.js';
import { startUpstreamChild } from './upstream-child.js';

const args = process.argv.slice(2);
const trials = Number(args.find((a) => /^\d+$/.test(a)) ?? 30);
const SIZE = 24_000_000;
const range = args.includes('--seek') ? `bytes=${Math.floor(SIZE * 0.7)}-${Math.floor(SIZE * 0.7) + 65_535}` : undefined;
const WARM_UP = 3;
const now = (): number => performance.timeOrigin + performance.now();

/** Client-side steps of one request that stops after 64 KiB of body. */
function timed(url: string): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const steps: Record<string, number> = { 'client sends': now() };
    const req = http.get(url, { agent: false, headers: range ? { range } : {} }, (res) => {
      steps['client got headers'] = now();
      let bytes = 0;
      res.on('data', (piece: Buffer) => {
        bytes += piece.length;
        if (bytes < 65_536 || steps['client got 64 KiB']) return;
        steps['client got 64 KiB'] = now();
        req.destroy();
        resolve(steps);
      });
    });
    req.on('error', reject);
  });
}

const media = fixtureFile('media', SIZE, 1);
const up = await startUpstreamChild({ latencyMs: 30, bytesPerSecond: 20_000_000 });
const dataDir = mkdtempSync(path.join(tmpdir(), 'mediacache-trace-'));
process.env.BENCH_PROXY_NODE_ARGS = `--import ${fileURLToPath(new URL('./trace-preload.mjs', import.meta.url))}`;
const proxy = await startProxyChild(dataDir);
const sides: Record<'direct' | 'proxy', Record<string, number[]>> = { direct: {}, proxy: {} };
let seq = 0;
try {
  for (let i = -WARM_UP; i < trials; i++) {
    for (const side of ['direct', 'proxy'] as const) {
      const file = `/${side}/${++seq}.bin`;
      await up.setFileFromDisk(file, media);
      const added = side === 'proxy' ? await proxy.add(up.url(file)) : undefined;
      const steps = await timed(added ? added.streamUrl : up.url(file));
      const [seen] = await up.requests(file);
      if (seen) steps['upstream received it'] = seen.receivedAt;
      if (added) {
        Object.assign(steps, (await (await fetch(`${proxy.url}/__trace`)).json()) as Record<string, number>);
        await proxy.remove(added.id);
      }
      const t0 = steps['client sends'] ?? 0;
      if (i >= 0) for (const [step, at] of Object.entries(steps)) (sides[side][step] ??= []).push(at - t0);
    }
  }
} finally {
  await proxy.stop();
  await up.close();
  rmSync(dataDir, { recursive: true, force: true });
}

const row = (side: 'direct' | 'proxy'): Array<[string, number]> =>
  Object.entries(sides[side])
    .map(([step, xs]): [string, number] => [step, median(xs)])
    .sort((a, b) => a[1] - b[1]);
console.log(`${range ? 'cold seek (64 KiB at 70 %)' : 'cold first 64 KiB'}, median of ${trials}, ms since the client sent its request`);
for (const side of ['direct', 'proxy'] as const) {
  console.log(`\n${side}`);
  for (const [step, ms] of row(side)) console.log(`  ${ms.toFixed(2).padStart(7)}  ${step}`);
}
const last = (side: 'direct' | 'proxy'): number => median(sides[side]['client got 64 KiB'] ?? []);
console.log(`\nproxy − direct: +${(last('proxy') - last('direct')).toFixed(2)} ms`);
