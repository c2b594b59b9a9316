/** One satisfiable byte range, `end` inclusive. */
export interface ByteRange {
  start: number;
  end: number;
}

/** What to send for a request, per RFC 9110 §14. */
export type RangePlan =
  | { kind: 'full' }
  | { kind: 'partial'; start: number; end: number }
  | { kind: 'multipart'; ranges: ByteRange[] }
  | { kind: 'unsatisfiable' };

/** Above this many parts a multi-range request gets the whole body (RFC 9110 §14.2 allows it). */
export const MAX_PARTS = 32;

// No white space between the unit and '=' (§14.1): `bytes = 0-9` is not a range-set.
const RANGE_HEADER = /^\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)=\s*(.*)$/s;
const INT_RANGE = /^(\d+)\s*-\s*(\d*)$/;
const SUFFIX_RANGE = /^-\s*(\d+)$/;

/**
 * Plans the reply to a Range header for a representation of `size` bytes (RFC 9110 §14.1–14.2).
 * The unit is compared case-insensitively and empty list elements are skipped (§5.6.1). A header
 * that is not a valid `bytes` range-set (bad syntax, a last byte before its first, another unit)
 * is ignored: the whole body, as the RFC allows. Unsatisfiable specs are dropped; none left is
 * 416. One range is a single-part 206 (`bytes=0-` too: players read a 200 as "not seekable").
 * Several are sent as multipart/byteranges in the order asked, unless they are too many or would
 * cost more than the whole body (then 200, as nginx does).
 */
export function planRange(header: string | undefined, size: number): RangePlan {
  if (header === undefined) return { kind: 'full' };
  // No player sends a long header; refusing to parse one keeps hostile input cheap.
  if (header.length > 1024) return { kind: 'full' };
  const m = RANGE_HEADER.exec(header);
  if (!m || m[1]?.toLowerCase() !== 'bytes') return { kind: 'full' };
  const elements = (m[2] ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  if (elements.length === 0) return { kind: 'full' };
  const ranges: ByteRange[] = [];
  for (const element of elements) {
    const spec = parseSpec(element);
    if (spec === 'invalid') return { kind: 'full' };
    const range = resolve(spec, size);
    if (range) ranges.push(range);
  }
  if (ranges.length === 0) return { kind: 'unsatisfiable' };
  const [only] = ranges;
  if (ranges.length === 1 && only) return { kind: 'partial', start: only.start, end: only.end };
  const bytes = ranges.reduce((sum, r) => sum + r.end - r.start + 1, 0);
  if (ranges.length > MAX_PARTS || bytes > size) return { kind: 'full' };
  return { kind: 'multipart', ranges };
}

type Spec = { first: number; last: number | null } | { suffix: number };

function parseSpec(element: string): Spec | 'invalid' {
  const int = INT_RANGE.exec(element);
  if (int) {
    const first = Number(int[1]);
    const last = int[2] === '' ? null : Number(int[2]);
    // A last byte before the first makes the whole range-set invalid (§14.1.1), not unsatisfiable.
    return last !== null && last < first ? 'invalid' : { first, last };
  }
  const suffix = SUFFIX_RANGE.exec(element);
  return suffix ? { suffix: Number(suffix[1]) } : 'invalid';
}

/** The satisfiable part of a spec, or null (§14.1.1: a suffix longer than the file means all of it). */
function resolve(spec: Spec, size: number): ByteRange | null {
  if ('suffix' in spec) {
    if (spec.suffix === 0 || size === 0) return null;
    return { start: Math.max(0, size - spec.suffix), end: size - 1 };
  }
  if (spec.first >= size) return null;
  return { start: spec.first, end: spec.last === null ? size - 1 : Math.min(spec.last, size - 1) };
}

/** The position a request will start reading at, before the size is known (`bytes=N-...`). */
export function startHint(header: string | undefined): number {
  const m = header === undefined ? null : /^\s*bytes=[\s,]*(\d{1,15})\s*-/i.exec(header);
  return m ? Number(m[1]) : 0;
}
