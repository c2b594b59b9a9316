/**
 * A page of entry summaries written as JSON by SQLite itself (issue 13, bench row 12). Turning
 * 500 rows into JS values, summary objects and then JSON text cost the main thread ~3.3 ms a
 * page at 100,000 entries; SQLite's json_object() writes the same text in ~1 ms, and the page
 * reaches the socket as one Buffer without passing through JS strings.
 *
 * The text must be byte for byte `JSON.stringify({...entrySummary(facts, [], 0), streamUrl})`
 * (src/status.ts), for an idle entry (no transfer, no recent rate) with a plain URL: the caller
 * checks those per row and renders a slice in JS when one is not. Rows outside what the SQL
 * renders exactly (times outside years 1970–9999, sizes past 900 GB where the JS percent rounds) come back with `exact` 0 and go the same way. test/summary-json.test.ts
 * holds both renderings to each other.
 */

/** isoTime() in SQL: datetime() with milliseconds, as a Julian day (no modifier to parse but 'subsec'). */
const iso = (ms: string): string => `replace(datetime(${ms} / 86400000.0 + 2440587.5, 'subsec'), ' ', 'T') || 'Z'`;

/** deriveState() (src/state/entry-state.ts) over the same columns, in the same order of precedence. */
const STATE = `CASE
  WHEN error_message IS NOT NULL THEN 'Failed'
  WHEN is_complete OR stored_bytes >= expected_total_size THEN 'Complete'
  WHEN chunk_rows = 0 AND pending_chunks = 0 THEN 'NotStarted'
  WHEN expected_total_size IS NULL THEN 'Initializing'
  WHEN pending_chunks > 0 THEN 'Downloading'
  ELSE 'Paused' END`;

/** Hundredths of a percent, floored: integer division is the JS floor while `exact` holds. */
const K = '(10000 * stored_bytes / expected_total_size)';
/** A whole number as an integer (JS writes `100`, SQLite's real would be `100.0`), otherwise k / 100.0. */
const PERCENT = `CASE WHEN expected_total_size IS NULL THEN NULL WHEN expected_total_size = 0 THEN 100
  WHEN ${K} % 100 = 0 THEN ${K} / 100 ELSE ${K} / 100.0 END`;
/** With no rate: 0 left is 0 seconds, anything else unknown. */
const ETA = 'CASE WHEN stored_bytes >= expected_total_size THEN 0 END';

/** The last millisecond isoTime() formats itself (9999-12-31T23:59:59.999Z). */
const LAST_MS = 253_402_300_799_999;
/** Sizes up to which `10000 * stored / total` is exact in doubles (the JS percent is then the integer one). */
const EXACT_BYTES = Math.floor(Number.MAX_SAFE_INTEGER / 10_000);
/**
 * Where the SQL text is the JS text: times in isoTime's fast range, sizes whose percent JS
 * computes exactly, percents up to 10,000 (every k / 100.0 up to 1,000,000 is checked against
 * JS, see the test). The other integers are counts, versions and validated inputs, never past
 * 2^53 where JS would round them.
 */
const EXACT = `(created_at BETWEEN 0 AND ${LAST_MS} AND last_accessed BETWEEN 0 AND ${LAST_MS} AND stored_bytes <= ${EXACT_BYTES}
  AND ifnull(expected_total_size BETWEEN 0 AND ${EXACT_BYTES} AND stored_bytes <= 100 * expected_total_size, 1))`;

/** One entry's summary with `streamUrl` = @streamBase || id, keys in entrySummary()'s order. */
const SUMMARY = `json_object('id', id, 'url', original_url, 'sourceId', source_id, 'mediaId', media_id, 'quality', quality,
  'state', ${STATE}, 'totalBytes', expected_total_size, 'downloadedBytes', stored_bytes, 'pendingChunks', pending_chunks,
  'downloading', json_array(), 'chunkSize', chunk_size, 'mimeType', mime_type, 'error', error_message,
  'createdAt', ${iso('created_at')}, 'lastAccessed', ${iso('last_accessed')}, 'accessCount', access_count,
  'pinned', iif(pinned, json('true'), json('false')), 'pinHeadBytes', pin_head_bytes, 'bitrate', bitrate, 'version', version,
  'progress', json_object('percent', ${PERCENT}, 'bytesPerSecond', 0, 'etaSeconds', ${ETA}),
  'streamUrl', @streamBase || id)`;

/**
 * One slice of a page (`pageWhere`: the page's filters, order and limit): the summaries joined by
 * commas as a BLOB (the driver hands it over as a Buffer), and per row [id, url, createdAt, exact]
 * for the caller's checks and cursor. The inner query's order is the aggregate's: it is a
 * co-routine read in index order, never flattened into an aggregate (it has a LIMIT).
 */
export const summaryJsonSql = (pageWhere: string): string => `SELECT CAST(group_concat(j, ',') AS BLOB) AS json,
  json_group_array(json_array(id, original_url, created_at, exact)) AS rows
  FROM (SELECT e.id, e.original_url, e.created_at, ${EXACT} AS exact, ${SUMMARY} AS j FROM cache_entries e ${pageWhere})`;

/** The same SQL expressions, for tests holding them to isoTime() and the JS percent. */
export const SQL_FOR_TESTS = { iso, PERCENT: (k: string) => `CASE WHEN ${k} % 100 = 0 THEN ${k} / 100 ELSE ${k} / 100.0 END` };
