import parseRange from 'range-parser';

/** What to send for a request, per RFC 9110 §14. `end` is inclusive. */
export type RangePlan = { kind: 'full' } | { kind: 'partial'; start: number; end: number } | { kind: 'unsatisfiable' };

/**
 * Plans the reply to a Range header for a representation of `size` bytes. A malformed header, a
 * unit other than bytes, or several ranges get the full body (200), which RFC 9110 allows and
 * every player accepts; `bytes=0-` stays a 206 because players read a 200 there as "not seekable".
 */
export function planRange(header: string | undefined, size: number): RangePlan {
  if (header === undefined) return { kind: 'full' };
  // No player sends a long header; refusing to parse one keeps hostile input cheap.
  if (header.length > 1024) return { kind: 'full' };
  // A unit other than bytes is ignored whatever the size (range-parser says 416 for size 0).
  if (!/^\s*bytes\s*=/.test(header)) return { kind: 'full' };
  // A spec whose last byte precedes its first is invalid (RFC 9110 §14.1.1), not unsatisfiable:
  // ignoring the header is the answer the RFC allows, where range-parser would say 416.
  for (const [, first, last] of header.matchAll(/(\d+)\s*-\s*(\d+)/g)) {
    if (Number(last) < Number(first)) return { kind: 'full' };
  }
  // A suffix longer than the representation means all of it (§14.1.2); range-parser drops it.
  const clamped = header.replace(/(^\s*bytes\s*=|,)\s*-(\d+)/gi, (spec, lead: string, n: string) =>
    Number(n) > size ? `${lead}0-` : spec,
  );
  const ranges = parseRange(size, clamped, { combine: true });
  if (ranges === -1) return { kind: 'unsatisfiable' };
  if (ranges === -2 || ranges.type !== 'bytes' || ranges.length !== 1) return { kind: 'full' };
  const [only] = ranges;
  if (!only) return { kind: 'full' };
  return { kind: 'partial', start: only.start, end: only.end };
}

/** The position a request will start reading at, before the size is known (`bytes=N-...`). */
export function startHint(header: string | undefined): number {
  const m = header === undefined ? null : /^bytes=(\d{1,15})-/.exec(header);
  return m ? Number(m[1]) : 0;
}
