import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addRange, layoutRanges, removeRange } from '../../web/ranges.js';
import { SseParser } from '../../web/sse-parser.js';
import { DashboardStore } from '../../web/store.js';
import { nameFromUrl } from '../../web/format.js';
import type { EntryMap, EntrySummary, Range, Snapshot, Totals, Transfer } from '../../web/types.js';
import type { ChunkMap, LiveTransfer, Snapshot as LiveSnapshot } from '../../src/live/messages.js';

/**
 * The page keeps its own copy of the stream's types (it cannot import server modules); this fails to
 * compile when what the server sends no longer fits what the page reads.
 */
export const wireTypesAgree = (s: LiveSnapshot, m: ChunkMap, t: LiveTransfer): [Snapshot, EntryMap, Transfer] => [s, m, t];

test('addRange merges what overlaps or touches and keeps the list sorted', () => {
  const cases: Array<[Range[], Range, Range[]]> = [
    [[], [5, 9], [[5, 9]]],
    [[[0, 4]], [5, 9], [[0, 9]]],
    [
      [[0, 3]],
      [5, 9],
      [
        [0, 3],
        [5, 9],
      ],
    ],
    [
      [[10, 19]],
      [0, 4],
      [
        [0, 4],
        [10, 19],
      ],
    ],
    [
      [
        [0, 4],
        [10, 14],
        [20, 24],
      ],
      [3, 21],
      [[0, 24]],
    ],
    [
      [
        [0, 4],
        [20, 24],
      ],
      [10, 14],
      [
        [0, 4],
        [10, 14],
        [20, 24],
      ],
    ],
  ];
  for (const [list, [s, e], want] of cases) assert.deepEqual(addRange(list, s, e), want, JSON.stringify([list, s, e]));
});

test('removeRange cuts ranges, keeping what lies outside', () => {
  const cases: Array<[Range[], Range, Range[]]> = [
    [
      [[0, 99]],
      [10, 19],
      [
        [0, 9],
        [20, 99],
      ],
    ],
    [[[0, 99]], [0, 99], []],
    [
      [
        [0, 9],
        [20, 29],
      ],
      [5, 24],
      [
        [0, 4],
        [25, 29],
      ],
    ],
    [[[0, 9]], [50, 60], [[0, 9]]],
  ];
  for (const [list, [s, e], want] of cases) assert.deepEqual(removeRange(list, s, e), want, JSON.stringify([list, s, e]));
});

test('layoutRanges draws at most one segment per pixel and clips to the zoomed view', () => {
  const fragments: Range[] = Array.from({ length: 10_000 }, (_, i) => [i * 100, i * 100 + 49]);
  const segs = layoutRanges(fragments, 0, 999_999, 100);
  assert.ok(segs.length <= 100, `${segs.length} segments`);
  assert.deepEqual(layoutRanges([[0, 99]], 0, 99, 100), [{ left: 0, width: 100 }]);
  assert.deepEqual(
    layoutRanges(
      [
        [0, 49],
        [150, 199],
      ],
      50,
      149,
      100,
    ),
    [],
  );
  assert.deepEqual(layoutRanges([[0, 99]], 50, 149, 100), [{ left: 0, width: 50 }]);
});

test('the SSE parser joins split messages, keeps the last id, skips comments and accepts CRLF', () => {
  const p = new SseParser();
  assert.deepEqual(p.push(': keep-alive\n\nid: e:1\nevent: tot'), []);
  assert.deepEqual(p.push('als\ndata: {"a":1}\r\n\r'), []);
  assert.deepEqual(p.push('\nevent: entry\ndata: x\ndata: y\n\n'), [
    { id: 'e:1', event: 'totals', data: '{"a":1}' },
    { id: 'e:1', event: 'entry', data: 'x\ny' },
  ]);
});

const totals: Totals = {
  entries: 0,
  disk: { usedBytes: 0, maxBytes: null, minFreeBytes: null, freeBytes: null },
  bytesFromCache: 0,
  bytesFromUpstream: 0,
  hitRatio: null,
  upstreamBytesPerSecond: 0,
  perPriority: { CRITICAL: 0, HIGH: 0, MEDIUM: 0, LOW: 0 },
  downloads: { running: 0, max: 3 },
};
const entry = (id: string): EntrySummary => ({
  id,
  url: `http://x/${id}.mkv`,
  state: 'Downloading',
  totalBytes: 1000,
  downloadedBytes: 0,
  chunkSize: 100,
  version: 1,
  error: null,
  lastAccessed: new Date(0).toISOString(),
  pinned: false,
  pinHeadBytes: null,
  progress: { percent: 0, bytesPerSecond: 0, etaSeconds: null },
  streamUrl: `http://p/stream/${id}`,
});

test('the store counts a gap in the sequence, and none across a snapshot', () => {
  const s = new DashboardStore();
  s.apply(
    'ep:1',
    { type: 'snapshot', data: { epoch: 'ep', totals, entries: [entry('a')], truncated: false, transfers: [], players: [] } },
    0,
  );
  s.apply('ep:2', { type: 'totals', data: totals }, 0);
  assert.equal(s.gaps, 0);
  s.apply('ep:4', { type: 'totals', data: totals }, 0);
  assert.equal(s.gaps, 1);
  s.apply('other:9', { type: 'snapshot', data: { epoch: 'other', totals, entries: [], truncated: false, transfers: [], players: [] } }, 0);
  assert.equal(s.gaps, 1);
  assert.equal(s.entries.size, 0);
});

test('a map fetched late catches up on the chunk messages after its seq, and only those', () => {
  const s = new DashboardStore();
  s.apply(
    'ep:1',
    { type: 'snapshot', data: { epoch: 'ep', totals, entries: [entry('a')], truncated: false, transfers: [], players: [] } },
    0,
  );
  s.wanted.add('a');
  s.apply('ep:2', { type: 'chunk-stored', data: { entryId: 'a', version: 1, start: 0, end: 99 } }, 0);
  s.apply('ep:3', { type: 'chunk-stored', data: { entryId: 'a', version: 1, start: 100, end: 199 } }, 0);
  s.apply('ep:4', { type: 'chunk-removed', data: { entryId: 'a', start: 0, end: 49, reason: 'evicted' } }, 0);
  // The map reflects message 2 (chunk 0 stored) but not 3 and 4.
  s.setMap({
    id: 'a',
    version: 1,
    totalBytes: 1000,
    chunkSize: 100,
    stored: [[0, 99]],
    transfers: [],
    queued: [],
    players: [],
    seq: 'ep:2',
  });
  assert.deepEqual(s.stored('a'), [[50, 199]]);
  s.apply('ep:5', { type: 'chunk-stored', data: { entryId: 'a', version: 2, start: 500, end: 599 } }, 0);
  assert.deepEqual(s.stored('a'), [[50, 199]], 'a range of another version is not this map');
  assert.deepEqual(s.flashesOf('a', 1000), [{ start: 0, end: 49, reason: 'evicted', at: 0 }]);
  assert.deepEqual(s.flashesOf('a', 10_000), []);
});

test('transfers, queues and players follow their messages and leave with their entry', () => {
  const s = new DashboardStore();
  s.apply(
    'ep:1',
    { type: 'snapshot', data: { epoch: 'ep', totals, entries: [entry('a')], truncated: false, transfers: [], players: [] } },
    0,
  );
  s.apply(
    'ep:2',
    {
      type: 'transfer',
      data: { entryId: 'a', chunkIndex: 3, priority: 'CRITICAL', start: 300, end: 399, position: 350, bytesPerSecond: 1 },
    },
    0,
  );
  s.apply('ep:3', { type: 'player', data: { entryId: 'a', playerId: 7, position: 340 } }, 0);
  s.apply('ep:4', { type: 'queue', data: { entryId: 'a', queued: [{ chunkIndex: 4, priority: 'HIGH' }] } }, 0);
  assert.equal(s.transfersOf('a').length, 1);
  assert.deepEqual(s.playersOf('a'), [{ entryId: 'a', playerId: 7, position: 340 }]);
  assert.deepEqual(s.queueOf('a'), [{ chunkIndex: 4, priority: 'HIGH' }]);
  s.apply('ep:5', { type: 'transfer-ended', data: { entryId: 'a', chunkIndex: 3, start: 300, outcome: 'stored' } }, 0);
  assert.equal(s.transfersOf('a').length, 0);
  s.apply('ep:6', { type: 'entry-removed', data: { id: 'a' } }, 0);
  assert.deepEqual([s.entries.size, s.playersOf('a').length, s.queueOf('a').length], [0, 0, 0]);
  assert.equal(s.gaps, 0);
});

test('a chunk split at a seek has two transfers, told apart by their start', () => {
  const s = new DashboardStore();
  const t = (start: number): Transfer => ({
    entryId: 'a',
    chunkIndex: 3,
    priority: 'CRITICAL',
    start,
    end: 399,
    position: start,
    bytesPerSecond: 0,
  });
  s.apply(
    'ep:1',
    { type: 'snapshot', data: { epoch: 'ep', totals, entries: [entry('a')], truncated: false, transfers: [t(300)], players: [] } },
    0,
  );
  s.apply('ep:2', { type: 'transfer', data: t(350) }, 0);
  assert.deepEqual(
    s.transfersOf('a').map((x) => x.start),
    [300, 350],
  );
  s.apply('ep:3', { type: 'transfer-ended', data: { entryId: 'a', chunkIndex: 3, start: 300, outcome: 'preempted' } }, 0);
  assert.deepEqual(
    s.transfersOf('a').map((x) => x.start),
    [350],
  );
});

test('an entry is named by its URL path, decoded, else its host', () => {
  assert.equal(nameFromUrl('http://nas/films/A%20film.mkv?token=%5Bredacted%5D'), 'A film.mkv');
  assert.equal(nameFromUrl('https://host:8096/'), 'host:8096');
  assert.equal(nameFromUrl('not a url'), 'not a url');
});
