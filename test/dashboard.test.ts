/**
 * The dashboard in a real browser (Debian's Chromium through playwright-core) over a real proxy and a
 * throttled local upstream. The page's chunk map is read from its `data-*` attributes (what it draws),
 * never from pixels. Skipped without Chromium, except in CI. Screenshots go to a temp directory that
 * the test prints.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { fetchBytes, getJson, startProxy, tempDir, type Proxy } from './helpers/harness.js';
import { startServer } from '../src/server/http-server.js';
import { makeData, startUpstream, type Upstream } from './helpers/upstream.js';
import {
  artefactsDir,
  browserSkip,
  launchChromium,
  ranges,
  readMap,
  startOtherOrigin,
  storedBytes,
  watchedPage,
  type MapState,
} from './helpers/browser.js';
import { makeVideo, videoSkip } from './helpers/video.js';
import { flipByte } from './helpers/seams.js';

const CHUNK = 256 * 1024;

interface ApiEntry {
  id: string;
  state: string;
  pinned: boolean;
  pinHeadBytes: number | null;
  totalBytes: number | null;
  streamUrl: string;
}

describe('dashboard', { skip: browserSkip }, () => {
  let upstream: Upstream;
  let proxy: Proxy;
  let browser: Browser;
  let page: Page;
  let errors: string[];
  let artefacts: string;
  let work: string;

  before(async () => {
    artefacts = artefactsDir();
    console.log(`dashboard screenshots: ${artefacts}`);
    work = tempDir('mediacache-dashboard-');
    upstream = await startUpstream({ bytesPerSecond: 512 * 1024 });
    proxy = await startProxy({ chunkSize: CHUNK, maxConcurrentDownloads: 3, backgroundFill: 'never' });
    browser = await launchChromium();
    ({ page, errors } = await watchedPage(browser));
  });
  after(async () => {
    await browser?.close();
    await proxy?.close();
    await upstream?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const shot = (name: string, p: Page = page): Promise<Buffer> => p.screenshot({ path: path.join(artefacts, `${name}.png`) });
  const row = (id: string): string => `tr[data-id="${id}"]`;
  const mapOf = (id: string): string => `.map-bar[data-entry="${id}"]`;
  const entry = (id: string): Promise<ApiEntry> => getJson<ApiEntry>(`${proxy.server.url}/api/entries/${id}`);

  test('the page is served with a strict Content-Security-Policy, its content types and caching headers', async () => {
    const index = await fetchBytes(`${proxy.server.url}/`);
    assert.equal(index.status, 200);
    assert.equal(index.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(index.headers['cache-control'], 'no-cache');
    assert.match(String(index.headers['content-security-policy']), /^default-src 'self'; script-src 'self'; style-src 'self';/);
    assert.equal(index.headers['x-content-type-options'], 'nosniff');
    const again = await fetchBytes(`${proxy.server.url}/`, { headers: { 'if-none-match': String(index.headers.etag) } });
    assert.equal(again.status, 304);
    const script = /src="(\/dashboard\/app-[A-Z0-9]+\.js)"/.exec(index.body.toString())?.[1];
    assert.ok(script, 'index.html names its script');
    const asset = await fetchBytes(`${proxy.server.url}${script}`);
    assert.equal(asset.status, 200);
    assert.equal(asset.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(asset.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal((await fetchBytes(`${proxy.server.url}/dashboard/nothing.js`)).status, 404);
    assert.equal((await fetchBytes(`${proxy.server.url}/`, { method: 'POST' })).status, 405);
    // The API's host rule covers the page: a rebound name gets nothing.
    assert.equal((await fetchBytes(`${proxy.server.url}/`, { headers: { host: 'rebound.example' } })).status, 421);
  });

  test('the page loads without console errors, and an added URL appears with its stream URL', async () => {
    upstream.setFile('/films/first%20film.mkv', makeData(2 * CHUNK, 1), { contentType: 'video/x-matroska' });
    await page.goto(`${proxy.server.url}/`);
    await page.waitForSelector('#totals .total');
    await page.fill('#add-url', upstream.url('/films/first%20film.mkv'));
    await page.click('#add-form button[type=submit]');
    await page.waitForSelector('#added:not([hidden])');
    const streamUrl = await page.inputValue('#added-url');
    const id = /\/stream\/([^/?]+)$/.exec(streamUrl)?.[1] ?? '';
    assert.equal(streamUrl, `${proxy.server.url}/stream/${id}`);
    assert.equal((await entry(id)).streamUrl, streamUrl);
    await page.waitForSelector(row(id));
    assert.equal(await page.textContent(`${row(id)} th`), 'first film.mkv');
    assert.equal(await page.getAttribute(row(id), 'data-state'), 'NotStarted');
    await shot('added');
    assert.deepEqual(errors, []);
    // The API's refusal is shown in words, with its code.
    await page.fill('#add-url', 'ftp://example.org/film.mkv');
    await page.click('#add-form button[type=submit]');
    const message = await page.waitForSelector('#messages .error');
    assert.match((await message.textContent()) ?? '', /^Adding the URL failed: .*http.* \(MC_ERR_INVALID_INPUT\) ×$/);
    await page.click('#messages .error button.dismiss');
    await page.waitForSelector('#messages .error', { state: 'detached' });
    await page.fill('#add-url', '');
    // The browser logs that 400 as a failed resource: expected here, and only here.
    assert.match(errors.splice(0).join('\n'), /status of 400/);
  });

  test('while a pre-cache runs, the stored part of its chunk map grows, and the entry ends Complete; hover, zoom and a range Verify finds damaged show on the map', async () => {
    const size = 24 * CHUNK;
    upstream.setFile('/precache.bin', makeData(size, 2));
    const { id } = await proxy.add(upstream.url('/precache.bin'));
    await page.waitForSelector(row(id));
    await page.click(`${row(id)} button.toggle`);
    await page.waitForSelector(mapOf(id));
    await page.click(`${row(id)} button[data-action=prefetch]`);
    const seen: number[] = [];
    const deadline = Date.now() + 40_000;
    while (Date.now() < deadline) {
      const stored = storedBytes(await page.getAttribute(mapOf(id), 'data-stored'));
      if (stored !== seen[seen.length - 1]) seen.push(stored);
      if (stored === size) break;
      if (seen.length === 3) await shot('precache-running');
      await page.waitForTimeout(100);
    }
    const between = seen.filter((n) => n > 0 && n < size);
    assert.ok(between.length >= 2, `the map showed partial progress: ${seen.join(', ')}`);
    assert.deepEqual(
      seen,
      [...seen].sort((a, b) => a - b),
      'stored bytes never went back',
    );
    assert.equal(await page.getAttribute(mapOf(id), 'data-stored'), `0-${size - 1}`);
    await page.waitForSelector(`${row(id)}[data-state=Complete]`);
    assert.equal((await entry(id)).state, 'Complete');
    // Hover names the byte and the range under the pointer; + zooms in around the middle, 0 zooms out.
    await page.hover(mapOf(id), { position: { x: 1, y: 5 } });
    assert.match(
      (await page.textContent(`tr[data-details-for="${id}"] .map-readout`)) ?? '',
      new RegExp(`^Byte [\\d,]+: stored 0–${(size - 1).toLocaleString('en-US')} \\(6\\.00 MiB\\)$`),
    );
    await page.focus(mapOf(id));
    await page.keyboard.press('+');
    assert.equal(await page.getAttribute(mapOf(id), 'data-view'), `${size / 4}-${(size * 3) / 4 - 1}`);
    await page.keyboard.press('0');
    assert.equal(await page.getAttribute(mapOf(id), 'data-view'), `0-${size - 1}`);
    assert.match(
      (await page.textContent(`#map-desc-${id}`)) ?? '',
      /^Stored 6\.00 MiB of 6\.00 MiB in 1 ranges: 0 to 6,291,455\. No download under way\.$/,
    );
    // Bit rot found by Verify: the message says so, the map flashes the range and drops it.
    flipByte(proxy.cache.inspect(id).entry?.filePath ?? '', 3 * CHUNK + 5);
    await page.click(`${row(id)} button:text("Verify")`);
    const info = await page.waitForSelector('#messages .info');
    assert.equal(await info.textContent(), 'Verify: 24 chunks checked, 1 damaged range dropped. ×');
    await page.waitForSelector(`${mapOf(id)}[data-flashes="invalid:${3 * CHUNK}-${4 * CHUNK - 1}"]`);
    assert.ok(ranges(await page.getAttribute(mapOf(id), 'data-stored')).every(([a, b]) => b < 3 * CHUNK || a >= 4 * CHUNK));
    await page.click(`${row(id)} button[data-action=prefetch]`);
    await page.waitForSelector(`${mapOf(id)}[data-stored="0-${size - 1}"]`);
    assert.deepEqual(errors, []);
  });

  test(
    'a <video> plays an H.264 file through the proxy; after a seek to the middle the map shows it there',
    { skip: videoSkip },
    async () => {
      const { data, seekByte } = await makeVideo(work, 15);
      upstream.setFile('/video.mp4', data, { contentType: 'video/mp4' });
      const { id, streamUrl } = await proxy.add(upstream.url('/video.mp4'));
      await page.waitForSelector(row(id));
      await page.click(`${row(id)} button.toggle`);
      const { page: player } = await watchedPage(browser, { width: 640, height: 360 });
      try {
        await player.setContent(`<video id="v" muted playsinline preload="auto" src="${streamUrl}"></video>`);
        await player.evaluate("document.getElementById('v').play()");
        await player.waitForFunction("document.getElementById('v').currentTime > 0.5", undefined, { timeout: 20_000 });
        await player.evaluate("document.getElementById('v').currentTime = 15");
        // The seek position is covered by a CRITICAL transfer or a stored range, and a player reads there.
        let what: MapState | undefined;
        for (const deadline = Date.now() + 20_000; Date.now() < deadline; await page.waitForTimeout(50)) {
          const map = await readMap(page, id);
          const stored = map.stored.some(([a, b]) => a <= seekByte && seekByte <= b);
          const critical = map.transfers.some((t) => t.priority === 'CRITICAL' && t.start <= seekByte && seekByte <= t.end);
          const near = map.players.some((p) => Math.abs(p - seekByte) <= CHUNK);
          if ((stored || critical) && near) {
            what = map;
            break;
          }
        }
        assert.ok(what, `the map showed byte ${seekByte} stored or in a CRITICAL transfer, and a player there`);
        await shot('seek');
        console.log(`seek to byte ${seekByte}: ${JSON.stringify(what)}`);
        await player.waitForFunction("document.getElementById('v').currentTime > 15.5 && !document.getElementById('v').paused", undefined, {
          timeout: 20_000,
        });
        await shot('playing');
        // The picture for the README: the player, its CRITICAL chunk, and a pre-cache's queue on one map.
        await fetchBytes(`${proxy.server.url}/api/entries/${id}/prefetch`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
        });
        await page.waitForSelector(`${mapOf(id)} .seg.queued.p-MEDIUM`);
        await page.waitForTimeout(600);
        await shot('dashboard');
        assert.deepEqual(errors, []);
      } finally {
        await player.close();
        await fetchBytes(`${proxy.server.url}/api/entries/${id}/prefetch`, {
          method: 'DELETE',
          headers: { 'content-type': 'application/json' },
        });
      }
    },
  );

  test('an SSE reconnect resumes with Last-Event-ID: no gap in the sequence, no second snapshot, nothing missed', async () => {
    const size = 16 * CHUNK;
    upstream.setFile('/reconnect.bin', makeData(size, 4));
    const { id } = await proxy.add(upstream.url('/reconnect.bin'));
    const asked: string[] = [];
    page.on('request', (r) => {
      if (r.url().endsWith('/api/events')) asked.push(r.headers()['last-event-id'] ?? '');
    });
    await page.waitForSelector(row(id));
    await page.click(`${row(id)} button.toggle`);
    await page.waitForSelector(mapOf(id));
    const snapshots = await page.getAttribute('body', 'data-snapshots');
    const connections = Number(await page.getAttribute('body', 'data-connections'));
    await page.click(`${row(id)} button[data-action=prefetch]`);
    // Drop the stream while the pre-cache sends messages, twice.
    for (let i = 0; i < 2; i++) {
      while (storedBytes(await page.getAttribute(mapOf(id), 'data-stored')) < ((i + 1) * size) / 4) await page.waitForTimeout(50);
      if (i === 1) await shot('reconnect-running');
      await page.click('#reconnect');
      await page.waitForSelector(`body[data-connections="${connections + i + 1}"]`);
    }
    await page.waitForSelector(`${row(id)}[data-state=Complete]`, { timeout: 30_000 });
    assert.equal(await page.getAttribute(mapOf(id), 'data-stored'), `0-${size - 1}`);
    assert.equal(await page.getAttribute('body', 'data-gaps'), '0');
    assert.equal(await page.getAttribute('body', 'data-snapshots'), snapshots, 'the reconnects got what they missed, not a snapshot');
    assert.equal(asked.length, 2);
    assert.ok(
      asked.every((h) => /^[^:]+:\d+$/.test(h)),
      `Last-Event-ID sent: ${asked.join(', ')}`,
    );
    assert.equal((await entry(id)).state, 'Complete');
    assert.deepEqual(errors, []);
  });

  test('pin, head pin, unpin and remove buttons change the entry as the API reports it', async () => {
    upstream.setFile('/pinned.bin', makeData(4 * CHUNK, 3));
    const { id } = await proxy.add(upstream.url('/pinned.bin'));
    await page.waitForSelector(row(id));
    await page.click(`${row(id)} button[data-action=pin]`);
    await page.waitForSelector(`${row(id)}[data-pin=whole]`);
    assert.equal((await entry(id)).pinned, true);
    await page.click(`${row(id)} button[data-action=unpin]`);
    await page.waitForSelector(`${row(id)}[data-pin=none]`);
    assert.equal((await entry(id)).pinned, false);
    await page.click(`${row(id)} button.toggle`);
    await page.fill(`tr[data-details-for="${id}"] input.head-size`, '1');
    await page.click(`tr[data-details-for="${id}"] button:text("Pin head")`);
    await page.waitForSelector(`${row(id)}[data-pin=head]`);
    assert.equal((await entry(id)).pinHeadBytes, 1024 * 1024);
    await page.click(`${row(id)} button:text("Remove")`);
    await page.click(`${row(id)} button:text("Confirm remove")`);
    await page.waitForSelector(row(id), { state: 'detached' });
    assert.equal((await fetchBytes(`${proxy.server.url}/api/entries/${id}`)).status, 404);
    assert.deepEqual(errors, []);
  });

  test('with --auth-token the page asks for the token once, keeps it for the tab and sends it as a bearer header', async () => {
    const guarded = await startServer(proxy.cache, { host: '127.0.0.1', port: 0, authToken: 'dashboard-secret' });
    const { page: tab, errors: tabErrors } = await watchedPage(browser);
    const bearer = new Set<string>();
    tab.on('request', (r) => {
      if (new URL(r.url()).pathname.startsWith('/api/')) bearer.add(r.headers()['authorization'] ?? 'none');
    });
    try {
      await tab.goto(`${guarded.url}/`);
      await tab.waitForSelector('#token-dialog[open]');
      await tab.fill('#token-input', 'dashboard-secret');
      await tab.click('#token-form button[type=submit]');
      await tab.waitForSelector('#entries tbody tr[data-id]');
      assert.equal(await tab.evaluate("sessionStorage.getItem('mediacache.token')"), 'dashboard-secret');
      await tab.reload();
      await tab.waitForSelector('#entries tbody tr[data-id]');
      assert.equal(await tab.isVisible('#token-dialog'), false, 'asked once per tab');
      assert.ok(bearer.has('Bearer dashboard-secret'));
      // Only the first calls, before the token was given, went without it (and got 401).
      assert.deepEqual(
        tabErrors.filter((e) => !/status of 401/.test(e)),
        [],
      );
    } finally {
      await tab.close();
      await guarded.close();
    }
  });

  test('with 1,000 entries the table lists them all; search, state filter, sort and the keyboard work; past 1,000 a search finds older ones', async () => {
    const total = 1000;
    const existing = (await getJson<{ entries: number }>(`${proxy.server.url}/api/stats`)).entries;
    for (let i = existing; i < total; i++)
      proxy.cache.addEntry({ url: upstream.url(`/library/episode-${String(i).padStart(4, '0')}.mkv`) });
    await page.goto(`${proxy.server.url}/`);
    await page.waitForSelector(`#entry-count:text("(${total})")`, { timeout: 20_000 });
    assert.equal(await page.locator('#entries tbody tr[data-id]').count(), total);
    await page.fill('#search', 'episode-0999');
    await page.waitForSelector('#entries tbody tr[data-id] >> nth=1', { state: 'detached' });
    assert.deepEqual(await page.locator('#entries tbody tr[data-id] th').allTextContents(), ['episode-0999.mkv']);
    await page.fill('#search', '');
    const complete = (await getJson<{ entries: ApiEntry[] }>(`${proxy.server.url}/api/entries?state=Complete`)).entries.map((e) => e.id);
    assert.ok(complete.length >= 2, 'the earlier tests completed entries');
    await page.selectOption('#state-filter', 'Complete');
    await page.waitForSelector(`#entries tbody tr[data-id] >> nth=${complete.length}`, { state: 'detached' });
    const shown = await page.locator('#entries tbody tr[data-id]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id')));
    assert.deepEqual(shown.sort(), complete.sort());
    await page.selectOption('#state-filter', '');
    await page.click('th[data-col=name] button');
    await page.waitForSelector('th[data-col=name][aria-sort=ascending]');
    const names = await page.locator('#entries tbody tr[data-id] th').allTextContents();
    assert.equal(names.length, total);
    assert.deepEqual(names.slice(0, 3), [...names].sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase())).slice(0, 3));
    // Keyboard: the first row takes focus, ↓ moves to the next, Enter opens its chunk map.
    await page.focus('#entries tbody tr[data-id] >> nth=0');
    await page.keyboard.press('ArrowDown');
    const second = await page.locator('#entries tbody tr[data-id] >> nth=1').getAttribute('data-id');
    assert.equal(await page.evaluate("document.activeElement.getAttribute('data-id')"), second);
    await page.keyboard.press('Enter');
    await page.waitForSelector(`tr[data-details-for="${second}"] .map-bar`);
    await shot('thousand');
    // Past 1,000 the stream lists the most recently used; a search also finds older entries through the API.
    for (let i = total; i < total + 10; i++) proxy.cache.addEntry({ url: upstream.url(`/library/episode-${i}.mkv`) });
    await page.reload();
    await page.waitForSelector(`#entry-count:text("(1000 of ${total + 10})")`);
    assert.equal(await page.isVisible('#truncated'), true);
    assert.equal(
      await page.locator('#entries tbody tr[data-id] th:text-is("first film.mkv")').count(),
      0,
      'the least recently used is left out',
    );
    await page.fill('#search', 'first');
    await page.waitForSelector('#entries tbody tr[data-id] th:text-is("first film.mkv")');
    assert.deepEqual(errors, []);
  });

  test('a page from another origin can neither read nor change the API', async () => {
    const other = await startOtherOrigin(
      () =>
        `<!doctype html><form id="f" method="post" action="${proxy.server.url}/api/entries"><input name="url" value="http://x/"></form>`,
    );
    const { page: foreign } = await watchedPage(browser);
    try {
      await foreign.goto(other.origin);
      const before = (await getJson<{ entries: unknown[] }>(`${proxy.server.url}/api/entries`)).entries.length;
      // A string, not a function: tsx's transform would name inner functions with a helper the page lacks.
      const outcome = (await foreign.evaluate(`(async () => {
        const attempt = (init) => fetch(${JSON.stringify(proxy.server.url + '/api/entries')}, init).then(
          (r) => 'read ' + r.status,
          (e) => 'blocked: ' + String(e),
        );
        return {
          read: await attempt(),
          json: await attempt({ method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"url":"http://x/a"}' }),
        };
      })()`)) as { read: string; json: string };
      assert.match(outcome.read, /^blocked: TypeError/);
      assert.match(outcome.json, /^blocked: TypeError/);
      const [answer] = await Promise.all([foreign.waitForNavigation(), foreign.evaluate("document.getElementById('f').submit()")]);
      assert.equal(answer?.status(), 415);
      assert.equal((await getJson<{ entries: unknown[] }>(`${proxy.server.url}/api/entries`)).entries.length, before);
    } finally {
      await foreign.close();
      await other.close();
    }
  });
});
