/**
 * `GET /api/entries` in pages: every entry once in a stable order while entries come and go
 * between calls, the filters (state, pinned, q) combined with paging, and the 400s for values
 * the server cannot take.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import type { EntryStatus } from '../src/cache.js';
import { fetchBytes, getJson, startProxy, waitComplete, type Proxy } from './helpers/harness.js';
import { makeData, sha256, startUpstream } from './helpers/upstream.js';

interface Page {
  entries: EntryStatus[];
  next: string | null;
}

/** Deterministic PRNG (mulberry32), so a failing walk is the same walk on the next run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pageUrl(proxy: Proxy, params: Record<string, string>): string {
  return `${proxy.server.url}/api/entries?${new URLSearchParams(params).toString()}`;
}

async function getPage(proxy: Proxy, params: Record<string, string>): Promise<Page> {
  const res = await fetchBytes(pageUrl(proxy, params));
  assert.equal(res.status, 200, `GET ${pageUrl(proxy, params)}: ${res.body.toString()}`);
  return JSON.parse(res.body.toString()) as Page;
}

/** Every page of a query, following `next` until null; `between` runs before each further page. */
async function walk(
  proxy: Proxy,
  params: Record<string, string>,
  between?: (seen: EntryStatus[]) => Promise<void>,
): Promise<EntryStatus[]> {
  const seen: EntryStatus[] = [];
  let cursor: string | null = null;
  for (let pages = 0; ; pages++) {
    assert.ok(pages < 10_000, 'the walk ends');
    const page = await getPage(proxy, cursor === null ? params : { ...params, cursor });
    assert.ok(page.entries.length <= Number(params.limit ?? 500), 'a page holds at most limit entries');
    seen.push(...page.entries);
    if (page.next === null) return seen;
    cursor = page.next;
    if (between) await between(seen);
  }
}

/** (created_at, id) strictly increasing: the documented stable order, which also rules out repeats. */
function assertStableOrder(entries: readonly EntryStatus[]): void {
  for (let i = 1; i < entries.length; i++) {
    const a = entries[i - 1]!;
    const b = entries[i]!;
    const ordered = a.createdAt < b.createdAt || (a.createdAt === b.createdAt && a.id < b.id);
    assert.ok(ordered, `entry ${i} (${b.createdAt} ${b.id}) comes after entry ${i - 1} (${a.createdAt} ${a.id})`);
  }
}

function duplicates(ids: readonly string[]): string[] {
  const seen = new Set<string>();
  return ids.filter((id) => (seen.has(id) ? true : (seen.add(id), false)));
}

/** Registers `n` entries in-process (no download: the upstream need not exist). */
function addMany(proxy: Proxy, n: number, prefix: string): string[] {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(proxy.cache.addEntry({ url: `http://127.0.0.1:9/${prefix}/${i}.mp4` }).entry.id);
  return ids;
}

/** Lets the millisecond clock move past every entry created so far, so later entries sort after them. */
async function nextMillisecond(): Promise<void> {
  const start = Date.now();
  while (Date.now() <= start) await turn();
}

describe('GET /api/entries in pages', () => {
  for (const limit of [7, 1, 64]) {
    test(`with limit ${limit}, entries added and removed between pages neither repeat nor hide the others`, async () => {
      const proxy = await startProxy();
      try {
        const random = prng(1000 + limit);
        const initial = addMany(proxy, 300, 'initial');
        await nextMillisecond();
        const removedAt = new Map<string, number>(); // id → number of entries seen when it was removed
        const added: string[] = [];
        let round = 0;
        const seen = await walk(proxy, { limit: String(limit) }, async (sofar) => {
          // Churn in proportion to the page, for the first 150 pages (the walk must end).
          if (++round > 150) return;
          const scale = Math.max(1, Math.round(limit / 7));
          // Entries already listed and entries not reached yet, removed through the API.
          const alive = initial.filter((id) => !removedAt.has(id));
          const victims = new Set<string>();
          if (round % 3 === 0) victims.add(sofar[sofar.length - 1]!.id); // the entry the cursor points at
          for (let i = 0; i < 2 * scale && alive.length > 0; i++) victims.add(alive[Math.floor(random() * alive.length)]!);
          for (const id of victims) {
            if (removedAt.has(id)) continue;
            const del = await fetchBytes(`${proxy.server.url}/api/entries/${id}`, {
              method: 'DELETE',
              headers: { 'content-type': 'application/json' },
            });
            assert.equal(del.status, 204);
            removedAt.set(id, sofar.length);
          }
          if (round % 2 === 0) added.push(...addMany(proxy, (1 + Math.floor(random() * 3)) * scale, `added-${round}`));
        });

        const ids = seen.map((e) => e.id);
        assert.deepEqual(duplicates(ids), [], 'no entry is listed twice');
        assertStableOrder(seen);
        const position = new Map(ids.map((id, i) => [id, i]));
        const survivors = initial.filter((id) => !removedAt.has(id));
        assert.deepEqual(
          survivors.filter((id) => !position.has(id)),
          [],
          'every entry that existed for the whole walk is listed',
        );
        for (const [id, seenWhenRemoved] of removedAt) {
          const at = position.get(id);
          if (at !== undefined) assert.ok(at < seenWhenRemoved, `${id} is listed only on a page fetched before it was removed`);
        }
        const known = new Set([...initial, ...added]);
        assert.deepEqual(
          ids.filter((id) => !known.has(id)),
          [],
          'only entries that were registered are listed',
        );
        const firstAdded = ids.findIndex((id) => added.includes(id));
        if (firstAdded !== -1) {
          assert.ok(
            ids.slice(firstAdded).every((id) => !initial.includes(id)),
            'entries added during the walk come after every entry that was there before',
          );
        }
        assert.ok(removedAt.size >= 10 && added.length >= 5, `the walk saw churn (${removedAt.size} removed, ${added.length} added)`);
      } finally {
        await proxy.close();
      }
    });
  }

  test('without changes, the pages together are exactly the entries, in creation order', async () => {
    const proxy = await startProxy();
    try {
      const ids = addMany(proxy, 45, 'still');
      const seen = await walk(proxy, { limit: '7' });
      assertStableOrder(seen);
      assert.deepEqual(
        seen.map((e) => e.id),
        proxy.cache
          .listEntries()
          .sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.id < b.id ? -1 : 1))
          .map((e) => e.id),
      );
      assert.deepEqual(new Set(seen.map((e) => e.id)), new Set(ids));
      // 45 = 6 × 7 + 3: seven pages, the last one short and without a next.
      const first = await getPage(proxy, { limit: '7' });
      assert.equal(first.entries.length, 7);
      assert.equal(typeof first.next, 'string');
      // An entry on every page carries its stream URL, like the single-entry answer.
      assert.match((first.entries[0] as EntryStatus & { streamUrl?: string }).streamUrl ?? '', /^http:\/\/127\.0\.0\.1:\d+\//);
      // A cursor can be used again: the same page comes back.
      const again = await getPage(proxy, { limit: '7', cursor: first.next! });
      const twice = await getPage(proxy, { limit: '7', cursor: first.next! });
      assert.deepEqual(
        again.entries.map((e) => e.id),
        twice.entries.map((e) => e.id),
      );
      assert.deepEqual(
        again.entries.map((e) => e.id),
        seen.slice(7, 14).map((e) => e.id),
      );
    } finally {
      await proxy.close();
    }
  });

  test('the default page holds 500 entries, a limit of 5,000 is taken and one of 5,001 is refused', async () => {
    const proxy = await startProxy();
    try {
      addMany(proxy, 1_100, 'many');
      const first = await getPage(proxy, {});
      assert.equal(first.entries.length, 500);
      assert.notEqual(first.next, null);
      const all = await getPage(proxy, { limit: '5000' });
      assert.equal(all.entries.length, 1_100);
      assert.equal(all.next, null);
      const over = await fetchBytes(pageUrl(proxy, { limit: '5001' }));
      assert.equal(over.status, 400);
    } finally {
      await proxy.close();
    }
  });
});

describe('GET /api/entries filters', () => {
  test('state, pinned and q select exactly the matching entries, across pages and combined', async () => {
    const upstream = await startUpstream();
    const proxy = await startProxy({ chunkSize: 16 * 1024 });
    try {
      const data = makeData(40_000, 3);
      upstream.setFile('/Library/Big_Buck_Bunny.mp4', data);
      upstream.setFile('/Library/sintel.mkv', data);
      upstream.setFile('/Library/tears.webm', data);
      // Three entries streamed whole (Complete), with names to search for.
      const named = [
        { url: upstream.url('/Library/Big_Buck_Bunny.mp4'), sourceId: 'Jellyfin-Main', mediaId: 'movie-0042', quality: '1080p' },
        { url: upstream.url('/Library/sintel.mkv'), sourceId: 'plex', mediaId: 'Sintel-Durian', quality: '4K-HDR' },
        { url: upstream.url('/Library/tears.webm?api_key=s3cret'), sourceId: 'plex', mediaId: 'movie-0043', quality: 'SD' },
      ];
      const complete: string[] = [];
      for (const input of named) {
        const { id, streamUrl } = await proxy.add(input.url, input);
        assert.equal(sha256((await fetchBytes(streamUrl)).body), sha256(data));
        await waitComplete(proxy, id);
        complete.push(id);
      }
      // Many more never started, some pinned, some with a URL that only looks alike.
      proxy.cache.pin(complete[1]!);
      const pinned = new Set<string>([complete[1]!]);
      const notStarted: string[] = [];
      for (let i = 0; i < 80; i++) {
        const input = {
          url: `http://127.0.0.1:9/other/${i % 2 === 0 ? 'BigXBuckXBunny' : 'episode'}-${i}.mp4`,
          ...(i % 5 === 0 ? { quality: `720p-${i}` } : {}),
        };
        const { entry } = proxy.cache.addEntry(input);
        notStarted.push(entry.id);
        if (i % 3 === 0) {
          proxy.cache.pin(entry.id);
          pinned.add(entry.id);
        }
      }
      proxy.cache.pin(complete[2]!, 1024); // a head pin counts as pinned
      pinned.add(complete[2]!);
      const all = [...complete, ...notStarted];

      const ids = async (params: Record<string, string>): Promise<Set<string>> => {
        const seen = await walk(proxy, params);
        const list = seen.map((e) => e.id);
        assert.deepEqual(duplicates(list), [], `no repeats for ${JSON.stringify(params)}`);
        assertStableOrder(seen);
        return new Set(list);
      };
      const only = (pred: (id: string) => boolean): Set<string> => new Set(all.filter(pred));

      assert.deepEqual(await ids({ state: 'Complete', limit: '2' }), new Set(complete));
      assert.deepEqual(await ids({ state: 'NotStarted', limit: '7' }), new Set(notStarted));
      assert.deepEqual(await ids({ state: 'Failed', limit: '7' }), new Set());
      // A rare state among many, with a tiny page: pages may come back short, none is lost.
      assert.deepEqual(await ids({ state: 'Complete', limit: '1' }), new Set(complete));
      assert.deepEqual(await ids({ pinned: 'true', limit: '3' }), pinned);
      assert.deepEqual(
        await ids({ pinned: 'false', limit: '3' }),
        only((id) => !pinned.has(id)),
      );
      assert.deepEqual(await ids({ pinned: 'true', state: 'Complete', limit: '1' }), new Set([complete[1], complete[2]]));

      // q: a case-insensitive substring of the URL, source id, media id or quality.
      assert.deepEqual(await ids({ q: 'big_buck', limit: '2' }), new Set([complete[0]]), '_ is a character, not a wildcard');
      assert.deepEqual(
        await ids({ q: 'BUCK', limit: '4' }),
        only((id) => id === complete[0] || notStarted.indexOf(id) % 2 === 0),
      );
      assert.deepEqual(await ids({ q: 'jellyfin-main', limit: '2' }), new Set([complete[0]]), 'source id');
      assert.deepEqual(await ids({ q: 'PLEX', limit: '1' }), new Set([complete[1], complete[2]]), 'source id, any case');
      assert.deepEqual(await ids({ q: 'sintel-durian' }), new Set([complete[1]]), 'media id');
      assert.deepEqual(await ids({ q: 'MOVIE-004', limit: '1' }), new Set([complete[0], complete[2]]), 'media id prefix');
      assert.deepEqual(await ids({ q: '4k-hdr' }), new Set([complete[1]]), 'quality');
      assert.deepEqual(
        await ids({ q: '720P', limit: '3' }),
        only((id) => notStarted.indexOf(id) % 5 === 0),
        'quality, any case',
      );
      assert.deepEqual(await ids({ q: '%' }), new Set(), '% is a character, not a wildcard');
      assert.deepEqual(await ids({ q: 'no-such-thing' }), new Set());
      assert.deepEqual(
        await ids({ q: 'episode', pinned: 'true', limit: '2' }),
        only((id) => notStarted.indexOf(id) % 2 === 1 && pinned.has(id)),
      );
      assert.deepEqual(await ids({ q: 'plex', state: 'NotStarted' }), new Set());
      assert.deepEqual(await ids({ q: 'plex', state: 'Complete', pinned: 'false' }), new Set());
      // An empty q or cursor is the same as none.
      assert.deepEqual(await ids({ q: '', cursor: '', limit: '50' }), new Set(all));
    } finally {
      await proxy.close();
      await upstream.close();
    }
  });

  test('q is case-insensitive beyond ASCII too (names like Amélie or ÉCOLE)', async () => {
    const proxy = await startProxy();
    try {
      const upper = proxy.cache.addEntry({ url: 'http://127.0.0.1:9/a.mkv', sourceId: 'jf', mediaId: 'ÉCOLE-DES-FEMMES' }).entry.id;
      const lower = proxy.cache.addEntry({ url: 'http://127.0.0.1:9/b.mkv', sourceId: 'jf', mediaId: 'amélie' }).entry.id;
      proxy.cache.addEntry({ url: 'http://127.0.0.1:9/c.mkv', sourceId: 'jf', mediaId: 'other' });
      const ids = async (q: string): Promise<string[]> => (await walk(proxy, { q, limit: '1' })).map((e) => e.id);
      assert.deepEqual(await ids('AMÉLIE'), [lower]);
      assert.deepEqual(await ids('amélie'), [lower]);
      assert.deepEqual(await ids('ÉCOLE-DES'), [upper], 'the name as it is written is found');
      assert.deepEqual(await ids('école'), [upper], 'a lower-case query finds an upper-case name');
    } finally {
      await proxy.close();
    }
  });

  test('q matches the URL as listings show it: a credential or token in it cannot be found by guessing', async () => {
    const proxy = await startProxy();
    try {
      const secret = proxy.cache.addEntry({ url: 'http://alice:hunter2@127.0.0.1:9/film.mkv?api_key=s3cr3t&part=2' }).entry.id;
      proxy.cache.addEntry({ url: 'http://127.0.0.1:9/other.mkv' });
      const ids = async (q: string): Promise<string[]> => (await walk(proxy, { q })).map((e) => e.id);
      assert.deepEqual(await ids('hunter2'), [], 'a password');
      assert.deepEqual(await ids('alice'), [], 'a user name');
      assert.deepEqual(await ids('s3cr3t'), [], 'a token parameter');
      assert.deepEqual(await ids('film.mkv'), [secret], 'the rest of the URL is found');
      assert.deepEqual(await ids('part=2'), [secret], 'other parameters are found');
    } finally {
      await proxy.close();
    }
  });

  test('a bad limit, state, pinned or cursor is a 400 with a JSON error MC_ERR_INVALID_INPUT', async () => {
    const proxy = await startProxy();
    try {
      addMany(proxy, 3, 'few');
      const good = await getPage(proxy, { limit: '1' });
      assert.equal(good.entries.length, 1);
      const foreignCursor = Buffer.from(JSON.stringify({ created: 1, id: 'x' })).toString('base64url');
      const wrongTypes = Buffer.from(JSON.stringify(['1', 2])).toString('base64url');
      const bad: Array<Record<string, string>> = [
        { limit: '0' },
        { limit: '-1' },
        { limit: '1.5' },
        { limit: 'ten' },
        { limit: '5001' },
        { limit: '99999999999' },
        { state: 'complete' },
        { state: 'Done' },
        { pinned: 'yes' },
        { pinned: '1' },
        { cursor: 'not a cursor' },
        { cursor: '!!!' },
        { cursor: foreignCursor },
        { cursor: wrongTypes },
        { cursor: good.next!.slice(0, -3) },
      ];
      for (const params of bad) {
        const res = await fetchBytes(pageUrl(proxy, params));
        assert.equal(res.status, 400, `${JSON.stringify(params)} → ${res.status} ${res.body.toString()}`);
        assert.match(String(res.headers['content-type']), /^application\/json/);
        const body = JSON.parse(res.body.toString()) as { error: { code: string; message: string } };
        assert.equal(body.error.code, 'MC_ERR_INVALID_INPUT', JSON.stringify(params));
        assert.ok(body.error.message.length > 0);
      }
      // The server still answers normally afterwards.
      assert.equal((await getJson<Page>(pageUrl(proxy, {}))).entries.length, 3);
    } finally {
      await proxy.close();
    }
  });
});
