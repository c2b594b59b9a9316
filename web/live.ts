/**
 * Keeps the store live: reads `GET /api/events` with fetch() streaming (EventSource cannot send the
 * bearer header) and reconnects with `Last-Event-ID`, so a dropped connection misses nothing.
 */
import { api, authHeaders } from './api.js';
import { SseParser } from './sse-parser.js';
import type { DashboardStore } from './store.js';
import type { EntryMap, StreamEvent } from './types.js';

export type LinkState = 'connecting' | 'live' | 'retrying' | 'unauthorized';

export interface LiveOptions {
  store: DashboardStore;
  /** After messages were applied: the page redraws what changed. */
  onChange(): void;
  onState(state: LinkState, detail: string): void;
  /** The proxy wants a token (401): resolves once the user gave one. */
  askToken(reason: string): Promise<void>;
}

const RETRY_MS = [500, 1000, 2000, 5000];

export class LiveLink {
  private abort: AbortController | null = null;
  private lastEventId = '';
  /** Connections the stream has had (a reconnect makes two). */
  connections = 0;

  constructor(private readonly o: LiveOptions) {}

  start(): void {
    void this.run();
  }

  /** Drops the current connection; the link reconnects with `Last-Event-ID` (the Reconnect button). */
  reconnect(): void {
    this.abort?.abort();
  }

  private async run(): Promise<void> {
    for (let failures = 0; ;) {
      this.o.onState(failures ? 'retrying' : 'connecting', '');
      try {
        const progressed = await this.connect();
        failures = progressed ? 0 : failures + 1;
      } catch (err) {
        failures++;
        this.o.onState('retrying', err instanceof Error ? err.message : String(err));
      }
      await sleep(RETRY_MS[Math.min(failures, RETRY_MS.length - 1)] ?? 5000);
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
}

/** The map of one entry; the stream's later chunk messages apply on top of it. */
export async function loadMap(store: DashboardStore, id: string): Promise<void> {
  store.setMap(await api<EntryMap>('GET', `/api/entries/${id}/map`));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
