import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EntryIds, ENTRY_ID, idFromDigest, randomEntryId } from '../../src/cluster/ids.js';
import { StreamUrlSigner } from '../../src/cluster/signed-url.js';
import { parsePublicUrl } from '../../src/cluster/stream-registration.js';
import { mergeEntries, serverList, sumStats, type NodeStats } from '../../src/cli/merge.js';
import type { EntryStatus } from '../../src/status.js';
import { isMediaCacheError } from '../../src/errors.js';

const SECRET = 'unit-test-secret-0123456789';

test('an id is the first 128 bits of a digest, base64url, never starting with "-"', () => {
  const cases: Array<[Buffer, string | null]> = [
    [Buffer.alloc(32, 0), 'AAAAAAAAAAAAAAAAAAAAAA'],
    [Buffer.alloc(32, 0xff), '_____________________w'],
    [Buffer.from([0xf8, ...new Array<number>(31).fill(0)]), null], // 111110… → '-'
    [Buffer.from([0xfc, ...new Array<number>(31).fill(0)]), '_AAAAAAAAAAAAAAAAAAAAA'],
  ];
  for (const [digest, id] of cases) assert.equal(idFromDigest(digest), id, digest.toString('hex'));
});

test('ids from the cache key: the same on every node with the secret, different with another secret or key, 22 characters', () => {
  const a = new EntryIds(SECRET);
  const b = new EntryIds(SECRET);
  const other = new EntryIds(`${SECRET}x`);
  const keys = Array.from({ length: 2000 }, (_, i) => JSON.stringify(['media', 'nas', String(i), null]));
  const ids = keys.map((k) => a.idFor(k));
  assert.deepEqual(
    keys.map((k) => b.idFor(k)),
    ids,
  );
  assert.equal(new Set(ids).size, keys.length);
  for (const id of ids) assert.ok(ENTRY_ID.test(id) && !id.startsWith('-'), id);
  assert.notEqual(other.idFor(keys[0] ?? ''), ids[0]);
  for (let i = 0; i < 200; i++) assert.ok(!randomEntryId().startsWith('-'));
  assert.throws(
    () => new EntryIds('short'),
    (e: unknown) => isMediaCacheError(e, 'MC_ERR_INVALID_INPUT'),
  );
});

test('a signed stream token: round trip, upstream credentials not readable, any change refused with MC_ERR_BAD_SIGNATURE', () => {
  const signer = new StreamUrlSigner(SECRET);
  const id = new EntryIds(SECRET).idFor('k');
  const input = {
    url: 'http://nas:32400/parts/1/file.mkv?X-Plex-Token=SUPERSECRET',
    sourceId: 'nas',
    mediaId: '1',
    quality: 'hi',
    bitrate: 8e6,
  };
  const token = signer.sign(id, input);
  assert.deepEqual(signer.verify(id, token), input);
  assert.deepEqual(new StreamUrlSigner(SECRET).verify(id, token), input, 'any node with the secret verifies it');
  const decoded = Buffer.from(token, 'base64url').toString('latin1');
  assert.ok(!token.includes('SUPERSECRET') && !decoded.includes('SUPERSECRET') && !decoded.includes('nas:32400'));
  const flip = (t: string, at: number): string => t.slice(0, at) + (t[at] === 'A' ? 'B' : 'A') + t.slice(at + 1);
  const bad: Array<[string, string, string | null]> = [
    ['missing token', id, null],
    ['empty token', id, ''],
    ['not base64url', id, 'a+b/c'],
    ['too short', id, 'AAAA'],
    ['ciphertext changed', id, flip(token, 30)],
    ['MAC changed', id, flip(token, token.length - 3)],
    ['another id', new EntryIds(SECRET).idFor('other'), token],
    ['oversized', id, 'A'.repeat(20_000)],
  ];
  for (const [what, forId, t] of bad) {
    assert.throws(
      () => signer.verify(forId, t),
      (e: unknown) => isMediaCacheError(e, 'MC_ERR_BAD_SIGNATURE'),
      what,
    );
  }
  assert.throws(
    () => new StreamUrlSigner(`${SECRET}-other`).verify(id, token),
    (e: unknown) => isMediaCacheError(e, 'MC_ERR_BAD_SIGNATURE'),
  );
});

test('--public-url accepts an http(s) origin only', () => {
  const cases: Array<[string, string | null]> = [
    ['http://media.lan:8080', 'media.lan:8080'],
    ['https://cdn.example.org/', 'cdn.example.org'],
    ['ftp://x', null],
    ['http://user:pw@x', null],
    ['http://x/?a=1', null],
    ['not a url', null],
  ];
  for (const [raw, host] of cases) {
    if (host === null) assert.throws(() => parsePublicUrl(raw), raw);
    else assert.equal(parsePublicUrl(raw).host, host);
  }
});

const entry = (id: string, downloadedBytes: number, createdAt: string): EntryStatus => ({ id, downloadedBytes, createdAt }) as EntryStatus;

test('ls over several nodes: one line per id, the copy with the most bytes, in creation order', () => {
  const merged = mergeEntries([
    { node: 'a', entries: [entry('x', 0, '2025-01-01T00:00:02Z'), entry('y', 5, '2025-01-01T00:00:01Z')] },
    { node: 'b', entries: [entry('x', 10, '2025-01-01T00:00:02Z')] },
    { node: 'c', entries: [entry('y', 5, '2025-01-01T00:00:01Z'), entry('z', 1, '2025-01-01T00:00:01Z')] },
  ]);
  assert.deepEqual(
    merged.map((e) => [e.id, e.node, e.downloadedBytes]),
    [
      ['y', 'a', 5],
      ['z', 'c', 1],
      ['x', 'b', 10],
    ],
  );
  assert.deepEqual(serverList(' http://a:1, http://b:2,,http://a:1 '), ['http://a:1', 'http://b:2']);
});

test('stats over several nodes add up', () => {
  const one = (n: number): NodeStats => ({
    totals: { hits: n, misses: 1, bytesFromCache: 10 * n, bytesFromUpstream: 5, evictions: 0, evictedBytes: 0 },
    disk: { usedBytes: n, freeBytes: 100, diskBytes: 1000, limits: { maxSize: 50, minFree: 2 } },
    entries: n,
  });
  const sum = sumStats([one(1), one(2), one(3)]);
  assert.deepEqual(sum.totals, { hits: 6, misses: 3, bytesFromCache: 60, bytesFromUpstream: 15, evictions: 0, evictedBytes: 0 });
  assert.deepEqual(sum.disk, { usedBytes: 6, freeBytes: 300, diskBytes: 3000, limits: { maxSize: 150, minFree: 6 } });
  assert.equal(sum.entries, 6);
});
