/** The dashboard page: wires the store, the live link, the views and the actions together. */
import { api, describeError, onUnauthorized, setToken } from './api.js';
import { byId } from './dom.js';
import { LiveLink, loadMap, type LinkState } from './live.js';
import { DashboardStore } from './store.js';
import { copyText, EntriesTable, type Action } from './table.js';
import { renderTotals } from './totals.js';
import { STATES, type EntrySummary } from './types.js';

const store = new DashboardStore();
const body = document.body;
const messages = byId<HTMLElement>('messages');
const search = byId<HTMLInputElement>('search');
const stateFilter = byId<HTMLSelectElement>('state-filter');
for (const s of STATES) stateFilter.append(new Option(s, s));

/** Errors and confirmations, in words, for a few seconds. */
function say(text: string, kind: 'error' | 'info' = 'error'): void {
  const p = document.createElement('p');
  p.className = kind;
  p.textContent = text;
  const dismiss = document.createElement('button');
  dismiss.type = 'button';
  dismiss.className = 'small dismiss';
  dismiss.textContent = '×';
  dismiss.setAttribute('aria-label', 'dismiss');
  dismiss.addEventListener('click', () => p.remove());
  p.append(' ', dismiss);
  messages.prepend(p);
  while (messages.children.length > 4) messages.lastElementChild?.remove();
  setTimeout(() => p.remove(), kind === 'error' ? 12000 : 5000);
}

// The token is asked once per tab and kept in sessionStorage; concurrent 401s share one question.
let asking: Promise<void> | null = null;
function askToken(reason: string): Promise<void> {
  asking ??= new Promise<void>((resolve) => {
    const dialog = byId<HTMLDialogElement>('token-dialog');
    const input = byId<HTMLInputElement>('token-input');
    byId('token-reason').textContent = reason;
    input.value = '';
    dialog.addEventListener(
      'close',
      () => {
        setToken(input.value.trim() || null);
        asking = null;
        resolve();
      },
      { once: true },
    );
    dialog.showModal();
  });
  return asking;
}
onUnauthorized(askToken);

const table = new EntriesTable(byId<HTMLTableElement>('entries'), {
  onAction: (id, action, headBytes) => void act(id, action, headBytes),
  onExpand: (id, open) => {
    if (!open) return store.dropMap(id);
    store.wanted.add(id);
    void fetchMap(id);
  },
});

const live = new LiveLink({
  store,
  onChange: schedule,
  askToken,
  onState: (state: LinkState, detail: string) => {
    body.dataset.link = state;
    const words: Record<LinkState, string> = {
      connecting: 'connecting…',
      live: 'live',
      retrying: 'reconnecting…',
      unauthorized: 'waiting for the access token',
    };
    byId('link-status').textContent = detail ? `${words[state]} — ${detail}` : words[state];
  },
});

const loadingMaps = new Set<string>();
async function fetchMap(id: string): Promise<void> {
  if (loadingMaps.has(id)) return;
  loadingMaps.add(id);
  try {
    await loadMap(store, id);
    schedule();
  } catch (err) {
    say(describeError('Loading the chunk map', err));
  } finally {
    loadingMaps.delete(id);
  }
}

const ACTIONS: Record<Action, { words: string; run: (id: string, headBytes?: number) => Promise<unknown> }> = {
  prefetch: { words: 'Prefetch', run: (id) => api('POST', `/api/entries/${id}/prefetch`) },
  pause: { words: 'Pause', run: (id) => api('DELETE', `/api/entries/${id}/prefetch`) },
  pin: { words: 'Pin', run: (id) => api('POST', `/api/entries/${id}/pin`) },
  'pin-head': { words: 'Head pin', run: (id, headBytes) => api('POST', `/api/entries/${id}/pin`, { headBytes }) },
  unpin: { words: 'Unpin', run: (id) => api('DELETE', `/api/entries/${id}/pin`) },
  verify: { words: 'Verify', run: (id) => api('POST', `/api/entries/${id}/verify`) },
  remove: { words: 'Remove', run: (id) => api('DELETE', `/api/entries/${id}`) },
};

/** Runs an action through the API; the entry's new state comes back as the API reports it. */
async function act(id: string, action: Action, headBytes?: number): Promise<void> {
  const { words, run } = ACTIONS[action];
  try {
    const answer = await run(id, headBytes);
    if (action === 'verify') {
      const v = answer as { chunks: number; damaged: unknown[] };
      const damaged = v.damaged.length === 1 ? '1 damaged range dropped' : `${v.damaged.length} damaged ranges dropped`;
      say(`Verify: ${v.chunks} chunks checked, ${v.damaged.length ? damaged : 'all intact'}.`, 'info');
    }
    if (action === 'remove') store.applyLocal({ type: 'entry-removed', data: { id } }, Date.now());
    else if (answer && typeof answer === 'object' && 'id' in answer)
      store.applyLocal({ type: 'entry', data: answer as EntrySummary }, Date.now());
    schedule();
  } catch (err) {
    say(describeError(words, err));
  }
}

byId<HTMLFormElement>('add-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = byId<HTMLInputElement>('add-url');
  void (async () => {
    try {
      const entry = await api<EntrySummary>('POST', '/api/entries', { url: input.value.trim() });
      byId<HTMLInputElement>('added-url').value = entry.streamUrl;
      byId('added').hidden = false;
      store.applyLocal({ type: 'entry', data: entry }, Date.now());
      schedule();
      input.value = '';
    } catch (err) {
      say(describeError('Adding the URL', err));
    }
  })();
});
byId('copy-added').addEventListener('click', () => copyText(byId<HTMLInputElement>('added-url')));
byId('reconnect').addEventListener('click', () => live.reconnect());

let searchTimer: ReturnType<typeof setTimeout> | undefined;
const refilter = (): void => {
  table.setFilter(stateFilter.value, search.value);
  draw(true);
  // The stream lists the 1,000 most recently used entries: a search also asks the API for older ones.
  clearTimeout(searchTimer);
  const q = search.value.trim();
  if (store.truncated && q) searchTimer = setTimeout(() => void searchOlder(q), 300);
};
async function searchOlder(q: string): Promise<void> {
  try {
    const page = await api<{ entries: EntrySummary[] }>('GET', `/api/entries?limit=200&q=${encodeURIComponent(q)}`);
    for (const e of page.entries) if (!store.entries.has(e.id)) store.applyLocal({ type: 'entry', data: e }, Date.now());
    schedule();
  } catch (err) {
    say(describeError('Searching', err));
  }
}
search.addEventListener('input', refilter);
stateFilter.addEventListener('change', refilter);
table.table.addEventListener('resort', () => draw(true));

document.addEventListener('keydown', (ev) => {
  const typing =
    ev.target instanceof HTMLInputElement || ev.target instanceof HTMLSelectElement || ev.target instanceof HTMLTextAreaElement;
  if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (ev.key === '/') search.focus();
  else if (ev.key === 'a') byId('add-url').focus();
  else return;
  ev.preventDefault();
});

let pending = false;
let lastSnapshots = 0;
function schedule(): void {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    draw(false);
  });
}

/** Redraws what changed; `all` after a sort or filter change. */
function draw(all: boolean): void {
  const now = Date.now();
  const changes = store.takeChanges();
  if (store.snapshots !== lastSnapshots) {
    // A fresh snapshot dropped the maps: fetch those of expanded rows again.
    lastSnapshots = store.snapshots;
    for (const id of store.wanted) void fetchMap(id);
  }
  table.update(store.entries, all || changes.list ? store.entries.keys() : changes.entries, now);
  if (changes.totals) renderTotals(byId('totals'), store.totals);
  for (const id of store.wanted) {
    if (all || changes.entries.has(id)) drawMap(id, now);
  }
  const known = store.totals?.entries ?? 0;
  byId('entry-count').textContent = known > store.entries.size ? `(${store.entries.size} of ${known})` : `(${store.entries.size})`;
  byId('truncated').hidden = !store.truncated && known <= store.entries.size;
  const d = body.dataset;
  d.seq = String(store.lastSeq);
  d.gaps = String(store.gaps);
  d.snapshots = String(store.snapshots);
  d.connections = String(live.connections);
  d.messages = String(store.messages);
}

function drawMap(id: string, now: number): void {
  const view = table.mapOf(id);
  const e = store.entries.get(id);
  if (!view || !e) return;
  if (store.hasMap(id) && store.mapVersion(id) !== e.version) void fetchMap(id);
  view.render({
    totalBytes: e.totalBytes,
    chunkSize: e.chunkSize,
    stored: store.stored(id),
    transfers: store.transfersOf(id),
    queued: store.queueOf(id),
    players: store.playersOf(id),
    flashes: store.flashesOf(id, now),
  });
}

// Once a second: "… ago" columns, and flashes of removed ranges fading out.
setInterval(() => {
  const now = Date.now();
  table.tick(store.entries, now);
  for (const id of store.wanted) drawMap(id, now);
}, 1000);

live.start();
