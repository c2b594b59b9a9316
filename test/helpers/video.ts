/** A generated test video (ffmpeg, as `.ci/run` installs it) for the browser tests. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const hasFfmpeg = await run('ffmpeg', ['-version']).then(
  () => true,
  () => false,
);
export const videoSkip = !hasFfmpeg && !process.env.CI ? 'ffmpeg is not installed' : false;

/** A 30 s H.264 MP4 (faststart, a keyframe a second) and the byte offset of the keyframe at `at` seconds. */
export async function makeVideo(dir: string, at: number): Promise<{ data: Buffer; seekByte: number }> {
  const file = path.join(dir, 'video.mp4');
  // prettier-ignore
  await run('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc=duration=30:size=640x360:rate=25', '-c:v', 'libx264', '-preset', 'ultrafast',
    '-pix_fmt', 'yuv420p', '-b:v', '2M', '-maxrate', '2M', '-bufsize', '1M', '-g', '25', '-movflags', '+faststart', '-y', file]);
  const { stdout } = await run('ffprobe', [
    '-v',
    'error',
    '-select_streams',
    'v',
    '-show_entries',
    'packet=pts_time,pos,flags',
    '-of',
    'csv=p=0',
    file,
  ]);
  let seekByte = -1;
  for (const line of stdout.trim().split('\n')) {
    const [time, pos, flags] = line.split(',');
    if (flags?.startsWith('K') && Number(time) <= at) seekByte = Number(pos);
  }
  assert.ok(seekByte > 0, 'ffprobe lists the keyframes');
  return { data: readFileSync(file), seekByte };
}
