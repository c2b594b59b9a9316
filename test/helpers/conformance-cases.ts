/**
 * The requests of the differential conformance suite (test/conformance.test.ts), from RFC 9110's
 * text and examples and from what nginx, Go's ServeContent and Express's send handle. Every case is
 * sent to nginx and to the proxy; their answers must agree, except where `allowedDifference` names
 * the RFC section that allows (or requires) the proxy's answer, which is then asserted exactly.
 * nginx's observed answers are noted where they are surprising.
 */
import type { Case } from './conformance.js';

/** Chunk size of the proxy under test: ranges below cross chunk boundaries on purpose. */
export const CHUNK = 64 * 1024;
/** The file: five chunks and a bit, so the last chunk is short. */
export const SIZE = 5 * CHUNK + 1234;
export const CONTENT_TYPE = 'video/mp4';
/** The file's mtime on disk for nginx and the upstream's Last-Modified for the proxy. */
export const MTIME = new Date(Date.UTC(2024, 0, 2, 3, 4, 5));
export const LAST_MODIFIED = MTIME.toUTCString();
const BEFORE = new Date(MTIME.getTime() - 1000).toUTCString();
const AFTER = new Date(MTIME.getTime() + 1000).toUTCString();
/** LAST_MODIFIED in the two obsolete HTTP-date forms (RFC 9110 §5.6.7: recipients must accept them). */
const RFC850 = 'Tuesday, 02-Jan-24 03:04:05 GMT';
const ASCTIME = 'Tue Jan  2 03:04:05 2024';
const LAST = SIZE - 1;
const NOPE = '"no-such-etag"';

const range = (value: string): Record<string, string> => ({ range: value });
const list = (n: number, at: (i: number) => string): string => `bytes=${Array.from({ length: n }, (_, i) => at(i)).join(',')}`;

export const CASES: Case[] = [
  // ── Single ranges (RFC 9110 §14.1.1, §14.1.2, §15.3.7) ──
  { name: 'no Range: 200 with the whole body', headers: {} },
  { name: 'bytes=0-9', headers: range('bytes=0-9') },
  { name: 'bytes=0-0: the first byte', headers: range('bytes=0-0') },
  { name: 'bytes=0-1: the Safari probe', headers: range('bytes=0-1') },
  { name: 'the last byte (bytes=SIZE-1-SIZE-1)', headers: range(`bytes=${LAST}-${LAST}`) },
  { name: 'a range crossing a chunk boundary', headers: range(`bytes=${CHUNK - 6}-${CHUNK + 9}`) },
  { name: 'exactly the second chunk', headers: range(`bytes=${CHUNK}-${2 * CHUNK - 1}`) },
  { name: 'the short last chunk, open', headers: range(`bytes=${5 * CHUNK}-`) },
  { name: 'leading zeros (bytes=0000-0009)', headers: range('bytes=0000-0009') },
  { name: 'suffix bytes=-500', headers: range('bytes=-500') },
  { name: 'suffix equal to the size', headers: range(`bytes=-${SIZE}`) },
  { name: 'suffix longer than the file: the whole file as a 206 (§14.1.1)', headers: range(`bytes=-${SIZE * 3}`) },
  { name: 'suffix -0: unsatisfiable (§14.1.1)', headers: range('bytes=-0') },
  { name: 'open bytes=100000-', headers: range('bytes=100000-') },
  { name: 'bytes=0- is a 206, not a 200', headers: range('bytes=0-') },
  { name: 'start at the size: 416 with bytes */SIZE', headers: range(`bytes=${SIZE}-`) },
  { name: 'start and end past the end: 416', headers: range(`bytes=${SIZE + 1000}-${SIZE + 2000}`) },
  { name: 'end past the file is clamped', headers: range(`bytes=${SIZE - 14}-${SIZE * 3}`) },
  {
    name: 'end beyond 2^64 is clamped',
    headers: range('bytes=0-99999999999999999999999'),
    allowedDifference: {
      rfc: '§14.1.1',
      why: 'a last-pos at or past the length means "to the end"; nginx overflows its parser and answers 416',
      expect: { status: 206, ranges: [[0, LAST]] },
    },
  },
  { name: 'unit case-insensitive: BYTES=0-9 (§14.1)', headers: range('BYTES=0-9') },
  { name: 'unit case-insensitive: Bytes=0-9', headers: range('Bytes=0-9') },
  { name: 'whitespace around specs and commas', headers: range('bytes= 0 - 9 , 20-29') },
  { name: 'trailing whitespace', headers: range('bytes=0-9 ') },

  // ── Invalid or foreign Range headers: ignored (§14.2) ──
  {
    name: 'bytes=abc',
    headers: range('bytes=abc'),
    allowedDifference: {
      rfc: '§14.1.1, §14.2',
      why: 'an invalid ranges-specifier may be ignored (200); nginx answers 416 to syntax it cannot parse',
      expect: { status: 200 },
    },
  },
  {
    name: 'reversed bytes=5-2',
    headers: range('bytes=5-2'),
    allowedDifference: {
      rfc: '§14.1.1, §14.2',
      why: 'last-pos < first-pos makes the range-spec invalid, not unsatisfiable: ignored (200); nginx answers 416',
      expect: { status: 200 },
    },
  },
  {
    name: 'a reversed element beside a valid one (bytes=0-9,5-2)',
    headers: range('bytes=0-9,5-2'),
    allowedDifference: {
      rfc: '§14.1.1, §14.2',
      why: 'one invalid range-spec makes the ranges-specifier invalid: ignored (200); nginx drops the element and answers 206 0-9',
      expect: { status: 200 },
    },
  },
  {
    name: 'a garbage element beside a valid one (bytes=0-9,abc)',
    headers: range('bytes=0-9,abc'),
    allowedDifference: {
      rfc: '§14.1.1, §14.2',
      why: 'an invalid ranges-specifier may be ignored (200); nginx answers 416',
      expect: { status: 200 },
    },
  },
  {
    name: 'bytes=- (no numbers)',
    headers: range('bytes=-'),
    allowedDifference: {
      rfc: '§14.1.1, §14.2',
      why: 'an invalid ranges-specifier may be ignored (200); nginx answers 416',
      expect: { status: 200 },
    },
  },
  { name: 'no "=": bytes 0-9 is ignored', headers: range('bytes 0-9') },
  { name: 'another unit: items=0-9 is ignored (§14.2)', headers: range('items=0-9') },
  { name: 'empty range set: bytes= is ignored', headers: range('bytes=') },

  // ── Empty list elements (§5.6.1: recipients accept and ignore them) ──
  {
    name: 'trailing empty element: bytes=0-9,',
    headers: range('bytes=0-9,'),
    allowedDifference: {
      rfc: '§5.6.1, §14.1.1',
      why: 'a list may contain empty elements, which are ignored: this is bytes=0-9; nginx answers 416',
      expect: { status: 206, ranges: [[0, 9]] },
    },
  },
  {
    name: 'leading empty element: bytes=,0-9',
    headers: range('bytes=,0-9'),
    allowedDifference: {
      rfc: '§5.6.1, §14.1.1',
      why: 'a list may contain empty elements, which are ignored: this is bytes=0-9; nginx answers 416',
      expect: { status: 206, ranges: [[0, 9]] },
    },
  },
  {
    name: 'empty element in the middle: bytes=0-9,,20-29',
    headers: range('bytes=0-9,,20-29'),
    allowedDifference: {
      rfc: '§5.6.1, §14.6',
      why: 'a list may contain empty elements, which are ignored: two parts; nginx answers 416',
      expect: {
        status: 206,
        ranges: [
          [0, 9],
          [20, 29],
        ],
      },
    },
  },

  // ── Several ranges: multipart/byteranges (§14.6) ──
  { name: 'two ranges', headers: range('bytes=0-9,20-29') },
  { name: 'three ranges with a suffix (§14.1.2 example)', headers: range('bytes=0-0,100-199,-10') },
  { name: 'ranges in four different chunks', headers: range(`bytes=0-99,70000-70099,200000-200099,-100`) },
  { name: 'overlapping ranges (nginx does not coalesce)', headers: range('bytes=0-9,5-14') },
  { name: 'adjacent ranges (nginx does not coalesce)', headers: range('bytes=0-9,10-19') },
  { name: 'the same range twice', headers: range('bytes=0-9,0-9') },
  { name: 'unordered ranges keep the order asked', headers: range('bytes=20-29,0-9') },
  { name: 'one of two unsatisfiable: a single part', headers: range(`bytes=0-9,${SIZE + 1000}-${SIZE + 2000}`) },
  { name: 'an unsatisfiable range first, then a satisfiable one', headers: range(`bytes=${SIZE + 1000}-,0-9`) },
  { name: 'all unsatisfiable: 416', headers: range(`bytes=${SIZE + 1000}-${SIZE + 2000},${SIZE}-`) },
  { name: 'twenty disjoint ranges', headers: range(list(20, (i) => `${i * 10000}-${i * 10000 + 9}`)) },
  {
    name: 'fifty disjoint ranges',
    headers: range(list(50, (i) => `${i * 1000}-${i * 1000 + 99}`)),
    allowedDifference: {
      rfc: '§14.2',
      why: 'a server MAY ignore a Range with many small ranges; the proxy sends the whole body above 32 parts, nginx has no limit',
      expect: { status: 200 },
    },
  },
  {
    name: 'fifty overlapping ranges (0-0,0-1,…,0-49)',
    headers: range(list(50, (i) => `0-${i}`)),
    allowedDifference: {
      rfc: '§14.2',
      why: 'a server MAY ignore more than two overlapping ranges; the proxy sends the whole body above 32 parts, nginx sends 50 parts',
      expect: { status: 200 },
    },
  },
  { name: 'parts exactly as long as the file: 206', headers: range(`bytes=0-${SIZE / 2 - 1},${SIZE / 2}-`) },
  { name: 'parts one byte longer than the file: 200 (as nginx)', headers: range(`bytes=0-${SIZE / 2},${SIZE / 2}-`) },
  { name: 'heavily overlapping large ranges: 200', headers: range('bytes=0-200000,100000-300000') },

  // ── If-None-Match (§13.1.2: weak comparison) ──
  { name: 'If-None-Match: own ETag → 304', headers: (v) => ({ 'if-none-match': v.etag }) },
  { name: 'If-None-Match: W/ own ETag → 304 (weak comparison)', headers: (v) => ({ 'if-none-match': `W/${v.etag}` }) },
  { name: 'If-None-Match: * → 304', headers: { 'if-none-match': '*' } },
  { name: 'If-None-Match: another ETag → 200', headers: { 'if-none-match': NOPE } },
  { name: 'If-None-Match: a list containing own ETag → 304', headers: (v) => ({ 'if-none-match': `"a", ${v.etag}, "b"` }) },
  { name: 'If-None-Match: a list of weak tags containing own → 304', headers: (v) => ({ 'if-none-match': `W/"a", W/${v.etag}` }) },
  { name: 'If-None-Match: own ETag unquoted → 200', headers: (v) => ({ 'if-none-match': v.etag.replaceAll('"', '') }) },

  // ── If-Match (§13.1.1: strong comparison) ──
  { name: 'If-Match: own ETag → 200', headers: (v) => ({ 'if-match': v.etag }) },
  { name: 'If-Match: W/ own ETag → 412 (strong comparison)', headers: (v) => ({ 'if-match': `W/${v.etag}` }) },
  { name: 'If-Match: * → 200', headers: { 'if-match': '*' } },
  { name: 'If-Match: another ETag → 412', headers: { 'if-match': NOPE } },
  { name: 'If-Match: a list containing own ETag → 200', headers: (v) => ({ 'if-match': `"a", ${v.etag}` }) },

  // ── If-Modified-Since (§13.1.3) ──
  { name: 'If-Modified-Since: before Last-Modified → 200', headers: { 'if-modified-since': BEFORE } },
  { name: 'If-Modified-Since: equal → 304', headers: { 'if-modified-since': LAST_MODIFIED } },
  { name: 'If-Modified-Since: after → 304', headers: { 'if-modified-since': AFTER } },
  { name: 'If-Modified-Since: RFC 850 date, equal → 304', headers: { 'if-modified-since': RFC850 } },
  { name: 'If-Modified-Since: asctime date, equal → 304', headers: { 'if-modified-since': ASCTIME } },
  { name: 'If-Modified-Since: not a date → ignored', headers: { 'if-modified-since': 'not a date' } },
  {
    name: 'If-Modified-Since: lowercase date is invalid (HTTP-date is case-sensitive) → ignored',
    headers: { 'if-modified-since': LAST_MODIFIED.toLowerCase() },
  },

  // ── If-Unmodified-Since (§13.1.4) ──
  { name: 'If-Unmodified-Since: before → 412', headers: { 'if-unmodified-since': BEFORE } },
  { name: 'If-Unmodified-Since: equal → 200', headers: { 'if-unmodified-since': LAST_MODIFIED } },
  { name: 'If-Unmodified-Since: after → 200', headers: { 'if-unmodified-since': AFTER } },
  {
    name: 'If-Unmodified-Since: not a date → ignored',
    headers: { 'if-unmodified-since': 'garbage' },
    allowedDifference: {
      rfc: '§13.1.4',
      why: 'a recipient MUST ignore If-Unmodified-Since whose value is not a valid HTTP-date; nginx answers 412',
      expect: { status: 200 },
    },
  },

  // ── Precedence (§13.2.2) ──
  {
    name: 'If-None-Match own + If-Modified-Since before → 304 (IMS ignored)',
    headers: (v) => ({ 'if-none-match': v.etag, 'if-modified-since': BEFORE }),
    allowedDifference: {
      rfc: '§13.1.3, §13.2.2',
      why: 'If-Modified-Since MUST be ignored when If-None-Match is present; nginx evaluates both and answers 200',
      expect: { status: 304 },
    },
  },
  {
    name: 'If-None-Match other + If-Modified-Since equal → 200 (IMS ignored)',
    headers: { 'if-none-match': NOPE, 'if-modified-since': LAST_MODIFIED },
  },
  {
    name: 'If-Match own + If-Unmodified-Since before → 200 (IUS ignored)',
    headers: (v) => ({ 'if-match': v.etag, 'if-unmodified-since': BEFORE }),
    allowedDifference: {
      rfc: '§13.1.4, §13.2.2',
      why: 'If-Unmodified-Since MUST be ignored when If-Match is present; nginx evaluates both and answers 412',
      expect: { status: 200 },
    },
  },
  { name: 'If-Match other + If-Unmodified-Since after → 412', headers: { 'if-match': NOPE, 'if-unmodified-since': AFTER } },
  { name: 'If-Match own + If-None-Match own → 304 (step 3)', headers: (v) => ({ 'if-match': v.etag, 'if-none-match': v.etag }) },
  { name: 'If-Match other + If-None-Match own → 412 (step 1 first)', headers: (v) => ({ 'if-match': NOPE, 'if-none-match': v.etag }) },
  {
    name: 'If-Unmodified-Since before + If-Modified-Since equal → 412',
    headers: { 'if-unmodified-since': BEFORE, 'if-modified-since': LAST_MODIFIED },
  },
  { name: 'If-Match own + Range → 206', headers: (v) => ({ 'if-match': v.etag, range: 'bytes=0-9' }) },
  { name: 'If-Match other + Range → 412', headers: { 'if-match': NOPE, range: 'bytes=0-9' } },
  { name: 'If-Match other + unsatisfiable Range → 412 (preconditions first)', headers: { 'if-match': NOPE, range: `bytes=${SIZE}-` } },
  { name: 'If-None-Match own + Range → 304', headers: (v) => ({ 'if-none-match': v.etag, range: 'bytes=0-9' }) },
  { name: 'If-None-Match own + unsatisfiable Range → 304', headers: (v) => ({ 'if-none-match': v.etag, range: `bytes=${SIZE}-` }) },
  { name: 'If-Modified-Since equal + Range → 304', headers: { 'if-modified-since': LAST_MODIFIED, range: 'bytes=0-9' } },
  { name: 'If-Modified-Since before + Range → 206', headers: { 'if-modified-since': BEFORE, range: 'bytes=0-9' } },
  { name: 'If-Unmodified-Since equal + Range → 206', headers: { 'if-unmodified-since': LAST_MODIFIED, range: 'bytes=0-9' } },
  { name: 'If-Match * + Range → 206', headers: { 'if-match': '*', range: 'bytes=0-9' } },

  // ── If-Range (§13.1.5) ──
  { name: 'If-Range own ETag → 206', headers: (v) => ({ 'if-range': v.etag, range: 'bytes=0-9' }) },
  { name: 'If-Range another ETag → 200', headers: { 'if-range': NOPE, range: 'bytes=0-9' } },
  { name: 'If-Range W/ own ETag → 200 (weak never matches)', headers: (v) => ({ 'if-range': `W/${v.etag}`, range: 'bytes=0-9' }) },
  { name: 'If-Range date equal to Last-Modified → 206', headers: { 'if-range': LAST_MODIFIED, range: 'bytes=0-9' } },
  { name: 'If-Range date before → 200', headers: { 'if-range': BEFORE, range: 'bytes=0-9' } },
  { name: 'If-Range date after → 200 (exact match only)', headers: { 'if-range': AFTER, range: 'bytes=0-9' } },
  { name: 'If-Range garbage → 200', headers: { 'if-range': 'garbage', range: 'bytes=0-9' } },
  { name: 'If-Range without Range → 200', headers: (v) => ({ 'if-range': v.etag }) },
  { name: 'If-Range own ETag + two ranges → multipart', headers: (v) => ({ 'if-range': v.etag, range: 'bytes=0-9,20-29' }) },
  { name: 'If-Range own ETag + open range', headers: (v) => ({ 'if-range': v.etag, range: 'bytes=100000-' }) },
  { name: 'If-Range other + unsatisfiable Range → 200 (Range ignored)', headers: { 'if-range': NOPE, range: `bytes=${SIZE}-` } },
  { name: 'If-Range own + unsatisfiable Range → 416', headers: (v) => ({ 'if-range': v.etag, range: `bytes=${SIZE}-` }) },
  { name: 'If-Match own + If-Range own + Range → 206', headers: (v) => ({ 'if-match': v.etag, 'if-range': v.etag, range: 'bytes=0-9' }) },
  { name: 'If-None-Match other + If-Range other + Range → 200', headers: { 'if-none-match': NOPE, 'if-range': NOPE, range: 'bytes=0-9' } },

  // ── HEAD (§9.3.2: the headers of the GET, no body) ──
  { name: 'HEAD', method: 'HEAD', headers: {} },
  { name: 'HEAD bytes=0-9', method: 'HEAD', headers: range('bytes=0-9') },
  { name: 'HEAD suffix bytes=-500', method: 'HEAD', headers: range('bytes=-500') },
  { name: 'HEAD two ranges', method: 'HEAD', headers: range('bytes=0-9,20-29') },
  { name: 'HEAD unsatisfiable → 416', method: 'HEAD', headers: range(`bytes=${SIZE}-`) },
  { name: 'HEAD If-None-Match own → 304', method: 'HEAD', headers: (v) => ({ 'if-none-match': v.etag }) },
  { name: 'HEAD If-Match other → 412', method: 'HEAD', headers: { 'if-match': NOPE } },
  { name: 'HEAD If-Modified-Since equal → 304', method: 'HEAD', headers: { 'if-modified-since': LAST_MODIFIED } },
  { name: 'HEAD If-Unmodified-Since before → 412', method: 'HEAD', headers: { 'if-unmodified-since': BEFORE } },
  { name: 'HEAD If-Range other + Range → 200', method: 'HEAD', headers: { 'if-range': NOPE, range: 'bytes=0-9' } },
  { name: 'HEAD If-Range own + Range → 206', method: 'HEAD', headers: (v) => ({ 'if-range': v.etag, range: 'bytes=0-9' }) },
];
