/**
 * Debian's Chromium driven by playwright-core (no browser is ever downloaded): launch, pages that
 * record console errors, and an artefacts directory for screenshots.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const hasChromium = existsSync(CHROMIUM);
/** Skipped without Chromium, except in CI (`CI` set) where the suite must fail instead. */
export const browserSkip = !hasChromium && !process.env.CI ? 'chromium is not installed (apt-get install chromium; CI installs it)' : false;

export function launchChromium(): Promise<Browser> {
  if (!hasChromium) throw new Error(`${CHROMIUM} is required when CI is set (.ci/run installs the Debian package)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
}

/** A page whose console errors and uncaught exceptions are collected into `errors`. */
export async function watchedPage(browser: Browser, viewport = { width: 1280, height: 720 }): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport });
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`page: ${e.message}`));
  return { page, errors };
}

/** Where a test run puts its screenshots (printed, not committed). */
export function artefactsDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'mediacache-artefacts-'));
}

/** A second origin: a local server answering every path with `html` (another port = another origin). */
export async function startOtherOrigin(html: () => string): Promise<{ origin: string; close(): Promise<void> }> {
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Inclusive `start-end` ranges from a data attribute. */
export function ranges(attr: string | null): Array<[number, number]> {
  return (attr ?? '')
    .split(' ')
    .filter(Boolean)
    .map((r) => r.split('-').map(Number) as [number, number]);
}

export interface MapState {
  stored: Array<[number, number]>;
  transfers: Array<{ priority: string; start: number; end: number; position: number }>;
  players: number[];
}

/** The chunk map as the page exposes it (`data-*` attributes of its bar). */
export async function readMap(page: Page, id: string): Promise<MapState> {
  const bar = `.map-bar[data-entry="${id}"]`;
  const [stored, transfers, players] = await Promise.all(
    ['data-stored', 'data-transfers', 'data-players'].map((a) => page.getAttribute(bar, a)),
  );
  return {
    stored: ranges(stored ?? ''),
    transfers: (transfers ?? '')
      .split(' ')
      .filter(Boolean)
      .map((t) => {
        const [priority = '', rest = ''] = t.split(':');
        const [span = '', position = ''] = rest.split('@');
        const [start, end] = span.split('-').map(Number);
        return { priority, start: start ?? -1, end: end ?? -1, position: Number(position) };
      }),
    players: (players ?? '')
      .split(' ')
      .filter(Boolean)
      .map((p) => Number(p.split('@')[1])),
  };
}

export const storedBytes = (attr: string | null): number => ranges(attr).reduce((n, [a, b]) => n + b - a + 1, 0);
