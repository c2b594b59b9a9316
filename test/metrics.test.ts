import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeData, sha256, startUpstream } from './helpers/upstream.js';
import { fetchBytes, startProxy, waitComplete } from './helpers/harness.js';

/** The value of one sample line of a Prometheus text exposition. */
function sample(text: string, line: string): number {
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? Number.NaN : Number(found.slice(line.length + 1));
}

test('/metrics exposes totals, entry states and first-byte times in Prometheus format', async () => {
  const upstream = await startUpstream();
  const data = makeData(200_000, 61);
  upstream.setFile('/m.mp4', data);
  const proxy = await startProxy({ chunkSize: 64 * 1024 });
  try {
    const { id, streamUrl } = await proxy.add(upstream.url('/m.mp4?api_key=secret'));
    assert.equal(sha256((await fetchBytes(streamUrl)).body), sha256(data));
    await waitComplete(proxy, id);
    assert.equal(sha256((await fetchBytes(streamUrl, { headers: { range: 'bytes=100000-' } })).body), sha256(data.subarray(100000)));
    const res = await fetchBytes(`${proxy.server.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    const text = res.body.toString();
    assert.equal(sample(text, 'mediacache_entries{state="Complete"}'), 1);
    assert.ok(sample(text, 'mediacache_stored_bytes') === data.length);
    assert.ok(sample(text, 'mediacache_downloads_active') === 0);
    assert.ok(sample(text, 'mediacache_first_byte_seconds_count{kind="play"}') >= 1, 'play first byte observed');
    assert.ok(sample(text, 'mediacache_first_byte_seconds_count{kind="seek"}') >= 1, 'seek first byte observed');
    assert.ok(!text.includes('secret'), 'no upstream credentials in metrics');
  } finally {
    await proxy.close();
    await upstream.close();
  }
});
