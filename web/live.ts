/**
 * Keeps the store live: reads `GET /api/events` with fetch() streaming (EventSource cannot send the
 * bearer header) and reconnects with `Last-Event-ID`; against a proxy without the stream (404) it
 * polls the JSON API instead.
 */
import { api, authHeaders, ApiError } from './api.js';
import { SseParser } from './sse-parser.js';
import type { DashboardStore } from './store.js';
import type { EntryMap, EntrySummary, StreamEvent, Totals } from './types.js';

export type LinkState = 'connecting' | 'live' | 'polling' | 'retrying' | 'unauthorized';

export interface LiveOptions {
  store: DashboardStore;
  /** After messages were applied: the page redraws what changed. */
  onChange(): void;
  onState(state: LinkState, detail: string): void;
  /** The proxy wants a token (401): resolves once the user gave one. */
  askToken(reason: string): Promise<void>;
}

const RETRY_MS = [500, 1000, 2000, 5000];
const POLL_MS = 1000;

export class LiveLink {
  private abort: AbortController | null = null;
  private lastEventId = '';
  private polling = false;
  /** Connections the stream has had (a reconnect makes two). */
  private stopped = false;
  connections = 0;

  get isPolling(): boolean {
    return this.polling;
  }

  constructor(private readonly o: LiveOptions) {}

  start(): void {
    void this.run();
  }

  /** Drops the current connection; the link reconnects with `Last-Event-ID` (the Reconnect button). */
  reconnect(): void {
    this.abort?.abort();
  }

  private async run(): Promise<void> {
    for (let failures = 0; !this.stopped;) {
      if (this.polling) return this.poll();
      this.o.onState(failures ? 'retrying' : 'connecting', '');
      try {
        const progressed = await this.connect();
        failures = progressed ? 0 : failures + 1;
      } catch (err) {
        failures++;
        this.o.onState('retrying', err instanceof Error ? err.message : String(err));
      }
      if (!this.polling) await sleep(RETRY_MS[Math.min(failures, RETRY_MS.length - 1)] ?? 5000);
    }
  }

  /** One connection, until it ends; true when it delivered messages. */
  private async connect(): Promise<boolean> {
    const abort = new AbortController();
    this.abort = abort;
    const headers: Record<string, string> = { accept: 'text/event-stream', ...authHeaders() };
    if (this.lastEventId) headers['last-event-id'] = this.lastEventId;
    const res = await fetch('/api/events', { headers, signal: abort.signal, cache: 'no-store' });
    if (res.status === 401) {
      this.o.onState('unauthorized', '');
      await this.o.askToken('This proxy needs its access token.');
      return true;
    }
    if (res.status === 404) {
      this.polling = true;
      return false;
    }
    if (!res.ok || !res.body) throw new Error(`the event stream answered ${res.status}`);
    this.connections++;
    this.o.onState('live', '');
    const parser = new SseParser();
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let delivered = false;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const now = Date.now();
        for (const msg of parser.push(value)) {
          this.lastEventId = msg.id;
          this.o.store.apply(msg.id, { type: msg.event, data: JSON.parse(msg.data) } as StreamEvent, now);
          delivered = true;
        }
        this.o.onChange();
      }
    } catch (err) {
      if (!abort.signal.aborted) throw err;
    }
    return delivered;
  }

  /** Without an event stream: the list and totals every second, maps of expanded rows with them. */
  private async poll(): Promise<void> {
    this.o.onState('polling', 'this proxy has no event stream: polling every second');
    while (!this.stopped) {
      try {
        await pollOnce(this.o.store);
        this.o.onChange();
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        this.o.onState('retrying', err.message);
      }
      await sleep(POLL_MS);
    }
  }
}

interface StatsAnswer {
  totals: { hits: number; misses: number; bytesFromCache: number; bytesFromUpstream: number };
  disk: { usedBytes: number; freeBytes: number; limits: { maxSize?: number; minFree?: number } };
  entries: number;
}

let lastUpstream: { bytes: number; at: number } | null = null;

async function pollOnce(store: DashboardStore): Promise<void> {
  const entries: EntrySummary[] = [];
  for (let cursor: string | null = ''; cursor !== null && entries.length < 1000;) {
    const page: { entries: EntrySummary[]; next: string | null } = await api(
      'GET',
      `/api/entries?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    );
    entries.push(...page.entries);
    cursor = page.next;
  }
  const stats = await api<StatsAnswer>('GET', '/api/stats');
  const now = Date.now();
  const rate = lastUpstream ? ((stats.totals.bytesFromUpstream - lastUpstream.bytes) * 1000) / Math.max(1, now - lastUpstream.at) : 0;
  lastUpstream = { bytes: stats.totals.bytesFromUpstream, at: now };
  const requests = stats.totals.hits + stats.totals.misses;
  const totals: Totals = {
    entries: stats.entries,
    disk: {
      usedBytes: stats.disk.usedBytes,
      maxBytes: stats.disk.limits.maxSize ?? null,
      minFreeBytes: stats.disk.limits.minFree ?? null,
      freeBytes: stats.disk.freeBytes,
    },
    bytesFromCache: stats.totals.bytesFromCache,
    bytesFromUpstream: stats.totals.bytesFromUpstream,
    hitRatio: requests ? stats.totals.hits / requests : null,
    upstreamBytesPerSecond: Math.max(0, rate),
    perPriority: { CRITICAL: 0, HIGH: 0, MEDIUM: 0, LOW: 0 },
    downloads: { running: entries.reduce((n, e) => n + (e.downloading?.length ?? 0), 0), max: null },
  };
  store.setPolledList(entries, totals);
  for (const id of store.wanted) {
    if (!store.entries.has(id)) continue;
    store.setPolledEntry(await api<EntrySummary>('GET', `/api/entries/${id}`));
  }
}

/** The map of one entry, from the stream's map endpoint (or the entry itself when polling). */
export async function loadMap(store: DashboardStore, id: string, polling: boolean): Promise<void> {
  if (polling) {
    store.setPolledEntry(await api<EntrySummary>('GET', `/api/entries/${id}`));
    return;
  }
  store.setMap(await api<EntryMap>('GET', `/api/entries/${id}/map`));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
