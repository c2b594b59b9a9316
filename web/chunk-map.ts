/**
 * The chunk map of one entry: a bar over the file's bytes (or a zoomed part of it) with stored
 * ranges, transfers and their progress, queued chunks by priority (pattern and letter, not colour
 * alone), players' positions and removals as they happen. What it draws is also written into
 * `data-*` attributes and an accessible description, so tests and screen readers read the same map.
 */
import { h } from './dom.js';
import { formatBytes, formatOffset } from './format.js';
import { layoutRanges, rangeAt, rangeBytes } from './ranges.js';
import type { Flash } from './store.js';
import type { Player, Queued, Range, Transfer } from './types.js';

export interface MapInput {
  totalBytes: number | null;
  chunkSize: number;
  /** Undefined while the map is being fetched. */
  stored: Range[] | undefined;
  transfers: Transfer[];
  queued: Queued[];
  players: Player[];
  flashes: Flash[];
}

const LETTER = { CRITICAL: 'C', HIGH: 'H', MEDIUM: 'M', LOW: 'L' } as const;
const MIN_SPAN = 4096;

const span = (r: Range): string => `${r[0]}-${r[1]}`;

export class ChunkMapView {
  readonly el: HTMLElement;
  private readonly bar: HTMLElement;
  private readonly readout: HTMLElement;
  private readonly desc: HTMLElement;
  private readonly zoomLabel: HTMLElement;
  /** Bytes shown: null for the whole file. */
  private view: Range | null = null;
  private input: MapInput | null = null;

  constructor(entryId: string) {
    const descId = `map-desc-${entryId}`;
    this.bar = h('div', {
      className: 'map-bar',
      attrs: { tabindex: '0', role: 'img', 'aria-describedby': descId, 'data-entry': entryId, 'aria-label': 'chunk map' },
    });
    this.desc = h('p', { className: 'visually-hidden', attrs: { id: descId } });
    this.readout = h('div', {
      className: 'map-readout',
      text: 'Point at the map for byte offsets; + and − zoom, arrows pan.',
      attrs: { 'aria-live': 'polite' },
    });
    this.zoomLabel = h('span', { className: 'zoom-label', text: 'whole file' });
    const button = (text: string, label: string, fn: () => void): HTMLButtonElement => {
      const b = h('button', { text, attrs: { type: 'button', 'aria-label': label, class: 'small' } });
      b.addEventListener('click', fn);
      return b;
    };
    const tools = h('div', { className: 'map-tools' }, [
      button('−', 'zoom out', () => this.zoom(2)),
      button('+', 'zoom in', () => this.zoom(0.5)),
      button('Whole file', 'show the whole file', () => this.setView(null)),
      this.zoomLabel,
    ]);
    this.el = h('div', { className: 'chunk-map' }, [tools, this.bar, this.readout, this.desc]);
    // Measured from the bar, whatever segment is under the pointer.
    this.bar.addEventListener('mousemove', (ev) => this.hover(ev.clientX - this.bar.getBoundingClientRect().left));
    this.bar.addEventListener('wheel', (ev) => {
      ev.preventDefault();
      this.zoom(ev.deltaY > 0 ? 2 : 0.5, this.offsetAt(ev.clientX - this.bar.getBoundingClientRect().left));
    });
    this.bar.addEventListener('keydown', (ev) => this.key(ev));
  }

  render(input: MapInput): void {
    this.input = input;
    const total = input.totalBytes;
    const bar = this.bar;
    bar.replaceChildren();
    if (total === null || total <= 0) {
      bar.dataset.total = '';
      this.desc.textContent = 'Size not known yet.';
      bar.append(h('span', { className: 'map-note', text: 'size not known yet' }));
      return;
    }
    const [v0, v1] = this.view ?? [0, total - 1];
    const width = bar.clientWidth || 600;
    const pct = (px: number): string => `${(px / width) * 100}%`;
    const place = (el: HTMLElement, left: number, w: number): HTMLElement => {
      el.style.left = pct(left);
      el.style.width = pct(w);
      return el;
    };
    const layout = (r: Range): { left: number; width: number } | undefined => layoutRanges([r], v0, v1, width)[0];

    for (const seg of layoutRanges(input.stored ?? [], v0, v1, width))
      bar.append(place(h('div', { className: 'seg stored' }), seg.left, seg.width));
    for (const f of input.flashes) {
      const seg = layout([f.start, f.end]);
      if (seg) bar.append(place(h('div', { className: `seg flash ${f.reason}`, attrs: { title: f.reason } }), seg.left, seg.width));
    }
    for (const q of input.queued) {
      const start = q.chunkIndex * input.chunkSize;
      const seg = layout([start, Math.min(start + input.chunkSize, total) - 1]);
      if (seg)
        bar.append(
          place(
            h('div', { className: `seg queued p-${q.priority}`, text: seg.width >= 14 ? LETTER[q.priority] : '' }),
            seg.left,
            seg.width,
          ),
        );
    }
    for (const t of input.transfers) {
      const seg = layout([t.start, t.end]);
      if (!seg) continue;
      const done = Math.max(0, Math.min(1, (t.position - t.start) / (t.end - t.start + 1)));
      const fill = h('div', { className: 'fill' });
      fill.style.width = `${done * 100}%`;
      bar.append(
        place(
          h('div', { className: `seg transfer p-${t.priority}`, text: seg.width >= 14 ? LETTER[t.priority] : '' }, [fill]),
          seg.left,
          seg.width,
        ),
      );
    }
    for (const p of input.players) {
      if (p.position < v0 || p.position > v1) continue;
      const marker = h('div', { className: 'player', attrs: { title: `player ${p.playerId} at byte ${formatOffset(p.position)}` } });
      marker.style.left = pct(((p.position - v0) / (v1 - v0 + 1)) * width);
      bar.append(marker);
    }
    this.describe(input, total);
  }

  /** The map as data: ranges `start-end` separated by spaces (tests and assistive technology read these). */
  private describe(input: MapInput, total: number): void {
    const d = this.bar.dataset;
    d.total = String(total);
    d.stored = (input.stored ?? []).map(span).join(' ');
    d.transfers = input.transfers.map((t) => `${t.priority}:${t.start}-${t.end}@${t.position}`).join(' ');
    d.queued = input.queued.map((q) => `${q.priority}:${q.chunkIndex}`).join(' ');
    d.players = input.players.map((p) => `${p.playerId}@${p.position}`).join(' ');
    d.flashes = input.flashes.map((f) => `${f.reason}:${f.start}-${f.end}`).join(' ');
    d.view = span(this.view ?? [0, total - 1]);
    const storedBytes = rangeBytes(input.stored ?? []);
    const parts = [
      input.stored === undefined
        ? 'Stored ranges loading.'
        : `Stored ${formatBytes(storedBytes)} of ${formatBytes(total)} in ${input.stored.length} ranges: ${
            input.stored
              .slice(0, 20)
              .map((r) => `${formatOffset(r[0])} to ${formatOffset(r[1])}`)
              .join(', ') || 'none'
          }.`,
      input.transfers.length
        ? `Downloading: ${input.transfers.map((t) => `${t.priority} chunk ${t.chunkIndex} at byte ${formatOffset(t.position)}`).join(', ')}.`
        : 'No download under way.',
      input.queued.length ? `Queued: ${input.queued.length} chunks.` : '',
      input.players.length ? `Players at bytes ${input.players.map((p) => formatOffset(p.position)).join(', ')}.` : '',
    ];
    this.desc.textContent = parts.filter(Boolean).join(' ');
  }

  private offsetAt(x: number): number {
    const total = this.input?.totalBytes ?? 0;
    const [v0, v1] = this.view ?? [0, total - 1];
    const width = this.bar.clientWidth || 1;
    return Math.max(v0, Math.min(v1, Math.floor(v0 + (x / width) * (v1 - v0 + 1))));
  }

  private hover(x: number): void {
    const input = this.input;
    if (!input?.totalBytes) return;
    const at = this.offsetAt(x);
    const chunk = Math.floor(at / input.chunkSize);
    const t = input.transfers.find((tr) => tr.start <= at && at <= tr.end);
    const q = input.queued.find((qq) => qq.chunkIndex === chunk);
    const r = rangeAt(input.stored ?? [], at);
    const what = t
      ? `downloading chunk ${t.chunkIndex} (${t.priority}): ${formatOffset(t.start)}–${formatOffset(t.end)}, ${formatBytes(t.position - t.start)} of ${formatBytes(t.end - t.start + 1)} written`
      : r
        ? `stored ${formatOffset(r[0])}–${formatOffset(r[1])} (${formatBytes(r[1] - r[0] + 1)})`
        : q
          ? `queued chunk ${q.chunkIndex} (${q.priority})`
          : `missing (chunk ${chunk})`;
    this.readout.textContent = `Byte ${formatOffset(at)}: ${what}`;
  }

  private zoom(factor: number, around?: number): void {
    const total = this.input?.totalBytes;
    if (!total) return;
    const [v0, v1] = this.view ?? [0, total - 1];
    const center = around ?? (v0 + v1 + 1) / 2;
    const size = Math.max(MIN_SPAN, Math.min(total, Math.round((v1 - v0 + 1) * factor)));
    const start = Math.max(0, Math.min(total - size, Math.round(center - size / 2)));
    this.setView(size >= total ? null : [start, start + size - 1]);
  }

  private pan(fraction: number): void {
    const total = this.input?.totalBytes;
    if (!total || !this.view) return;
    const size = this.view[1] - this.view[0] + 1;
    const start = Math.max(0, Math.min(total - size, this.view[0] + Math.round(size * fraction)));
    this.setView([start, start + size - 1]);
  }

  private setView(view: Range | null): void {
    this.view = view;
    this.zoomLabel.textContent = view ? `bytes ${formatOffset(view[0])}–${formatOffset(view[1])}` : 'whole file';
    if (this.input) this.render(this.input);
  }

  private key(ev: KeyboardEvent): void {
    const actions: Record<string, () => void> = {
      '+': () => this.zoom(0.5),
      '=': () => this.zoom(0.5),
      '-': () => this.zoom(2),
      '0': () => this.setView(null),
      ArrowLeft: () => this.pan(-0.25),
      ArrowRight: () => this.pan(0.25),
    };
    const fn = actions[ev.key];
    if (!fn) return;
    ev.preventDefault();
    ev.stopPropagation();
    fn();
  }
}
