import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { MediaCache, type CacheOptions, type EntryStatus } from '../src/cache.js';
import { startServer } from '../src/server/http-server.js';
import type { ChunkMap, LiveEntry, LiveTransfer, Snapshot } from '../src/live/messages.js';
import { makeData, sha256, startUpstream, type Upstream } from './helpers/upstream.js';
import { fetchBytes, getJson, startProxy, tempDir, type Proxy } from './helpers/harness.js';
import { connectSse, type SseClient, type SseMessage } from './helpers/sse.js';
import { runCli, startCli } from './helpers/cli-process.js';

const CHUNK = 64 * 1024;
const JSON_TYPE = { 'content-type': 'application/json' };

const isComplete = (id: string) => (m: SseMessage) =>
  m.event === 'entry' && (m.data as LiveEntry).id === id && (m.data as LiveEntry).state === 'Complete';

/** Every message's seq is the one before it plus one (a snapshot carries the seq it reflects). */
function assertContinuous(messages: readonly SseMessage[]): void {
  for (let i = 1; i < messages.length; i++) {
    const prev = messages[i - 1] as SseMessage;
    const m = messages[i] as SseMessage;
    assert.equal(m.seq, prev.seq + 1, `message ${i} (${m.event}) follows ${prev.seq}`);
    assert.equal(m.id.split(':')[0], prev.id.split(':')[0], 'one epoch');
  }
}

/** Union of inclusive ranges, coalesced. */
function union(ranges: ReadonlyArray<readonly [number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const [s, e] of [...ranges].sort((a, b) => a[0] - b[0])) {
    const last = out[out.length - 1];
    if (last && s <= last[1] + 1) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

/** A proxy with one event-stream client connected from the start; both closed after `run`. */
async function watchProxy(options: CacheOptions, run: (proxy: Proxy, sse: SseClient) => Promise<void>): Promise<void> {
  const proxy = await startProxy(options);
  try {
    const sse = await connectSse(`${proxy.server.url}/api/events`);
    try {
      await run(proxy, sse);
    } finally {
      sse.close();
    }
  } finally {
    await proxy.close();
  }
}

async function prefetch(proxy: Proxy, id: string): Promise<void> {
  const res = await fetchBytes(`${proxy.server.url}/api/entries/${id}/prefetch`, { method: 'POST', headers: JSON_TYPE });
  assert.equal(res.status, 202);
}

describe('GET /api/events: the live event stream', () => {
  let upstream: Upstream;
  const film = makeData(11 * CHUNK + 777, 5);

  before(async () => {
    upstream = await startUpstream();
    upstream.setFile('/film.mkv', film, { contentType: 'video/x-matroska' });
  });
  after(() => upstream.close());

  test('a fresh connection gets a snapshot, then the deltas of an add and a pre-cache until Complete: one chunk-stored per chunk', async () => {
    await watchProxy(
      { chunkSize: CHUNK, backgroundFill: false, maxConcurrentDownloads: 16, maxSize: 1e9, minFree: 0 },
      async (proxy, sse) => {
        assert.equal(sse.status, 200);
        const first = await sse.waitFor(() => true);
        assert.equal(first.event, 'snapshot');
        const snapshot = first.data as Snapshot;
        assert.deepEqual(snapshot.entries, []);
        assert.equal(snapshot.truncated, false);
        assert.equal(first.id, `${snapshot.epoch}:${first.seq}`);
        assert.equal(snapshot.totals.downloads.max, 16);

        upstream.options.bytesPerSecond = 256 * 1024;
        const { id, streamUrl } = await proxy.add(upstream.url('/film.mkv'));
        const added = await sse.waitFor((m) => m.event === 'entry' && (m.data as LiveEntry).id === id);
        assert.equal((added.data as LiveEntry).state, 'NotStarted');
        assert.equal((added.data as LiveEntry).streamUrl, streamUrl);
        await prefetch(proxy, id);
        await sse.waitFor(isComplete(id));
        upstream.options.bytesPerSecond = undefined;

        const messages = sse.messages;
        assertContinuous(messages);
        const stored = messages
          .filter((m) => m.event === 'chunk-stored')
          .map((m) => m.data as { entryId: string; start: number; end: number; version: number });
        assert.equal(stored.length, 12, 'one chunk-stored per chunk');
        assert.ok(stored.every((s) => s.entryId === id && s.version === 1));
        assert.deepEqual(union(stored.map((s) => [s.start, s.end])), [[0, film.length - 1]]);
        const started = messages.filter(
          (m) => m.event === 'transfer' && (m.data as LiveTransfer).position === (m.data as LiveTransfer).start,
        );
        const ended = messages.filter((m) => m.event === 'transfer-ended').map((m) => m.data as { outcome: string });
        assert.equal(ended.length, 12);
        assert.ok(ended.every((e) => e.outcome === 'stored'));
        assert.ok(started.length >= 12);
        const queues = messages
          .filter((m) => m.event === 'queue')
          .map((m) => m.data as { entryId: string; queued: Array<{ chunkIndex: number; priority: string }> });
        assert.ok(queues.every((q) => q.entryId === id));
        const lastStart = Math.max(...started.map((m) => m.seq));
        await sse.waitFor((m) => m.event === 'queue' && m.seq > lastStart && (m.data as { queued: unknown[] }).queued.length === 0);
        const totals = messages.filter((m) => m.event === 'totals');
        assert.ok(totals.length >= 1);

        // The map at the end agrees with the entry as the API shows it.
        const map = await getJson<ChunkMap>(`${proxy.server.url}/api/entries/${id}/map`);
        const entry = await getJson<EntryStatus>(`${proxy.server.url}/api/entries/${id}`);
        assert.deepEqual(map.stored, entry.chunks);
        assert.deepEqual(map.stored, [[0, film.length - 1]]);
        assert.equal(map.totalBytes, entry.totalBytes);
        assert.equal(map.version, entry.version);
        assert.equal(map.chunkSize, CHUNK);
        assert.deepEqual(map.transfers, []);
        assert.deepEqual(map.queued, []);
        assert.match(map.seq, new RegExp(`^${snapshot.epoch}:\\d+$`));
      },
    );
  });

  test('a map taken mid-download plus the chunk-stored messages after its seq give the stored ranges at the end', async () => {
    await watchProxy(
      { chunkSize: CHUNK, backgroundFill: false, maxConcurrentDownloads: 2, maxSize: 1e9, minFree: 0 },
      async (proxy, sse) => {
        const { id } = await proxy.add(upstream.url('/film.mkv'));
        upstream.options.bytesPerSecond = 128 * 1024; // 0.5 s a chunk: queued chunks wait a few seconds
        await prefetch(proxy, id);
        await sse.waitFor((m) => m.event === 'chunk-stored');
        const mid = await getJson<ChunkMap>(`${proxy.server.url}/api/entries/${id}/map`);
        assert.ok(mid.stored.length > 0);
        assert.ok(mid.transfers.length > 0 || mid.queued.length > 0, 'work under way');
        assert.ok(mid.queued.every((q) => q.priority === 'MEDIUM' || q.priority === 'HIGH'));
        await sse.waitFor(isComplete(id));
        upstream.options.bytesPerSecond = undefined;
        const midSeq = Number(mid.seq.split(':')[1]);
        const later = sse.messages
          .filter((m) => m.seq > midSeq && m.event === 'chunk-stored')
          .map((m) => m.data as { start: number; end: number });
        const queues = sse.messages
          .filter((m) => m.event === 'queue')
          .map((m) => m.data as { queued: Array<{ chunkIndex: number; priority: string }> });
        assert.ok(
          queues.some((q) => q.queued.some((c) => c.priority === 'MEDIUM')),
          'the pre-cache queued at MEDIUM, shown while two slots are busy',
        );
        for (const q of queues)
          assert.deepEqual(
            q.queued.map((c) => c.chunkIndex),
            [...q.queued.map((c) => c.chunkIndex)].sort((a, b) => a - b),
          );
        const rebuilt = union([...mid.stored, ...later.map((c): [number, number] => [c.start, c.end])]);
        const entry = await getJson<EntryStatus>(`${proxy.server.url}/api/entries/${id}`);
        assert.deepEqual(rebuilt, entry.chunks);
        assert.deepEqual(rebuilt, [[0, film.length - 1]]);
      },
    );
  });

  test('a client that reconnects with Last-Event-ID gets exactly the messages it missed; an unknown or future id gets a snapshot', async () => {
    const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false, maxConcurrentDownloads: 16, maxSize: 1e9, minFree: 0 });
    const clients: SseClient[] = [];
    try {
      const watcher = await connectSse(`${proxy.server.url}/api/events`);
      clients.push(watcher);
      const leaver = await connectSse(`${proxy.server.url}/api/events`);
      clients.push(leaver);
      upstream.options.bytesPerSecond = 256 * 1024;
      const { id } = await proxy.add(upstream.url('/film.mkv'));
      await prefetch(proxy, id);
      await leaver.waitFor((m) => m.event === 'chunk-stored');
      leaver.close();
      await leaver.ended;
      const lastSeen = leaver.messages.at(-1) as SseMessage;
      await watcher.waitFor((m) => m.event === 'chunk-stored' && m.seq > lastSeen.seq + 3);

      const back = await connectSse(`${proxy.server.url}/api/events`, { 'last-event-id': lastSeen.id });
      clients.push(back);
      await watcher.waitFor(isComplete(id));
      const end = (watcher.messages.at(-1) as SseMessage).seq;
      await back.waitFor((m) => m.seq === end);
      upstream.options.bytesPerSecond = undefined;
      assert.notEqual(back.messages[0]?.event, 'snapshot', 'no snapshot: the missed messages were all held');
      assert.equal(back.messages[0]?.seq, lastSeen.seq + 1, 'no gap');
      assertContinuous(back.messages);
      const expected = watcher.messages.filter((m) => m.seq > lastSeen.seq && m.seq <= end);
      assert.deepEqual(
        back.messages.filter((m) => m.seq <= end).map((m) => [m.id, m.event, m.data]),
        expected.map((m) => [m.id, m.event, m.data]),
        'exactly what the connected client got after that id',
      );

      // The newest id: nothing missed, nothing replayed, and the stream goes on live.
      const newest = watcher.messages.at(-1) as SseMessage;
      const current = await connectSse(`${proxy.server.url}/api/events`, { 'last-event-id': newest.id });
      clients.push(current);
      const epoch = lastSeen.id.split(':')[0] ?? '';
      for (const bad of ['otherepoch:5', `${epoch}:99999999`, 'garbage']) {
        const c = await connectSse(`${proxy.server.url}/api/events`, { 'last-event-id': bad });
        clients.push(c);
        const first = await c.waitFor(() => true);
        assert.equal(first.event, 'snapshot', bad);
        assert.equal((first.data as Snapshot).entries[0]?.id, id);
        assert.equal((first.data as Snapshot).entries[0]?.state, 'Complete');
      }
      await proxy.cache.removeEntry(id);
      const removed = await current.waitFor((m) => m.event === 'entry-removed');
      assert.deepEqual(removed.data, { id });
      assert.equal(current.messages[0]?.seq, newest.seq + 1, 'the first message after the newest id is the next one');
      assertContinuous(current.messages);
      assert.ok(current.messages.every((m) => m.event !== 'snapshot'));
    } finally {
      for (const c of clients) c.close();
      await proxy.close();
    }
  });

  test('coalescing: a transfer sends at most 4 progress messages a second, an entry at most 2 updates a second', async () => {
    const big = 1024 * 1024;
    const file = makeData(3 * big + 100, 9);
    upstream.setFile('/long.mkv', file);
    await watchProxy({ chunkSize: big, backgroundFill: false, maxConcurrentDownloads: 8, maxSize: 1e9, minFree: 0 }, async (proxy, sse) => {
      upstream.options.bytesPerSecond = 1024 * 1024;
      const { id } = await proxy.add(upstream.url('/long.mkv'));
      await prefetch(proxy, id);
      await sse.waitFor(isComplete(id), 60_000);
      upstream.options.bytesPerSecond = undefined;
      const byTransfer = new Map<string, SseMessage[]>();
      for (const m of sse.messages) {
        if (m.event !== 'transfer' && m.event !== 'transfer-ended') continue;
        const t = m.data as { chunkIndex: number; start: number };
        const key = `${t.chunkIndex}:${t.start}`;
        byTransfer.set(key, [...(byTransfer.get(key) ?? []), m]);
      }
      let progressSeen = 0;
      for (const [key, list] of byTransfer) {
        const ended = list.filter((m) => m.event === 'transfer-ended');
        assert.equal(ended.length, 1, `${key} ended once`);
        const updates = list.filter((m) => m.event === 'transfer');
        const seconds = ((ended[0] as SseMessage).at - (updates[0] as SseMessage).at) / 1000;
        // started + at most 4 per second of its life, + the ended message
        assert.ok(updates.length <= 4 * seconds + 2, `${key}: ${updates.length} updates in ${seconds.toFixed(2)} s`);
        const positions = updates.map((m) => (m.data as LiveTransfer).position);
        assert.deepEqual(
          positions,
          [...positions].sort((a, b) => a - b),
          'progress only moves forward',
        );
        progressSeen += updates.length - 1;
      }
      assert.ok(progressSeen >= 3, 'a megabyte at 1 MiB/s shows progress');
      const entryMsgs = sse.messages.filter((m) => m.event === 'entry' && (m.data as LiveEntry).id === id);
      const span = ((entryMsgs.at(-1) as SseMessage).at - (entryMsgs[0] as SseMessage).at) / 1000;
      assert.ok(entryMsgs.length <= 2 * span + 2, `${entryMsgs.length} entry updates in ${span.toFixed(2)} s`);
      const chunkStored = sse.messages.filter((m) => m.event === 'chunk-stored').length;
      assert.equal(chunkStored, 4, 'chunk-stored is never coalesced');
    });
  });

  test('a player reading through the proxy shows where it reads, and leaves when its response ends', async () => {
    await watchProxy({ chunkSize: CHUNK, backgroundFill: false, maxSize: 1e9, minFree: 0 }, async (proxy, sse) => {
      const { id, streamUrl } = await proxy.add(upstream.url('/film.mkv'));
      const from = 5 * CHUNK + 10;
      const res = await fetchBytes(streamUrl, { headers: { range: `bytes=${from}-` } });
      assert.equal(res.status, 206);
      assert.equal(sha256(res.body), sha256(film.subarray(from)));
      const left = await sse.waitFor((m) => m.event === 'player-left');
      const { playerId } = left.data as { entryId: string; playerId: number };
      assert.deepEqual(left.data, { entryId: id, playerId });
      const moves = sse.messages.filter((m) => m.event === 'player' && (m.data as { playerId: number }).playerId === playerId);
      assert.ok(moves.length >= 1);
      assert.deepEqual(moves[0]?.data, { entryId: id, playerId, position: from }, 'opened where it asked');
      const positions = moves.map((m) => (m.data as { position: number }).position);
      assert.ok(positions.every((p) => p >= from && p <= film.length));
      const transfers = sse.messages.filter((m) => m.event === 'transfer').map((m) => m.data as LiveTransfer);
      assert.ok(
        transfers.some((t) => t.priority === 'CRITICAL' && t.start === from),
        'the chunk at the reader is CRITICAL, from the reader',
      );
      const map = await getJson<ChunkMap>(`${proxy.server.url}/api/entries/${id}/map`);
      assert.deepEqual(map.players, []);
    });
  });

  test('evicted and damaged bytes are chunk-removed messages with their reason', async () => {
    await watchProxy(
      { chunkSize: CHUNK, backgroundFill: false, maxConcurrentDownloads: 16, maxSize: 1e9, minFree: 0 },
      async (proxy, sse) => {
        const { id } = await proxy.add(upstream.url('/film.mkv'));
        await prefetch(proxy, id);
        await sse.waitFor(isComplete(id));
        const file = proxy.cache.inspect(id).entry?.filePath ?? '';
        const { flipByte } = await import('./helpers/seams.js');
        flipByte(file, 3 * CHUNK + 5);
        const report = await proxy.cache.verify(id);
        assert.equal(report.damaged.length, 1);
        const invalid = await sse.waitFor((m) => m.event === 'chunk-removed');
        assert.deepEqual(invalid.data, { entryId: id, start: 3 * CHUNK, end: 4 * CHUNK - 1, reason: 'invalid' });

        proxy.cache.setLimits({ maxSize: 2 * CHUNK });
        await proxy.cache.gc();
        const evicted = await sse.waitFor((m) => m.event === 'chunk-removed' && (m.data as { reason: string }).reason === 'evicted');
        assert.equal((evicted.data as { entryId: string }).entryId, id);
        const map = await getJson<ChunkMap>(`${proxy.server.url}/api/entries/${id}/map`);
        const removed = sse.messages.filter((m) => m.event === 'chunk-removed').map((m) => m.data as { start: number; end: number });
        for (const [s, e] of map.stored) for (const r of removed) assert.ok(e < r.start || s > r.end, 'nothing removed is still stored');
      },
    );
  });
});

describe('GET /api/events: the snapshot', () => {
  test('holds the 1,000 most recently accessed entries, most recent first, and says when there are more', async () => {
    const proxy = await startProxy({ chunkSize: CHUNK });
    let sse: SseClient | undefined;
    try {
      const ids: string[] = [];
      for (let i = 0; i < 1005; i++) ids.push(proxy.cache.addEntry({ url: `http://127.0.0.1:9/library/${i}.mkv` }).entry.id);
      const first = ids[0] as string;
      await new Promise((resolve) => setTimeout(resolve, 5)); // a later access time than every creation
      proxy.cache.openReader(first, new AbortController().signal).close();
      sse = await connectSse(`${proxy.server.url}/api/events`);
      const snapshot = (await sse.waitFor((m) => m.event === 'snapshot')).data as Snapshot;
      assert.equal(snapshot.entries.length, 1000);
      assert.equal(snapshot.truncated, true);
      assert.equal(snapshot.entries[0]?.id, first, 'the one just read comes first');
      assert.equal(new Set(snapshot.entries.map((e) => e.id)).size, 1000);
      const times = snapshot.entries.map((e) => Date.parse(e.lastAccessed));
      assert.deepEqual(
        times,
        [...times].sort((a, b) => b - a),
        'most recently accessed first',
      );
      const shown = new Set(snapshot.entries.map((e) => e.id));
      for (const id of ids.filter((x) => !shown.has(x))) {
        const left = await getJson<EntryStatus>(`${proxy.server.url}/api/entries/${id}`);
        assert.ok(Date.parse(left.lastAccessed) <= (times.at(-1) as number), 'what is left out is older');
      }
      assert.equal(snapshot.totals.entries, 1005);
      assert.ok(snapshot.entries.every((e) => e.streamUrl === `${proxy.server.url}/stream/${e.id}`));
    } finally {
      sse?.close();
      await proxy.close();
    }
  });
});

describe('GET /api/events: a client that does not read', () => {
  test('is disconnected once more than 1 MiB is queued for it, while a reading client and a stream through the proxy go on', async () => {
    const upstream = await startUpstream();
    const film = makeData(3 * 1024 * 1024 + 5, 21);
    upstream.setFile('/film.mkv', film);
    const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false, maxSize: 1e9, minFree: 0 });
    const clients: SseClient[] = [];
    try {
      // Entries whose messages are large (long URLs, ~6 KB each): a few rounds of changes make megabytes.
      const ids: string[] = [];
      for (let i = 0; i < 300; i++) {
        ids.push(proxy.cache.addEntry({ url: `${upstream.url('/other')}?n=${i}&pad=${'p'.repeat(6000)}` }).entry.id);
      }
      const reader = await connectSse(`${proxy.server.url}/api/events`);
      clients.push(reader);
      const stalled = await connectSse(`${proxy.server.url}/api/events`, {}, { paused: true });
      clients.push(stalled);
      const { streamUrl } = await proxy.add(upstream.url('/film.mkv'));
      upstream.options.bytesPerSecond = 4 * 1024 * 1024;
      const stream = fetchBytes(streamUrl);
      stream.catch(() => undefined); // awaited below; a failure must not go unhandled meanwhile
      for (let round = 0; round < 6; round++) {
        const pin = round % 2 === 0;
        const from = reader.messages.length;
        for (const id of ids) {
          if (pin) proxy.cache.pin(id);
          else proxy.cache.unpin(id);
        }
        // Every entry's update of this round has arrived (each entry sends at most 2 a second).
        const seen = new Set<string>();
        await reader.waitFor((m) => {
          const e = m.data as LiveEntry;
          if (m.event === 'entry' && e.pinned === pin && reader.messages.indexOf(m) >= from) seen.add(e.id);
          return seen.size === ids.length;
        });
      }
      const bytes = reader.messages.reduce((sum, m) => sum + JSON.stringify(m.data).length, 0);
      assert.ok(bytes > 8 * 1024 * 1024, `the reader got ${bytes} bytes`);
      const res = await stream;
      upstream.options.bytesPerSecond = undefined;
      assert.equal(res.status, 200);
      assert.equal(sha256(res.body), sha256(film), 'the stream is byte-exact');

      stalled.resume();
      await stalled.ended;
      assert.ok(
        stalled.messages.length < reader.messages.length,
        `the stalled client got ${stalled.messages.length} of ${reader.messages.length} messages, then was cut off`,
      );
      assertContinuous(stalled.messages);
      // /metrics counts the cut: one client dropped, the reader still connected.
      const metrics = (await fetchBytes(`${proxy.server.url}/metrics`)).body.toString();
      assert.match(metrics, /^mediacache_live_clients_dropped_total 1$/m);
      assert.match(metrics, /^mediacache_live_clients 1$/m);
      // The reader is still connected and missed nothing.
      await proxy.cache.removeEntry(ids[0] as string);
      await reader.waitFor((m) => m.event === 'entry-removed');
      assertContinuous(reader.messages);
      // The cut-off client comes back with its last id and gets what it missed (still held) or a snapshot.
      const back = await connectSse(`${proxy.server.url}/api/events`, { 'last-event-id': (stalled.messages.at(-1) as SseMessage).id });
      clients.push(back);
      const first = await back.waitFor(() => true);
      assert.ok(first.event === 'snapshot' || first.seq === (stalled.messages.at(-1) as SseMessage).seq + 1);
    } finally {
      for (const c of clients) c.close();
      await proxy.close();
      await upstream.close();
    }
  });
});

describe('GET /api/events: a new upstream version', () => {
  test("drops the old version's stored bytes as one chunk-removed (invalidated) over the whole file", async () => {
    const upstream = await startUpstream();
    const v1 = makeData(4 * CHUNK, 51);
    const v2 = makeData(4 * CHUNK, 52);
    upstream.setFile('/changing.mkv', v1);
    const proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false, maxConcurrentDownloads: 1 });
    let sse: SseClient | undefined;
    try {
      sse = await connectSse(`${proxy.server.url}/api/events`);
      const { id, streamUrl } = await proxy.add(upstream.url('/changing.mkv'));
      const head = await fetchBytes(streamUrl, { headers: { range: `bytes=0-${CHUNK - 1}` } });
      assert.equal(sha256(head.body), sha256(v1.subarray(0, CHUNK)));
      await upstream.waitQuiet();
      upstream.setFile('/changing.mkv', v2);
      const fresh = await fetchBytes(streamUrl, { headers: { range: `bytes=${2 * CHUNK}-${2 * CHUNK + 99}` } });
      assert.equal(sha256(fresh.body), sha256(v2.subarray(2 * CHUNK, 2 * CHUNK + 100)), 'the new version is served');
      const removed = await sse.waitFor((m) => m.event === 'chunk-removed');
      assert.deepEqual(removed.data, { entryId: id, start: 0, end: v1.length - 1, reason: 'invalidated' });
      const version2 = await sse.waitFor((m) => m.event === 'chunk-stored' && (m.data as { version: number }).version === 2);
      assert.ok(version2.seq > removed.seq, 'what the new version stores comes after');
      const map = await getJson<ChunkMap>(`${proxy.server.url}/api/entries/${id}/map`);
      assert.equal(map.version, 2);
    } finally {
      sse?.close();
      await proxy.close();
      await upstream.close();
    }
  });
});

describe('GET /api/events: guarded like the rest of /api', () => {
  test('401 without the bearer token when --auth-token is set, 421 with a foreign Host; the map alike', async () => {
    const dataDir = tempDir();
    const cache = await MediaCache.open({ dataDir });
    const server = await startServer(cache, { host: '127.0.0.1', port: 0, authToken: 'sesame' });
    let sse: SseClient | undefined;
    try {
      for (const path of ['/api/events', '/api/entries/AAAAAAAAAAAAAAAAAAAAAA/map']) {
        const res = await fetchBytes(`${server.url}${path}`);
        assert.equal(res.status, 401, path);
        assert.equal(res.headers['www-authenticate'], 'Bearer');
        const foreign = await fetchBytes(`${server.url}${path}`, { headers: { host: 'evil.example', authorization: 'Bearer sesame' } });
        assert.equal(foreign.status, 421, path);
      }
      sse = await connectSse(`${server.url}/api/events`, { authorization: 'Bearer sesame' });
      assert.equal(sse.status, 200);
      assert.equal((await sse.waitFor(() => true)).event, 'snapshot');
      const post = await fetchBytes(`${server.url}/api/events`, { method: 'POST', headers: { authorization: 'Bearer sesame' } });
      assert.equal(post.status, 405);
      const missing = await fetchBytes(`${server.url}/api/entries/AAAAAAAAAAAAAAAAAAAAAA/map`, {
        headers: { authorization: 'Bearer sesame' },
      });
      assert.equal(missing.status, 404);
    } finally {
      sse?.close();
      await server.close();
      await cache.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('mediacache dashboard', () => {
  test('serve prints a dashboard line once listening; dashboard --server prints the URL to open (exit 3 when nothing answers)', async () => {
    const dataDir = tempDir();
    const serve = startCli(['serve', '--port', '0', '--data-dir', dataDir, '--log-level', 'silent']);
    try {
      const url = await serve.url;
      assert.ok(url, 'serve printed the URL it listens on');
      const dash = await runCli(['dashboard', '--server', url]);
      assert.equal(dash.code, 0, dash.stderr);
      assert.equal(dash.stdout, `${url}/\n`);
      const sse = await connectSse(`${url}/api/events`);
      assert.equal((await sse.waitFor(() => true)).event, 'snapshot');
      sse.close();
      serve.child.kill('SIGTERM');
      const stopped = await serve.done;
      assert.match(stopped.stdout, new RegExp(`^mediacache listening on ${url} .*\\ndashboard: ${url}/\\n`, 'm'));
      const down = await runCli(['dashboard', '--server', url]);
      assert.equal(down.code, 3);
      assert.equal(down.stdout, `${url}/\n`, 'the URL is printed even so');
      assert.match(down.stderr, /no mediacache server answers/);
      const bad = await runCli(['dashboard', '--server', 'not a url']);
      assert.equal(bad.code, 2);
    } finally {
      serve.child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
