/**
 * The entries table: one row per entry, sortable, filtered by state and text, with a details row
 * (stream URL, head pin, chunk map) for expanded entries only. Rows are kept and updated in place,
 * so a thousand entries cost one DOM row each and a change redraws its row alone.
 */
import { h } from './dom.js';
import { formatAgo, formatBytes, formatEta, formatRate, nameFromUrl } from './format.js';
import { ChunkMapView } from './chunk-map.js';
import type { EntrySummary } from './types.js';

export type Action = 'prefetch' | 'pause' | 'pin' | 'pin-head' | 'unpin' | 'verify' | 'remove';

export interface TableOptions {
  onAction(id: string, action: Action, headBytes?: number): void;
  onExpand(id: string, expanded: boolean): void;
}

type SortKey = 'name' | 'state' | 'size' | 'cached' | 'rate' | 'eta' | 'pin' | 'access';

const COLUMNS: Array<{ key: SortKey; label: string }> = [
  { key: 'name', label: 'Name' },
  { key: 'state', label: 'State' },
  { key: 'size', label: 'Size' },
  { key: 'cached', label: 'Cached' },
  { key: 'rate', label: 'Rate' },
  { key: 'eta', label: 'ETA' },
  { key: 'pin', label: 'Pin' },
  { key: 'access', label: 'Last access' },
];

const sortValue: Record<SortKey, (e: EntrySummary) => string | number> = {
  name: (e) => nameFromUrl(e.url).toLowerCase(),
  state: (e) => e.state,
  size: (e) => e.totalBytes ?? -1,
  cached: (e) => e.progress.percent ?? -1,
  rate: (e) => e.progress.bytesPerSecond,
  eta: (e) => e.progress.etaSeconds ?? Infinity,
  pin: (e) => (!e.pinned ? 0 : e.pinHeadBytes === null ? 2 : 1),
  access: (e) => Date.parse(e.lastAccessed),
};

interface Row {
  tr: HTMLTableRowElement;
  cells: Record<SortKey, HTMLTableCellElement>;
  toggle: HTMLButtonElement;
  prefetch: HTMLButtonElement;
  pin: HTMLButtonElement;
  remove: HTMLButtonElement;
  details?: { tr: HTMLTableRowElement; map: ChunkMapView; url: HTMLInputElement; error: HTMLElement };
}

export class EntriesTable {
  readonly body: HTMLTableSectionElement;
  private readonly rows = new Map<string, Row>();
  private readonly expanded = new Set<string>();
  private sort: { key: SortKey; desc: boolean } = { key: 'access', desc: true };
  private stateFilter = '';
  private search = '';
  private order: string[] = [];
  private readonly headers = new Map<SortKey, HTMLTableCellElement>();

  constructor(
    readonly table: HTMLTableElement,
    private readonly o: TableOptions,
  ) {
    const head = h('tr', {}, [h('th', { attrs: { scope: 'col' } }, [h('span', { className: 'visually-hidden', text: 'Details' })])]);
    for (const c of COLUMNS) {
      const button = h('button', { text: c.label, attrs: { type: 'button', class: 'sort' } });
      button.addEventListener('click', () => this.setSort(c.key));
      const th = h('th', { attrs: { scope: 'col', 'aria-sort': 'none', 'data-col': c.key } }, [button]);
      this.headers.set(c.key, th);
      head.append(th);
    }
    head.append(h('th', { text: 'Actions', attrs: { scope: 'col' } }));
    this.body = h('tbody');
    table.replaceChildren(h('thead', {}, [head]), this.body);
    this.body.addEventListener('keydown', (ev) => this.key(ev));
    this.markSort();
  }

  setFilter(state: string, search: string): void {
    this.stateFilter = state;
    this.search = search.trim().toLowerCase();
  }

  isExpanded(id: string): boolean {
    return this.expanded.has(id);
  }

  mapOf(id: string): ChunkMapView | undefined {
    return this.rows.get(id)?.details?.map;
  }

  /** Redraws the given entries' rows, then puts the rows in order (only moving what moved). */
  update(entries: ReadonlyMap<string, EntrySummary>, changed: Iterable<string>, now: number): void {
    for (const [id, row] of this.rows) {
      if (entries.has(id)) continue;
      row.tr.remove();
      row.details?.tr.remove();
      this.rows.delete(id);
      this.expanded.delete(id);
    }
    for (const id of changed) {
      const e = entries.get(id);
      if (e) this.fill(this.rows.get(id) ?? this.create(e), e, now);
    }
    this.reorder(entries);
  }

  /** Refreshes the "… ago" column (once a second). */
  tick(entries: ReadonlyMap<string, EntrySummary>, now: number): void {
    for (const [id, row] of this.rows) {
      const e = entries.get(id);
      if (e) row.cells.access.textContent = formatAgo(e.lastAccessed, now);
    }
  }

  private create(e: EntrySummary): Row {
    const cells = {} as Record<SortKey, HTMLTableCellElement>;
    for (const c of COLUMNS) cells[c.key] = h(c.key === 'name' ? 'th' : 'td', c.key === 'name' ? { attrs: { scope: 'row' } } : {});
    const button = (text: string, action: Action | (() => void)): HTMLButtonElement => {
      const b = h('button', { text, attrs: { type: 'button', class: 'small' } });
      b.addEventListener('click', () => (typeof action === 'function' ? action() : this.o.onAction(e.id, action)));
      return b;
    };
    const toggle = h('button', {
      text: '▸',
      attrs: { type: 'button', class: 'toggle', 'aria-expanded': 'false', 'aria-label': 'show chunk map' },
    });
    toggle.addEventListener('click', () => this.toggle(e.id));
    const row: Row = {
      tr: h('tr', { attrs: { 'data-id': e.id, tabindex: '-1' } }),
      cells,
      toggle,
      prefetch: button('Prefetch', () => this.o.onAction(e.id, row.prefetch.dataset.action as Action)),
      pin: button('Pin', () => this.o.onAction(e.id, row.pin.dataset.action as Action)),
      remove: button('Remove', () => this.confirmRemove(e.id, row.remove)),
    };
    const actions = h('td', { className: 'actions' }, [row.prefetch, row.pin, button('Verify', 'verify'), row.remove]);
    row.tr.append(h('td', {}, [toggle]), ...COLUMNS.map((c) => cells[c.key]), actions);
    this.rows.set(e.id, row);
    if (this.rows.size === 1) row.tr.tabIndex = 0;
    return row;
  }

  private fill(row: Row, e: EntrySummary, now: number): void {
    const c = row.cells;
    const name = nameFromUrl(e.url);
    c.name.textContent = name;
    c.name.title = e.url;
    c.state.textContent = e.state;
    c.state.className = `state s-${e.state}`;
    c.size.textContent = formatBytes(e.totalBytes);
    c.cached.textContent = e.progress.percent === null ? '—' : `${e.progress.percent.toFixed(1)} %`;
    const downloading = e.state === 'Downloading' || e.state === 'Initializing';
    c.rate.textContent = downloading ? formatRate(e.progress.bytesPerSecond) : '—';
    c.eta.textContent = downloading ? formatEta(e.progress.etaSeconds) : '—';
    const pin = pinOf(e);
    c.pin.textContent = pin === 'head' ? `head ${formatBytes(e.pinHeadBytes)}` : pin === 'none' ? '—' : pin;
    c.access.textContent = formatAgo(e.lastAccessed, now);
    row.tr.dataset.state = e.state;
    row.tr.dataset.pin = pin;
    row.tr.dataset.search = `${name} ${e.url} ${e.id}`.toLowerCase();
    setAction(
      row.prefetch,
      downloading ? 'pause' : 'prefetch',
      downloading ? 'Pause' : 'Prefetch',
      `${downloading ? 'pause' : 'prefetch'} ${name}`,
    );
    row.prefetch.disabled = e.state === 'Complete';
    const pinned = pin !== 'none';
    setAction(row.pin, pinned ? 'unpin' : 'pin', pinned ? 'Unpin' : 'Pin', `${pinned ? 'unpin' : 'pin'} ${name}`);
    row.remove.setAttribute('aria-label', `remove ${name}`);
    if (row.details) {
      row.details.url.value = e.streamUrl;
      row.details.error.textContent = e.error ? `Error: ${e.error}` : '';
    }
  }

  private reorder(entries: ReadonlyMap<string, EntrySummary>): void {
    const { key, desc } = this.sort;
    const value = sortValue[key];
    const visible = [...entries.values()].filter((e) => {
      const row = this.rows.get(e.id);
      return (
        row && (!this.stateFilter || e.state === this.stateFilter) && (!this.search || (row.tr.dataset.search ?? '').includes(this.search))
      );
    });
    visible.sort((a, b) => {
      const x = value(a);
      const y = value(b);
      const cmp = x < y ? -1 : x > y ? 1 : a.id < b.id ? -1 : 1;
      return desc ? -cmp : cmp;
    });
    const order = visible.map((e) => e.id);
    if (order.length === this.order.length && order.every((id, i) => id === this.order[i])) return;
    this.order = order;
    const shown = new Set(order);
    for (const [id, row] of this.rows) {
      if (shown.has(id)) continue;
      row.tr.remove();
      row.details?.tr.remove();
    }
    const nodes: Node[] = [];
    for (const id of order) {
      const row = this.rows.get(id);
      if (!row) continue;
      nodes.push(row.tr);
      if (row.details) nodes.push(row.details.tr);
    }
    this.body.replaceChildren(...nodes);
    // One row stays in the tab order (roving tabindex), even when a filter hid the one that was.
    const first = this.rows.get(order[0] ?? '');
    if (first && !order.some((id) => this.rows.get(id)?.tr.tabIndex === 0)) first.tr.tabIndex = 0;
  }

  private toggle(id: string): void {
    const row = this.rows.get(id);
    if (!row) return;
    const open = !this.expanded.has(id);
    row.toggle.setAttribute('aria-expanded', String(open));
    row.toggle.textContent = open ? '▾' : '▸';
    row.toggle.setAttribute('aria-label', open ? 'hide chunk map' : 'show chunk map');
    if (open) {
      this.expanded.add(id);
      row.details = this.details(id);
      row.tr.after(row.details.tr);
    } else {
      this.expanded.delete(id);
      row.details?.tr.remove();
      delete row.details;
    }
    this.o.onExpand(id, open);
  }

  private details(id: string): NonNullable<Row['details']> {
    const map = new ChunkMapView(id);
    const url = h('input', { attrs: { type: 'text', readonly: '', class: 'stream-url', 'aria-label': 'stream URL' } });
    const copy = h('button', { text: 'Copy', attrs: { type: 'button', class: 'small' } });
    copy.addEventListener('click', () => copyText(url));
    const size = h('input', { attrs: { type: 'number', min: '1', value: '64', class: 'head-size', 'aria-label': 'head pin size in MiB' } });
    const headPin = h('button', { text: 'Pin head', attrs: { type: 'button', class: 'small' } });
    headPin.addEventListener('click', () => this.o.onAction(id, 'pin-head', Math.round(Number(size.value) * 1024 * 1024)));
    const error = h('p', { className: 'entry-error', attrs: { role: 'status' } });
    const legend = h('ul', { className: 'legend', attrs: { 'aria-label': 'legend' } }, [
      ...['stored', 'transfer', 'queued p-CRITICAL', 'queued p-HIGH', 'queued p-MEDIUM', 'queued p-LOW', 'player-key', 'flash evicted'].map(
        (k) => h('li', {}, [h('span', { className: `swatch ${k}` }), LEGEND[k] ?? k]),
      ),
    ]);
    const cell = h('td', { attrs: { colspan: String(COLUMNS.length + 2) } }, [
      h('div', { className: 'detail-line' }, [
        h('label', { text: 'Stream URL ' }, [url]),
        copy,
        h('label', { text: 'Head pin ' }, [size, ' MiB']),
        headPin,
      ]),
      error,
      map.el,
      legend,
    ]);
    return { tr: h('tr', { className: 'details', attrs: { 'data-details-for': id } }, [cell]), map, url, error };
  }

  private confirmRemove(id: string, button: HTMLButtonElement): void {
    if (button.dataset.confirm === 'yes') {
      this.o.onAction(id, 'remove');
      return;
    }
    button.dataset.confirm = 'yes';
    button.textContent = 'Confirm remove';
    setTimeout(() => {
      button.dataset.confirm = '';
      button.textContent = 'Remove';
    }, 4000);
  }

  private setSort(key: SortKey): void {
    this.sort = { key, desc: this.sort.key === key ? !this.sort.desc : key === 'access' || key === 'rate' };
    this.order = [];
    this.markSort();
  }

  private markSort(): void {
    for (const [k, th] of this.headers)
      th.setAttribute('aria-sort', k === this.sort.key ? (this.sort.desc ? 'descending' : 'ascending') : 'none');
    this.table.dispatchEvent(new CustomEvent('resort'));
  }

  /** Arrow keys move between rows (one row in the tab order), Enter or Space opens its map. */
  private key(ev: KeyboardEvent): void {
    const tr = (ev.target as HTMLElement).closest('tr[data-id]');
    if (!(tr instanceof HTMLTableRowElement) || ev.target !== tr) return;
    const rows = [...this.body.querySelectorAll<HTMLTableRowElement>('tr[data-id]')];
    const i = rows.indexOf(tr);
    const go = (j: number): void => {
      const next = rows[Math.max(0, Math.min(rows.length - 1, j))];
      if (!next) return;
      for (const r of rows) r.tabIndex = -1;
      next.tabIndex = 0;
      next.focus();
    };
    const keys: Record<string, () => void> = {
      ArrowDown: () => go(i + 1),
      ArrowUp: () => go(i - 1),
      Home: () => go(0),
      End: () => go(rows.length - 1),
      Enter: () => this.toggle(tr.dataset.id ?? ''),
      ' ': () => this.toggle(tr.dataset.id ?? ''),
    };
    const fn = keys[ev.key];
    if (!fn) return;
    ev.preventDefault();
    fn();
  }
}

const LEGEND: Record<string, string> = {
  stored: 'stored',
  transfer: 'downloading (fill = progress)',
  'queued p-CRITICAL': 'queued CRITICAL (C)',
  'queued p-HIGH': 'queued HIGH (H)',
  'queued p-MEDIUM': 'queued MEDIUM (M)',
  'queued p-LOW': 'queued LOW (L)',
  'player-key': 'player position',
  'flash evicted': 'just evicted / invalidated',
};

/** A head pin is `pinned` with the bytes it keeps; a whole pin has none. */
function pinOf(e: EntrySummary): 'whole' | 'head' | 'none' {
  return !e.pinned ? 'none' : e.pinHeadBytes === null ? 'whole' : 'head';
}

function setAction(b: HTMLButtonElement, action: string, text: string, label: string): void {
  b.dataset.action = action;
  b.textContent = text;
  b.setAttribute('aria-label', label);
}

/** Copies an input's text; selects it when the clipboard is not available. */
export function copyText(input: HTMLInputElement): void {
  input.select();
  void navigator.clipboard?.writeText(input.value).catch(() => undefined);
}
