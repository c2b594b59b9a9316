import { randomBytes } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { ServerResponse } from 'node:http';
import type { CacheEvents } from '../events.js';
import type { EntrySummary } from '../status.js';
import type { ChunkMap, LiveEntry, Snapshot } from './messages.js';
import type { LiveQueries } from './queries.js';
import { RateGate } from './rate-gate.js';
import { ReplayRing } from './replay-ring.js';
import { SseClient } from './sse-client.js';

/** What the hub needs of the cache: its events and the live queries. MediaCache is one. */
export interface LiveSource {
  readonly live: LiveQueries;
  on<E extends keyof CacheEvents>(event: E, listener: (...args: CacheEvents[E]) => void): unknown;
  off<E extends keyof CacheEvents>(event: E, listener: (...args: CacheEvents[E]) => void): unknown;
}

export interface LiveHubOptions {
  /** The stream URL of an entry (as `GET /api/entries` gives it). */
  streamUrl: (id: string) => string;
  /** A client with more than this queued is disconnected (default 1 MiB). */
  maxQueuedBytes?: number;
  /** Messages kept for Last-Event-ID (default 4,096). */
  replay?: number;
  /** Entries in a snapshot (default 1,000). */
  snapshotEntries?: number;
  keepAliveMs?: number;
}

export const LIVE_LIMITS = {
  transferMs: 250,
  entryMs: 500,
  totalsMs: 1000,
  playerMs: 250,
  queueMs: 500,
  keepAliveMs: 15_000,
  maxQueuedBytes: 1024 * 1024,
  replay: 4096,
  snapshotEntries: 1000,
} as const;

/** Entries of a snapshot summarised and encoded per turn of the event loop. */
const SNAPSHOT_SLICE = 100;
/** Entry messages built in one turn of the event loop (each costs a query and a JSON encoding). */
const ENTRIES_PER_FLUSH = 100;

type TransferKey = string;
const transferKey = (entryId: string, chunkIndex: number, start: number): TransferKey => `${entryId}\n${chunkIndex}\n${start}`;

/**
 * The live event stream of one process (docs/events.md): listens to the cache's events (emitted
 * after commit), coalesces the frequent ones per key (RateGate), numbers every message once
 * (`<epoch>:<seq>`), keeps the last 4,096 for clients that reconnect, and writes each encoded
 * frame to every client without waiting for any (SseClient). The state a message carries is read
 * when it goes out, so a coalesced message is never stale.
 */
export class LiveHub {
  readonly epoch = randomBytes(6).toString('base64url');
  private readonly ring: ReplayRing<string>;
  private readonly clients = new Set<SseClient>();
  private readonly transfers = new RateGate<TransferKey>(LIVE_LIMITS.transferMs);
  private readonly entries = new RateGate<string>(LIVE_LIMITS.entryMs);
  private readonly queues = new RateGate<string>(LIVE_LIMITS.queueMs);
  private readonly players = new RateGate<number>(LIVE_LIMITS.playerMs);
  private readonly totals = new RateGate<'totals'>(LIVE_LIMITS.totalsMs);
  private readonly playerAt = new Map<number, { entryId: string; position: number }>();
  private lastTotals = '';
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private readonly keepAlive: NodeJS.Timeout;
  private readonly unlisten: Array<() => void> = [];
  private closed = false;
  /** Clients cut off for lagging (for tests and metrics). */
  dropped = 0;

  constructor(
    private readonly source: LiveSource,
    private readonly options: LiveHubOptions,
  ) {
    this.ring = new ReplayRing(options.replay ?? LIVE_LIMITS.replay);
    this.listen();
    const keepAliveMs = options.keepAliveMs ?? LIVE_LIMITS.keepAliveMs;
    this.keepAlive = setInterval(() => this.beat(keepAliveMs), Math.min(keepAliveMs, 5_000)).unref();
  }

  /** The id of the last message sent (`<epoch>:<seq>`). */
  get lastId(): string {
    return `${this.epoch}:${this.ring.lastSeq}`;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** The chunk map of one entry now, with the last message it reflects. */
  map(entryId: string): ChunkMap | undefined {
    const map = this.source.live.map(entryId);
    return map && { ...map, seq: this.lastId };
  }

  /**
   * Serves one event-stream response: the messages after `lastEventId` when they are all still
   * held, else a snapshot (which carries the id of the last message it reflects) and the messages
   * published while it was built. Resolves once the client is live (or gone).
   */
  async connect(res: ServerResponse, lastEventId: string | undefined): Promise<void> {
    // Built before the headers go out: a busy database is then a plain 503 the client retries.
    const first = this.missedSince(lastEventId) ?? (await this.snapshotFrames());
    if (res.destroyed || !res.socket || res.socket.destroyed) return; // the client left while the snapshot was built
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    res.socket?.setNoDelay(true);
    const client = new SseClient(res, this.options.maxQueuedBytes ?? LIVE_LIMITS.maxQueuedBytes, () => this.dropped++);
    res.on('close', () => this.clients.delete(client));
    if (this.closed) return client.end();
    client.begin([...first, ': connected\n\n']); // the comment flushes the headers when nothing was missed
    this.clients.add(client);
  }

  /**
   * A snapshot frame, numbered with the last message before it was begun, followed by the messages
   * published while it was built: it is built in slices that yield to the event loop (1,000
   * entries take tens of milliseconds), so streams never wait for it. A message it already
   * reflects changes nothing when applied again.
   */
  private async snapshotFrames(): Promise<string[]> {
    for (let attempt = 0; ; attempt++) {
      const seq = this.ring.lastSeq;
      const data = await this.snapshotJson();
      const since = this.ring.after(seq);
      if (since || attempt >= 2) return [`id: ${this.epoch}:${seq}\nevent: snapshot\ndata: ${data}\n\n`, ...(since ?? [])];
    }
  }

  /** The snapshot as JSON text (its entries encoded a slice at a time). */
  private async snapshotJson(): Promise<string> {
    const { live } = this.source;
    const limit = this.options.snapshotEntries ?? LIVE_LIMITS.snapshotEntries;
    const ids = live.recentIds(limit + 1);
    const parts: string[] = [];
    for (let from = 0; from < Math.min(limit, ids.length); from += SNAPSHOT_SLICE) {
      if (from > 0) await yieldToLoop();
      const slice: LiveEntry[] = [];
      for (const id of ids.slice(from, Math.min(limit, from + SNAPSHOT_SLICE))) {
        const summary = live.summary(id);
        if (summary) slice.push(this.withUrl(summary));
      }
      if (slice.length > 0) parts.push(JSON.stringify(slice).slice(1, -1));
    }
    const rest: Omit<Snapshot, 'entries'> = {
      epoch: this.epoch,
      totals: live.totals(),
      truncated: ids.length > limit,
      transfers: live.transfers(),
      players: live.players(),
    };
    return `${JSON.stringify(rest).slice(0, -1)},"entries":[${parts.join(',')}]}`;
  }

  /**
   * The frames after `lastEventId`, or null when a snapshot must replace them: another epoch, no
   * longer all held, or more than a client may have queued (then a snapshot is the smaller start:
   * it holds each entry once).
   */
  private missedSince(lastEventId: string | undefined): string[] | null {
    const m = /^([A-Za-z0-9_-]+):(\d{1,15})$/.exec(lastEventId?.trim() ?? '');
    if (!m || m[1] !== this.epoch) return null;
    const missed = this.ring.after(Number(m[2]));
    let bytes = 0;
    for (const frame of missed ?? []) bytes += frame.length;
    return bytes > (this.options.maxQueuedBytes ?? LIVE_LIMITS.maxQueuedBytes) ? null : missed;
  }

  close(): void {
    this.closed = true;
    for (const off of this.unlisten) off();
    clearTimeout(this.timer);
    clearInterval(this.keepAlive);
    for (const client of this.clients) client.end();
    this.clients.clear();
  }

  private withUrl(e: EntrySummary): LiveEntry {
    return { ...e, streamUrl: this.options.streamUrl(e.id) };
  }

  private frame(seq: number, type: string, data: unknown): string {
    return `id: ${this.epoch}:${seq}\nevent: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
  }

  /** Numbers, keeps and sends one message. */
  private publish(type: string, data: unknown): void {
    const seq = this.ring.lastSeq + 1;
    const frame = this.frame(seq, type, data);
    this.ring.push(frame);
    for (const client of this.clients) if (!client.write(frame)) this.clients.delete(client);
  }

  private on<E extends keyof CacheEvents>(event: E, listener: (...args: CacheEvents[E]) => void): void {
    const wrapped = (...args: CacheEvents[E]): void => {
      if (this.closed) return;
      listener(...args);
      this.wake(this.totals.mark('totals'));
    };
    this.source.on(event, wrapped);
    this.unlisten.push(() => this.source.off(event, wrapped));
  }

  private listen(): void {
    const entry = ({ entryId }: { entryId: string }): void => this.wake(this.entries.mark(entryId));
    this.on('chunk-stored', (e) => {
      this.publish('chunk-stored', { entryId: e.entryId, version: e.version, start: e.start, end: e.end });
      entry(e);
    });
    this.on('chunk-removed', (e) => {
      this.publish('chunk-removed', { entryId: e.entryId, start: e.start, end: e.end, reason: e.reason });
      entry(e);
    });
    this.on('download-started', (e) => {
      const key = transferKey(e.entryId, e.chunkIndex, e.start);
      const now = this.source.live.transfers(e.entryId).find((t) => t.chunkIndex === e.chunkIndex && t.start === e.start);
      if (now) this.publish('transfer', now);
      this.transfers.sent(key, Date.now());
      entry(e);
    });
    this.on('download-progress', (e) => this.wake(this.transfers.mark(transferKey(e.entryId, e.chunkIndex, e.start))));
    this.on('download-ended', (e) => {
      this.transfers.forget(transferKey(e.entryId, e.chunkIndex, e.start));
      this.publish('transfer-ended', { entryId: e.entryId, chunkIndex: e.chunkIndex, start: e.start, outcome: e.outcome });
      entry(e);
    });
    for (const name of ['state-changed', 'entry-added', 'entry-changed', 'entry-invalidated', 'background-stopped'] as const) {
      this.on(name, entry);
    }
    this.on('entry-removed', ({ entryId }) => {
      this.entries.forget(entryId);
      this.queues.forget(entryId);
      this.publish('entry-removed', { id: entryId });
    });
    this.on('queue-changed', ({ entryId }) => this.wake(this.queues.mark(entryId)));
    this.on('player-moved', (e) => {
      this.playerAt.set(e.playerId, { entryId: e.entryId, position: e.position });
      this.wake(this.players.mark(e.playerId));
    });
    this.on('player-left', (e) => {
      this.players.forget(e.playerId);
      this.playerAt.delete(e.playerId);
      this.publish('player-left', { entryId: e.entryId, playerId: e.playerId });
    });
  }

  /** Makes the flush run by `due` (ms): one timer serves every gate. */
  private wake(due: number): void {
    if (this.closed || due >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = due;
    this.timer = setTimeout(() => this.flush(), Math.max(0, due - Date.now()));
  }

  /** After a flush: the earliest key still waiting. */
  private rewake(): void {
    for (const gate of [this.transfers, this.entries, this.queues, this.players, this.totals]) {
      const due = gate.nextDue();
      if (due !== null) this.wake(due);
    }
  }

  private flush(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    if (this.closed) return;
    try {
      this.flushDue(Date.now());
    } catch {
      // The database was busy: what was due goes out with the next change (totals retry in a second).
      this.totals.mark('totals');
    }
    this.rewake();
  }

  private flushDue(now: number): void {
    const { live } = this.source;
    // Many entries changed at once (a bulk pin): a slice per turn of the event loop.
    for (const id of this.entries.take(now, ENTRIES_PER_FLUSH)) {
      const summary = live.summary(id);
      if (summary) this.publish('entry', this.withUrl(summary));
    }
    for (const id of this.queues.take(now)) {
      if (live.exists(id)) this.publish('queue', { entryId: id, queued: live.queued(id) });
    }
    const byEntry = new Map<string, ReturnType<LiveQueries['transfers']>>();
    for (const key of this.transfers.take(now)) {
      const [entryId = '', chunkIndex, start] = key.split('\n');
      if (!byEntry.has(entryId)) byEntry.set(entryId, live.transfers(entryId));
      const t = byEntry.get(entryId)?.find((x) => x.chunkIndex === Number(chunkIndex) && x.start === Number(start));
      if (t) this.publish('transfer', t);
    }
    for (const playerId of this.players.take(now)) {
      const at = this.playerAt.get(playerId);
      if (at) this.publish('player', { entryId: at.entryId, playerId, position: at.position });
    }
    if (this.totals.take(now).length > 0) this.sendTotals();
  }

  /** Totals when they differ from the last sent; while downloads run, again a second later. */
  private sendTotals(): void {
    const totals = this.source.live.totals();
    const text = JSON.stringify(totals);
    if (text !== this.lastTotals) {
      this.lastTotals = text;
      this.publish('totals', totals);
    }
    if (totals.downloads.running > 0 || totals.upstreamBytesPerSecond > 0) this.totals.mark('totals');
  }

  private beat(keepAliveMs: number): void {
    const now = Date.now();
    for (const client of this.clients) if (now - client.lastWriteAt >= keepAliveMs) client.write(': keep-alive\n\n');
    for (const gate of [this.transfers, this.entries, this.queues, this.players]) gate.prune(now);
  }
}
