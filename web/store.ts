/**
 * What the page knows, built from the event stream and the API's answers, read by the views. Pure data: no DOM, so it can be tested in Node.
 */
import { addRange, removeRange } from './ranges.js';
import {
  parseEventId,
  type EntryMap,
  type EntrySummary,
  type Player,
  type Queued,
  type Range,
  type RemovalReason,
  type StreamEvent,
  type Totals,
  type Transfer,
} from './types.js';

/** A stored range that just disappeared, drawn for a moment. */
export interface Flash {
  start: number;
  end: number;
  reason: RemovalReason;
  at: number;
}

/** Stored ranges of an expanded entry (only those are fetched and kept up to date). */
interface MapState {
  version: number;
  stored: Range[];
  /** The message the fetched map reflects: later chunk messages apply to it. */
  seq: number;
}

/** Chunk messages kept for a while, so a map fetched a little late can catch up on them. */
const RECENT_LIMIT = 2048;
const FLASH_MS = 2500;

type ChunkEvent = Extract<StreamEvent, { type: 'chunk-stored' | 'chunk-removed' }>;

export interface Changes {
  /** Entries whose row or map changed. */
  entries: Set<string>;
  /** The set of entries changed (added, removed, or a snapshot). */
  list: boolean;
  totals: boolean;
}

const key = (entryId: string, n: number): string => `${entryId}:${n}`;
/** A transfer is one gap of one chunk: a split at a seek makes two in the same chunk, told apart by start. */
const transferKey = (t: { entryId: string; chunkIndex: number; start: number }): string => `${t.entryId}:${t.chunkIndex}:${t.start}`;

export class DashboardStore {
  readonly entries = new Map<string, EntrySummary>();
  totals: Totals | null = null;
  truncated = false;
  private readonly transfers = new Map<string, Transfer>();
  private readonly players = new Map<string, Player>();
  private readonly queues = new Map<string, Queued[]>();
  private readonly maps = new Map<string, MapState>();
  private readonly flashes = new Map<string, Flash[]>();
  private recent: Array<{ seq: number; event: ChunkEvent }> = [];

  /** Entries whose map the page wants (expanded rows): their chunk messages are kept until the map arrives. */
  readonly wanted = new Set<string>();
  epoch = '';
  lastSeq = 0;
  /** Messages that arrived out of sequence (a gap): 0 when the stream lost nothing. */
  gaps = 0;
  snapshots = 0;
  messages = 0;
  private changes: Changes = { entries: new Set(), list: false, totals: false };

  /** Applies one message of the stream; `id` is its `<epoch>:<seq>`. */
  apply(id: string, event: StreamEvent, now: number): void {
    const parsed = parseEventId(id);
    if (parsed) {
      if (event.type !== 'snapshot' && parsed.epoch === this.epoch && parsed.seq !== this.lastSeq + 1) this.gaps++;
      this.epoch = parsed.epoch;
      this.lastSeq = parsed.seq;
    }
    this.messages++;
    this.applyEvent(event, parsed?.seq ?? this.lastSeq, now);
  }

  private applyEvent(event: StreamEvent, seq: number, now: number): void {
    const ch = this.changes;
    switch (event.type) {
      case 'snapshot':
        this.snapshots++;
        this.entries.clear();
        for (const e of event.data.entries) this.entries.set(e.id, e);
        this.totals = event.data.totals;
        this.truncated = event.data.truncated;
        this.transfers.clear();
        for (const t of event.data.transfers) this.transfers.set(transferKey(t), t);
        this.players.clear();
        for (const p of event.data.players) this.players.set(key(p.entryId, p.playerId), p);
        // Queues and stored ranges are not in a snapshot: maps are fetched again.
        this.queues.clear();
        this.maps.clear();
        this.recent = [];
        ch.list = ch.totals = true;
        return;
      case 'totals':
        this.totals = event.data;
        ch.totals = true;
        return;
      case 'entry':
        if (!this.entries.has(event.data.id)) ch.list = true;
        this.entries.set(event.data.id, event.data);
        ch.entries.add(event.data.id);
        return;
      case 'entry-removed':
        this.forget(event.data.id);
        ch.list = true;
        return;
      case 'chunk-stored':
      case 'chunk-removed':
        this.remember(seq, event);
        if (event.type === 'chunk-removed') this.flash(event.data, now);
        this.applyChunk(event);
        return;
      case 'transfer':
        this.transfers.set(transferKey(event.data), event.data);
        ch.entries.add(event.data.entryId);
        return;
      case 'transfer-ended':
        this.transfers.delete(transferKey(event.data));
        ch.entries.add(event.data.entryId);
        return;
      case 'queue':
        if (event.data.queued.length === 0) this.queues.delete(event.data.entryId);
        else this.queues.set(event.data.entryId, event.data.queued);
        ch.entries.add(event.data.entryId);
        return;
      case 'player':
        this.players.set(key(event.data.entryId, event.data.playerId), event.data);
        ch.entries.add(event.data.entryId);
        return;
      case 'player-left':
        this.players.delete(key(event.data.entryId, event.data.playerId));
        ch.entries.add(event.data.entryId);
        return;
    }
  }

  /** Applies a chunk message to the entry's map, if the page holds it. */
  private applyChunk(event: ChunkEvent): void {
    const { entryId, start, end } = event.data;
    this.changes.entries.add(entryId);
    const map = this.maps.get(entryId);
    if (!map) return;
    if (event.type === 'chunk-stored') {
      if (event.data.version === map.version) map.stored = addRange(map.stored, start, end);
    } else map.stored = removeRange(map.stored, start, end);
  }

  private flash(f: { entryId: string; start: number; end: number; reason: RemovalReason }, now: number): void {
    const list = this.flashes.get(f.entryId) ?? [];
    list.push({ start: f.start, end: f.end, reason: f.reason, at: now });
    this.flashes.set(f.entryId, list);
  }

  private remember(seq: number, event: ChunkEvent): void {
    if (!this.maps.has(event.data.entryId) && !this.wanted.has(event.data.entryId)) return;
    this.recent.push({ seq, event });
    if (this.recent.length > RECENT_LIMIT) this.recent.splice(0, this.recent.length - RECENT_LIMIT);
  }

  /** Takes a fetched map; chunk messages after its `seq` are applied on top. */
  setMap(map: EntryMap): void {
    const parsed = parseEventId(map.seq);
    const seq = parsed && parsed.epoch === this.epoch ? parsed.seq : this.lastSeq;
    this.maps.set(map.id, { version: map.version, stored: map.stored, seq });
    for (const r of this.recent) if (r.seq > seq && r.event.data.entryId === map.id) this.applyChunk(r.event);
    if (map.queued.length > 0) this.queues.set(map.id, map.queued);
    this.changes.entries.add(map.id);
  }

  private forget(id: string): void {
    if (this.entries.delete(id)) this.changes.list = true;
    this.maps.delete(id);
    this.queues.delete(id);
    this.flashes.delete(id);
    for (const m of [this.transfers, this.players]) for (const k of [...m.keys()]) if (k.startsWith(`${id}:`)) m.delete(k);
  }

  /** An answer of the API (an action's result): applied like a message, outside the sequence. */
  applyLocal(event: StreamEvent, now: number): void {
    this.applyEvent(event, this.lastSeq, now);
  }

  mapVersion(id: string): number | undefined {
    return this.maps.get(id)?.version;
  }

  hasMap(id: string): boolean {
    return this.maps.has(id);
  }

  dropMap(id: string): void {
    this.maps.delete(id);
    this.wanted.delete(id);
  }

  stored(id: string): Range[] | undefined {
    return this.maps.get(id)?.stored;
  }

  transfersOf(id: string): Transfer[] {
    return [...this.transfers.values()].filter((t) => t.entryId === id).sort((a, b) => a.start - b.start);
  }

  playersOf(id: string): Player[] {
    return [...this.players.values()].filter((p) => p.entryId === id);
  }

  queueOf(id: string): Queued[] {
    return this.queues.get(id) ?? [];
  }

  /** Removals of the last moments (older ones are dropped as they are read). */
  flashesOf(id: string, now: number): Flash[] {
    const list = (this.flashes.get(id) ?? []).filter((f) => now - f.at < FLASH_MS);
    if (list.length === 0) this.flashes.delete(id);
    else this.flashes.set(id, list);
    return list;
  }

  /** What changed since the last call (views redraw only that). */
  takeChanges(): Changes {
    const c = this.changes;
    this.changes = { entries: new Set(), list: false, totals: false };
    return c;
  }
}
