import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes, parseBitrate, parseSize } from '../src/units.js';
import { lookaheadChunks } from '../src/policy/scheduling.js';

test('sizes: bytes, decimal and binary units; anything else is undefined', () => {
  assert.equal(parseSize('1048576'), 1048576);
  assert.equal(parseSize('10MiB'), 10 * 2 ** 20);
  assert.equal(parseSize('64MB'), 64e6);
  assert.equal(parseSize('1.5GiB'), 1.5 * 2 ** 30);
  for (const bad of ['', 'ten', '-1', '5 parsecs', '1e3']) assert.equal(parseSize(bad), undefined, bad);
  assert.equal(formatBytes(10 * 2 ** 20), '10.0 MiB');
  assert.equal(formatBytes(512), '512 B');
});

test('bitrates in bits per second: 8000000, 8M, 8Mbps, 800kbps, 1.5G', () => {
  assert.equal(parseBitrate('8000000'), 8e6);
  assert.equal(parseBitrate('8M'), 8e6);
  assert.equal(parseBitrate('8Mbps'), 8e6);
  assert.equal(parseBitrate('800kbps'), 8e5);
  assert.equal(parseBitrate('1.5G'), 1.5e9);
  assert.equal(parseBitrate('20 Mb/s'), 2e7);
  for (const bad of ['', '0', 'fast', '8MB', '-3M', '8Tbps']) assert.equal(parseBitrate(bad), undefined, bad);
});

test('lookahead: seconds of playback when the bitrate is known (at least one chunk), else the fixed count', () => {
  const fixed = { lookaheadChunks: 10, lookaheadSeconds: 60 };
  const chunkSize = 10 * 2 ** 20;
  assert.equal(lookaheadChunks({ bitrate: null, chunkSize }, fixed), 10);
  // 4 Mbit/s for 60 s = 30 MB = 2.9 chunks of 10 MiB → 3; 80 Mbit/s (4K) → 600 MB → 58.
  assert.equal(lookaheadChunks({ bitrate: 4e6, chunkSize }, fixed), 3);
  assert.equal(lookaheadChunks({ bitrate: 80e6, chunkSize }, fixed), 58);
  assert.equal(lookaheadChunks({ bitrate: 1000, chunkSize }, fixed), 1);
});
