import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeData, sha256, startUpstream } from './helpers/upstream.js';
import { fetchBytes, getRange, startProxy } from './helpers/harness.js';

const CHUNK = 64 * 1024;
const upstream = await startUpstream();
after(() => upstream.close());

test('redirects (relative 302, then absolute 307) are followed with the same Range; bytes exact', async () => {
  const data = makeData(5 * CHUNK + 123, 71);
  upstream.setFile('/cdn/film.mkv', data);
  upstream.setRedirect('/signed', upstream.url('/cdn/film.mkv'), 307);
  upstream.setRedirect('/play/film.mkv', '../signed', 302);
  const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false });
  try {
    const { streamUrl } = await proxy.add(upstream.url('/play/film.mkv'));
    const part = await getRange(streamUrl, `bytes=${2 * CHUNK + 7}-${3 * CHUNK + 99}`);
    assert.equal(part.status, 206);
    assert.equal(sha256(part.body), sha256(data.subarray(2 * CHUNK + 7, 3 * CHUNK + 100)));
    const whole = await fetchBytes(streamUrl);
    assert.equal(sha256(whole.body), sha256(data));
    const hops = upstream.requests.filter((r) => r.path !== '/cdn/film.mkv');
    assert.ok(hops.length > 0 && hops.every((r) => r.status === 302 || r.status === 307));
    const finals = upstream.requests.filter((r) => r.path === '/cdn/film.mkv');
    assert.ok(finals.length > 0 && finals.every((r) => r.status === 206 && r.range?.startsWith('bytes=')), 'Range kept');
  } finally {
    await proxy.close();
  }
});

test('a redirect loop fails fast after 5 hops with a 502 JSON error', async () => {
  upstream.setRedirect('/loop-a', '/loop-b');
  upstream.setRedirect('/loop-b', '/loop-a');
  const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false });
  try {
    const { id, streamUrl } = await proxy.add(upstream.url('/loop-a'));
    upstream.resetStats();
    const res = await fetchBytes(streamUrl);
    assert.equal(res.status, 502);
    assert.match(res.body.toString(), /more than 5 redirects/);
    assert.equal(upstream.requests.length, 6, 'one request and five hops, no retries');
    assert.equal(proxy.cache.getEntry(id)?.state, 'Failed');
  } finally {
    await proxy.close();
  }
});
