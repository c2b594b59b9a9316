import { createHash } from 'node:crypto';

/**
 * HTTP validators of a stream and the evaluation of conditional requests (RFC 9110 §8.8, §13).
 * Pure functions of plain data: table-tested in test/units/conditional.test.ts.
 */

export interface Validators {
  /** Strong entity tag, quoted. */
  etag: string;
  /** The upstream's Last-Modified as sent, when known. */
  lastModified: string | null;
}

/** What a stream's validators are derived from: one version of one entry. */
export interface VersionFacts {
  id: string;
  version: number;
  createdAt: number;
  expectedTotalSize: number | null;
  etag: string | null;
  lastModified: string | null;
}

/**
 * A strong ETag that changes whenever the served bytes can: one version of an entry never changes
 * (a changed upstream file becomes a new version), so the tag is the upstream's validators and
 * size, plus our version number. Without any upstream validator the entry's own identity stands
 * in, so a removed and re-added entry does not reuse a tag.
 */
export function validatorsOf(entry: VersionFacts): Validators {
  const upstream = entry.etag !== null && !entry.etag.startsWith('W/') ? entry.etag.slice(1, -1) : null;
  let base: string;
  if (upstream !== null && /^[\x21\x23-\x7e]+$/.test(upstream) && upstream.length <= 64) base = upstream;
  else {
    const known = entry.etag !== null || entry.lastModified !== null;
    const source = [
      entry.etag ?? '',
      entry.lastModified ?? '',
      entry.expectedTotalSize ?? '',
      known ? '' : `${entry.id}@${entry.createdAt}`,
    ];
    base = createHash('sha256').update(source.join('\n')).digest('base64url').slice(0, 22);
  }
  return { etag: `"${base}-v${entry.version}"`, lastModified: entry.lastModified };
}

/** The outcome of the preconditions (§13.2.2 steps 1–4) for a GET or HEAD. */
export type Precondition = 'proceed' | 'not-modified' | 'failed';

export interface ConditionalHeaders {
  ifMatch?: string;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
  ifUnmodifiedSince?: string;
}

/**
 * RFC 9110 §13.2.2 in order: If-Match (strong) else If-Unmodified-Since → 412 when false;
 * If-None-Match (weak) else If-Modified-Since → 304 when false. Dates that do not parse are
 * ignored, as are date conditions when the last-modified date is unknown.
 */
export function evaluatePreconditions(h: ConditionalHeaders, v: Validators): Precondition {
  if (h.ifMatch !== undefined) {
    if (!listMatches(h.ifMatch, v.etag, 'strong')) return 'failed';
  } else if (h.ifUnmodifiedSince !== undefined) {
    const since = httpDate(h.ifUnmodifiedSince);
    const modified = v.lastModified === null ? null : httpDate(v.lastModified);
    if (since !== null && modified !== null && modified > since) return 'failed';
  }
  if (h.ifNoneMatch !== undefined) {
    if (listMatches(h.ifNoneMatch, v.etag, 'weak')) return 'not-modified';
  } else if (h.ifModifiedSince !== undefined) {
    const since = httpDate(h.ifModifiedSince);
    const modified = v.lastModified === null ? null : httpDate(v.lastModified);
    if (since !== null && modified !== null && modified <= since) return 'not-modified';
  }
  return 'proceed';
}

/**
 * If-Range (§13.1.5): the Range is honoured only when the entity tag matches strongly, or the
 * date equals Last-Modified exactly; otherwise the whole body is sent. Absent: honoured.
 */
export function ifRangeHolds(ifRange: string | undefined, v: Validators): boolean {
  if (ifRange === undefined) return true;
  const value = ifRange.trim();
  if (value.startsWith('"') || value.startsWith('W/')) return !value.startsWith('W/') && value === v.etag;
  if (v.lastModified === null) return false;
  const date = httpDate(value);
  return date !== null && date === httpDate(v.lastModified);
}

/** Whether a field value (`*` or a list of entity tags) matches `etag` by the given comparison. */
function listMatches(field: string, etag: string, comparison: 'strong' | 'weak'): boolean {
  const value = field.trim();
  if (value === '*') return true;
  const opaque = (tag: string): string => (tag.startsWith('W/') ? tag.slice(2) : tag);
  for (const raw of value.match(/(?:W\/)?"[^"]*"/g) ?? []) {
    if (comparison === 'strong' ? !raw.startsWith('W/') && raw === etag : opaque(raw) === opaque(etag)) return true;
  }
  return false;
}

const DAY = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)';
const LONG_DAY = '(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)';
const MONTH = '(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)';
const TIME = '\\d{2}:\\d{2}:\\d{2}';
/** IMF-fixdate, and the obsolete RFC 850 and asctime forms a recipient must accept (§5.6.7); case-sensitive. */
const HTTP_DATE = new RegExp(
  `^(?:${DAY}, \\d{2} ${MONTH} \\d{4} ${TIME} GMT|${LONG_DAY}, \\d{2}-${MONTH}-\\d{2} ${TIME} GMT|${DAY} ${MONTH} [ \\d]\\d ${TIME} \\d{4})$`,
);

/** Milliseconds of an HTTP-date, or null when the value is not one (then the condition is ignored). */
export function httpDate(value: string): number | null {
  const trimmed = value.trim();
  if (!HTTP_DATE.test(trimmed)) return null;
  // Date.parse reads all three forms; asctime has no zone and means GMT.
  const ms = Date.parse(/GMT$/.test(trimmed) ? trimmed : `${trimmed} GMT`);
  return Number.isNaN(ms) ? null : Math.floor(ms / 1000) * 1000;
}
