import type { EntryStatus } from '../cache.js';
import { formatBytes } from '../units.js';

export function percent(e: EntryStatus): string {
  return e.totalBytes ? `${((100 * e.downloadedBytes) / e.totalBytes).toFixed(1)}%` : e.totalBytes === 0 ? '100.0%' : '?';
}

export function pinText(e: EntryStatus): string {
  if (!e.pinned) return '-';
  return e.pinHeadBytes === null ? 'yes' : `head ${formatBytes(e.pinHeadBytes)}`;
}

/** "2025-01-31 18:04Z": minutes are enough to compare recency. */
export function shortTime(iso: string): string {
  return `${iso.slice(0, 16).replace('T', ' ')}Z`;
}

/** One entry, with its chunk map as a text bar: █ stored, ░ missing. */
export function describe(e: EntryStatus): string {
  const lines = [
    `id:         ${e.id}`,
    `url:        ${e.url}`,
    `state:      ${e.state}`,
    `size:       ${e.totalBytes === null ? 'unknown' : formatBytes(e.totalBytes)}`,
    `bitrate:    ${e.bitrate === null ? 'unknown' : `${(e.bitrate / 1e6).toFixed(1)} Mbit/s`}`,
    `cached:     ${formatBytes(e.downloadedBytes)} (${percent(e)})`,
    `pending:    ${e.pendingChunks} chunk(s)`,
    `pinned:     ${pinText(e)}`,
    `accessed:   ${shortTime(e.lastAccessed)}`,
  ];
  if (e.progress.bytesPerSecond > 0 && e.state === 'Downloading') {
    const eta = e.progress.etaSeconds === null ? '' : `, ETA ${formatDuration(e.progress.etaSeconds)}`;
    lines.push(`rate:       ${formatBytes(e.progress.bytesPerSecond)}/s${eta}`);
  }
  if (e.error) lines.push(`error:      ${e.error}`);
  if (e.totalBytes) lines.push(`chunk map:  [${chunkBar(e, 60)}]`);
  return `${lines.join('\n')}\n`;
}

export function chunkBar(e: EntryStatus, width: number): string {
  const total = e.totalBytes ?? 0;
  let bar = '';
  for (let i = 0; i < width; i++) {
    const from = Math.floor((i * total) / width);
    const to = Math.max(from, Math.floor(((i + 1) * total) / width) - 1);
    const covered = e.chunks.some(([s, end]) => s <= from && end >= to);
    bar += covered ? '█' : '░';
  }
  return bar;
}

export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Left-aligned columns separated by two spaces; the last column is not padded. */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  return formatRows(all, columnWidths(all));
}

/** The width of each column over `rows`, at least `min[c]`. */
export function columnWidths(rows: string[][], min: readonly number[] = []): number[] {
  const first = rows[0] ?? [];
  return first.map((_, c) => Math.max(min[c] ?? 0, ...rows.map((r) => (r[c] ?? '').length)));
}

/** Rows padded to `widths` (the last column is not padded), one per line. */
export function formatRows(rows: string[][], widths: readonly number[]): string {
  return rows
    .map(
      (r) =>
        r
          .map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c] ?? 0)))
          .join('  ')
          .trimEnd() + '\n',
    )
    .join('');
}
