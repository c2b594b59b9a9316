/** The totals strip: disk against the limits, hit ratio, bytes by origin, upstream rate, downloads. */
import { h } from './dom.js';
import { formatBytes, formatPercent, formatRate } from './format.js';
import { PRIORITIES, type Totals } from './types.js';

export function renderTotals(el: HTMLElement, t: Totals | null): void {
  if (!t) return;
  const d = t.disk;
  const used = d.maxBytes ? d.usedBytes / d.maxBytes : null;
  const meter = h('meter', {
    attrs: { min: '0', max: '1', value: String(used ?? 0), high: '0.9', 'aria-label': 'disk used against max size' },
  });
  const item = (label: string, key: string, value: string, extra?: Node): HTMLElement =>
    h('div', { className: 'total', attrs: { 'data-total': key } }, [
      h('dt', { text: label }),
      h('dd', { text: value }, extra ? [extra] : []),
    ]);
  const perPriority = PRIORITIES.map((p) => `${p[0]} ${formatRate(t.perPriority[p])}`).join(' · ');
  el.replaceChildren(
    item('Disk used', 'disk', `${formatBytes(d.usedBytes)} of ${d.maxBytes === null ? '—' : formatBytes(d.maxBytes)} max `, meter),
    item('Free', 'free', `${formatBytes(d.freeBytes)} (keep ${formatBytes(d.minFreeBytes)})`),
    item('Hit ratio', 'hit-ratio', formatPercent(t.hitRatio)),
    item('From cache / upstream', 'bytes', `${formatBytes(t.bytesFromCache)} / ${formatBytes(t.bytesFromUpstream)}`),
    item('Upstream now', 'rate', formatRate(t.upstreamBytesPerSecond)),
    item('By priority', 'per-priority', perPriority),
    item('Downloads', 'downloads', `${t.downloads.running} of ${t.downloads.max ?? '—'}`),
    item('Entries', 'entries', String(t.entries)),
  );
}
