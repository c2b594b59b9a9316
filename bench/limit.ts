/**
 * Row 20: a pre-cache under `--limit-rate 2MB/s` while a player seeks on other entries. The
 * pre-cache's rate is its file's size over the time from the request to Complete (measured here,
 * outside the proxy; the upstream's own count and the proxy's per-class counter are reported
 * beside it: the upstream's is higher by what its socket buffers held at each pre-emption); the player's cold seeks are row 2's (64 KiB at 70 % of a fresh entry), each next
 * to the same request direct, spread over the pre-cache.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Upstream } from '../test/helpers/upstream.js';
import { fixtureFile, median, startProxyChild, timeBody, type Row } from './lib.js';

const MB = 1_000_000;
const LIMIT = 2 * MB;
const SEEK = 64 * 1024;

interface Options {
  quick: boolean;
  /** The seek file (row 2's) and its size. */
  media: string;
  mediaSize: number;
  trials: number;
}

let seq = 0;
const fresh = (up: Upstream, file: string, tag: string): string => {
  const p = `/limit-${tag}/${++seq}.bin`;
  up.setFileFromDisk(p, file, { contentType: 'video/mp4' });
  return p;
};

export async function limitRow(up: Upstream, o: Options): Promise<Row> {
  const size = o.quick ? 16 * MB : 30 * MB;
  const precacheFile = fixtureFile('limit', size, 4);
  const dir = mkdtempSync(path.join(tmpdir(), 'mediacache-bench-limit-'));
  const proxy = await startProxyChild(dir, ['--limit-rate', '2MB/s']);
  try {
    const at = Math.floor(o.mediaSize * 0.7);
    const range = `bytes=${at}-${at + SEEK - 1}`;
    /** One cold seek direct and through the proxy, on fresh entries. */
    const seek = async (): Promise<{ direct: number; proxied: number }> => {
      const direct = (await timeBody(up.url(fresh(up, o.media, 'direct')), { range })).ms;
      const viaPath = fresh(up, o.media, 'seek');
      const { id, streamUrl } = await proxy.add(up.url(viaPath));
      const t0 = performance.now();
      const t = await timeBody(streamUrl, { range });
      if (process.env.BENCH_DEBUG) {
        // When the proxy's requests reached the upstream, relative to the player's request.
        const seen = up.requests.filter((r) => r.path === viaPath).map((r) => `${r.range} at +${(r.receivedAt - t0).toFixed(1)} ms`);
        process.stderr.write(`[bench] row 20: seek ${t.ms.toFixed(1)} ms; upstream saw ${seen.join(', ')}\n`);
      }
      if (t.status !== 206 || t.bytes !== SEEK) throw new Error(`row 20: seek got ${t.status}, ${t.bytes} bytes`);
      await proxy.remove(id);
      return { direct, proxied: t.ms };
    };
    // A fresh process: the first requests measure the JIT, not the design (row 2 follows row 1's ten).
    for (let i = 0; i < 5; i++) await seek();

    const p = fresh(up, precacheFile, 'precache');
    const { id } = await proxy.add(up.url(p));
    const stats = async (): Promise<number> => {
      const res = await fetch(`${proxy.url}/api/stats`);
      const body = (await res.json()) as { bandwidth: { upstream: { MEDIUM: { bytes: number } } } };
      return body.bandwidth.upstream.MEDIUM.bytes;
    };
    const mediumBefore = await stats();
    const t0 = performance.now();
    await proxy.prefetch(id);
    // Seeks spread over the pre-cache's expected duration.
    const gapMs = ((size / LIMIT) * 1000) / (o.trials + 1);
    const direct: number[] = [];
    const proxied: number[] = [];
    for (let i = 0; i < o.trials; i++) {
      await sleep(gapMs);
      const s = await seek();
      direct.push(s.direct);
      proxied.push(s.proxied);
    }
    for (;;) {
      const e = await proxy.entry(id);
      if (e.totalBytes !== null && e.downloadedBytes >= e.totalBytes) break;
      if (performance.now() - t0 > (size / LIMIT) * 3000) throw new Error(`row 20: pre-cache not complete: ${JSON.stringify(e)}`);
      await sleep(20);
    }
    const seconds = (performance.now() - t0) / 1000;
    const rate = size / seconds;
    const upstreamRate = up.bytesSent(p) / seconds;
    const proxyRate = ((await stats()) - mediumBefore) / seconds;
    await proxy.remove(id);
    const [pm, dm] = [median(proxied), median(direct)];
    const off = rate / LIMIT - 1;
    return {
      id: 20,
      scenario: `Pre-cache of ${size / MB} MB under --limit-rate 2MB/s while a player seeks (${o.trials} cold seeks of 64 KiB at 70 % on other entries)`,
      // The upstream's count also holds what its socket buffers had taken when a seek pre-empted a
      // paused pre-cache transfer (dropped with the connection; the transfer resumes from its offset).
      proxy: `${(rate / MB).toFixed(2)} MB/s background (upstream wrote ${(upstreamRate / MB).toFixed(2)} MB/s); seek ${pm.toFixed(1)} ms`,
      baseline: `${(LIMIT / MB).toFixed(2)} MB/s limit; seek ${dm.toFixed(1)} ms direct`,
      diff: `${off >= 0 ? '+' : ''}${(off * 100).toFixed(1)} %; ${pm - dm >= 0 ? '+' : ''}${(pm - dm).toFixed(1)} ms`,
      target: 'rate within ±10 %; seek ≤ +10 ms',
      pass: Math.abs(off) <= 0.1 && pm - dm <= 10,
      data: {
        bytesPerSecond: rate,
        upstreamBytesPerSecond: upstreamRate,
        proxyMediumBytesPerSecond: proxyRate,
        seconds,
        proxyMs: proxied,
        directMs: direct,
      },
    };
  } finally {
    await proxy.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
