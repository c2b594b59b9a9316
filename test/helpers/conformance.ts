/**
 * The differential conformance suite's vocabulary: a case (one request), the comparable summary of
 * an answer (status, the headers that must agree, body bytes as sha256, multipart parts), a strict
 * multipart/byteranges parser, and the answer a case expects from the proxy where the RFC allows it
 * to differ from nginx.
 */
import { fetchBytes, type FetchResult } from './harness.js';
import { sha256 } from './upstream.js';

export type Method = 'GET' | 'HEAD';

/** The server's own validators, taken from a HEAD on it before a conditional request. */
export interface OwnValidators {
  etag: string;
}

/** What the proxy must answer instead of nginx's answer. `ranges` are inclusive [start, end]. */
export type Expect = { status: 200 | 304 | 412 | 416 } | { status: 206; ranges: ReadonlyArray<readonly [number, number]> };

export interface AllowedDifference {
  /** The RFC 9110 section that allows (or requires) the proxy's answer. */
  rfc: string;
  why: string;
  expect: Expect;
}

export interface Case {
  name: string;
  method?: Method;
  /** The request's headers; a function when they need the server's own ETag. */
  headers: Readonly<Record<string, string>> | ((own: OwnValidators) => Record<string, string>);
  allowedDifference?: AllowedDifference;
}

export interface Part {
  contentRange: string;
  sha256: string;
}

/** What must agree between two servers. Every field is always present (null when not applicable). */
export interface Answer {
  status: number;
  contentType: string | null;
  contentLength: string | null;
  contentRange: string | null;
  /** sha256 of a single-part body, 'empty', or null where the body is an error page. */
  body: string | null;
  parts: Part[] | null;
  /** Whether an ETag is sent and strong (RFC 9110 §8.8.3); values differ between servers. */
  etag: 'strong' | 'weak' | 'absent' | null;
  lastModified: string | null;
  transferEncoding: string | null;
}

const SENTINEL = '"conformance-sentinel-etag"';

/** Whether a case's headers depend on the server's own ETag (then a HEAD fetches it first). */
export function needsOwnEtag(c: Case): boolean {
  return typeof c.headers === 'function' && JSON.stringify(c.headers({ etag: SENTINEL })).includes('conformance-sentinel');
}

export function headersOf(c: Case, own: OwnValidators): Record<string, string> {
  return typeof c.headers === 'function' ? c.headers(own) : { ...c.headers };
}

function one(res: FetchResult, name: string): string | null {
  const v = res.headers[name];
  if (v === undefined) return null;
  return Array.isArray(v) ? v.join(', ') : v;
}

const MULTIPART = /^multipart\/byteranges\s*(;|$)/i;

/** The boundary parameter of a multipart/byteranges Content-Type (quoted or not). */
export function boundaryOf(contentType: string): string {
  const m = /;\s*boundary=(?:"([^"]+)"|([^\s;]+))/i.exec(contentType);
  const boundary = m?.[1] ?? m?.[2];
  if (!boundary) throw new Error(`multipart/byteranges without a boundary: ${contentType}`);
  return boundary;
}

/**
 * Parses a multipart/byteranges body strictly (RFC 9110 §14.6, RFC 2046 §5.1.1): each part's length
 * is taken from its Content-Range, so the part's bytes are never searched for the delimiter.
 */
export function parseMultipart(body: Buffer, boundary: string): Array<Part & { contentType: string | null }> {
  const delimiter = Buffer.from(`--${boundary}`);
  const crlf = Buffer.from('\r\n');
  let pos = 0;
  const fail = (what: string): never => {
    throw new Error(`multipart body: ${what} at byte ${pos} (${JSON.stringify(body.subarray(pos, pos + 60).toString('latin1'))})`);
  };
  const expect = (bytes: Buffer, what: string): void => {
    if (!body.subarray(pos, pos + bytes.length).equals(bytes)) fail(`expected ${what}`);
    pos += bytes.length;
  };
  // An empty preamble: the first delimiter may follow a CRLF (nginx) or open the body.
  if (body.subarray(0, 2).equals(crlf)) pos = 2;
  expect(delimiter, 'the first boundary');
  const parts: Array<Part & { contentType: string | null }> = [];
  for (;;) {
    if (body.subarray(pos, pos + 2).toString('latin1') === '--') {
      pos += 2;
      // Only an optional CRLF (or an epilogue nobody sends) may follow the close delimiter.
      const rest = body.subarray(pos).toString('latin1');
      if (rest !== '' && rest !== '\r\n') fail('the end after the close delimiter');
      break;
    }
    expect(crlf, 'CRLF after a boundary');
    const headEnd = body.indexOf('\r\n\r\n', pos, 'latin1');
    if (headEnd === -1) fail('the end of part headers');
    const fields = new Map<string, string>();
    for (const line of body.subarray(pos, headEnd).toString('latin1').split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon <= 0) fail(`a header line, got ${JSON.stringify(line)}`);
      fields.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    pos = headEnd + 4;
    const contentRange = fields.get('content-range');
    const m = contentRange === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+)$/.exec(contentRange);
    if (!contentRange || !m) return fail(`a part Content-Range, got ${JSON.stringify(contentRange)}`);
    const length = Number(m[2]) - Number(m[1]) + 1;
    if (pos + length > body.length) fail(`${length} part bytes`);
    parts.push({ contentRange, sha256: sha256(body.subarray(pos, pos + length)), contentType: fields.get('content-type') ?? null });
    pos += length;
    expect(crlf, 'CRLF after the part bytes');
    expect(delimiter, 'the next boundary');
  }
  return parts;
}

/** The comparable summary of one reply. */
export function summarize(res: FetchResult, method: Method): Answer {
  const answer: Answer = {
    status: res.status,
    contentType: null,
    contentLength: null,
    contentRange: null,
    body: null,
    parts: null,
    etag: null,
    lastModified: null,
    transferEncoding: one(res, 'transfer-encoding'),
  };
  const emptyOr = (): string => (res.body.length === 0 ? 'empty' : `${res.body.length} bytes`);
  if (res.status === 200 || res.status === 206) {
    const type = one(res, 'content-type') ?? '';
    const length = one(res, 'content-length');
    answer.contentRange = one(res, 'content-range');
    if (MULTIPART.test(type)) {
      // The boundary (and so the length) differs between servers: the length must be exact, the parts equal.
      answer.contentType = 'multipart/byteranges';
      if (method === 'HEAD') {
        answer.contentLength = length === null ? 'missing' : 'present';
        answer.body = emptyOr();
      } else {
        answer.contentLength = length === String(res.body.length) ? 'exact' : `${length} for a body of ${res.body.length} bytes`;
        answer.parts = parseMultipart(res.body, boundaryOf(type)).map(({ contentRange, sha256 }) => ({ contentRange, sha256 }));
      }
    } else {
      answer.contentType = type;
      answer.contentLength = length;
      answer.body = method === 'HEAD' ? emptyOr() : sha256(res.body);
    }
  }
  if (res.status === 200 || res.status === 206 || res.status === 304) {
    const etag = one(res, 'etag');
    answer.etag = etag === null ? 'absent' : etag.startsWith('W/') ? 'weak' : 'strong';
    answer.lastModified = one(res, 'last-modified');
  }
  if (res.status === 304) answer.body = emptyOr();
  // 412 and 416 carry each server's own error page: only the status and, for 416, Content-Range count.
  if (res.status === 416) answer.contentRange = one(res, 'content-range');
  return answer;
}

/** The reply a correct server would send for `expect`, summarized like a real one. */
export function expectedAnswer(expect: Expect, method: Method, data: Buffer, contentType: string, lastModified: string): Answer {
  const size = data.length;
  const headers: Record<string, string> = {};
  let body: Buffer = Buffer.alloc(0);
  if (expect.status === 200 || expect.status === 206 || expect.status === 304) {
    headers['etag'] = '"strong"';
    headers['last-modified'] = lastModified;
  }
  if (expect.status === 200) {
    Object.assign(headers, { 'content-type': contentType, 'content-length': String(size) });
    body = data;
  } else if (expect.status === 206 && expect.ranges.length === 1) {
    const [start, end] = expect.ranges[0] ?? [0, 0];
    Object.assign(headers, { 'content-type': contentType, 'content-range': `bytes ${start}-${end}/${size}` });
    body = data.subarray(start, end + 1);
    headers['content-length'] = String(body.length);
  } else if (expect.status === 206) {
    const pieces = expect.ranges.map(([start, end]) =>
      Buffer.concat([
        Buffer.from(`\r\n--b\r\nContent-Type: ${contentType}\r\nContent-Range: bytes ${start}-${end}/${size}\r\n\r\n`),
        data.subarray(start, end + 1),
      ]),
    );
    body = Buffer.concat([...pieces, Buffer.from('\r\n--b--\r\n')]);
    Object.assign(headers, { 'content-type': 'multipart/byteranges; boundary=b', 'content-length': String(body.length) });
  } else if (expect.status === 416) headers['content-range'] = `bytes */${size}`;
  return summarize({ status: expect.status, headers, body: method === 'HEAD' ? Buffer.alloc(0) : body }, method);
}

/** One request, whole body buffered. */
export function send(url: string, method: Method, headers: Record<string, string>): Promise<FetchResult> {
  return fetchBytes(url, { method, headers });
}

/** The headers a HEAD must share with the GET of the same request (RFC 9110 §9.3.2). */
export function headShape(res: FetchResult): Record<string, string | number | null> {
  const type = one(res, 'content-type');
  return {
    status: res.status,
    contentType: type !== null && MULTIPART.test(type) ? 'multipart/byteranges' : type,
    contentLength: one(res, 'content-length'),
    contentRange: one(res, 'content-range'),
    etag: one(res, 'etag'),
    lastModified: one(res, 'last-modified'),
  };
}
