import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { sha256, startUpstream, type Upstream } from './helpers/upstream.js';
import { fetchBytes, startProxy, tempDir, type Proxy } from './helpers/harness.js';

const run = promisify(execFile);
const hasFfmpeg = await run('ffprobe', ['-version']).then(
  () => true,
  () => false,
);

/** Duration in seconds as ffprobe reads it from a URL. */
async function duration(url: string): Promise<string> {
  const { stdout } = await run('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', url]);
  return stdout.trim();
}

let upstream: Upstream;
let proxy: Proxy;
let dir: string;

before(async () => {
  if (!hasFfmpeg) return;
  dir = tempDir();
  upstream = await startUpstream();
  proxy = await startProxy({ chunkSize: 64 * 1024 });
});
after(async () => {
  if (!hasFfmpeg) return;
  await proxy.close();
  await upstream.close();
  rmSync(dir, { recursive: true, force: true });
});

// An MP4 without faststart keeps its index (moov) at the end: the player reads the tail first.
test(
  'ffprobe reads the same duration through the proxy as from the upstream',
  { skip: !hasFfmpeg && 'ffprobe not installed' },
  async () => {
    const file = path.join(dir, 'clip.mp4');
    await run('ffmpeg', [
      '-v',
      'error',
      '-f',
      'lavfi',
      '-i',
      'testsrc=duration=4:size=320x240:rate=25',
      '-pix_fmt',
      'yuv420p',
      '-c:v',
      'mpeg4',
      '-q:v',
      '5',
      '-y',
      file,
    ]);
    const data = readFileSync(file);
    upstream.setFile('/clip.mp4', data, { contentType: 'video/mp4' });
    const { streamUrl } = await proxy.add(upstream.url('/clip.mp4'));
    const direct = await duration(upstream.url('/clip.mp4'));
    const proxied = await duration(streamUrl);
    assert.ok(Number(direct) > 3.9, `direct duration ${direct}`);
    assert.equal(proxied, direct);
    const whole = await fetchBytes(streamUrl);
    assert.equal(sha256(whole.body), sha256(data));
  },
);
