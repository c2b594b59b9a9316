/** Inclusive byte-range arithmetic for chunk maps: sorted, disjoint, coalesced lists. */
import type { Range } from './types.js';

/** Adds [start, end] to a sorted disjoint list, merging what touches or overlaps. */
export function addRange(list: readonly Range[], start: number, end: number): Range[] {
  const out: Range[] = [];
  let s = start;
  let e = end;
  let placed = false;
  for (const [a, b] of list) {
    if (b + 1 < s) out.push([a, b]);
    else if (a > e + 1) {
      if (!placed) out.push([s, e]);
      placed = true;
      out.push([a, b]);
    } else {
      s = Math.min(s, a);
      e = Math.max(e, b);
    }
  }
  if (!placed) out.push([s, e]);
  return out;
}

/** Removes [start, end] from a sorted disjoint list. */
export function removeRange(list: readonly Range[], start: number, end: number): Range[] {
  const out: Range[] = [];
  for (const [a, b] of list) {
    if (b < start || a > end) {
      out.push([a, b]);
      continue;
    }
    if (a < start) out.push([a, start - 1]);
    if (b > end) out.push([end + 1, b]);
  }
  return out;
}

export function rangeBytes(list: readonly Range[]): number {
  return list.reduce((sum, [a, b]) => sum + b - a + 1, 0);
}

/** The range of `list` that holds `offset`, if any. */
export function rangeAt(list: readonly Range[], offset: number): Range | undefined {
  return list.find(([a, b]) => a <= offset && offset <= b);
}

/** A bar segment in pixels. */
export interface Segment {
  left: number;
  width: number;
}

/**
 * Lays ranges out on a bar of `widthPx` pixels showing bytes [viewStart, viewEnd]: ranges outside the
 * view are dropped, and those closer than a pixel merge, so a file of 10,000 fragments draws as at most
 * one element per pixel.
 */
export function layoutRanges(list: readonly Range[], viewStart: number, viewEnd: number, widthPx: number): Segment[] {
  const span = viewEnd - viewStart + 1;
  if (span <= 0 || widthPx <= 0) return [];
  const scale = widthPx / span;
  const out: Segment[] = [];
  for (const [a, b] of list) {
    if (b < viewStart || a > viewEnd) continue;
    const left = (Math.max(a, viewStart) - viewStart) * scale;
    const right = (Math.min(b, viewEnd) + 1 - viewStart) * scale;
    const last = out[out.length - 1];
    if (last && left - (last.left + last.width) < 1) last.width = Math.max(last.width, right - last.left);
    else out.push({ left, width: right - left });
  }
  for (const seg of out) seg.width = Math.max(seg.width, 1);
  return out;
}
