import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MAX_PARTS, planRange } from '../src/server/range.js';
import { makeData, sha256, startUpstream, type Upstream } from './helpers/upstream.js';
import { fetchBytes, startProxy, type Proxy } from './helpers/harness.js';

/**
 * An independent reference model of RFC 9110 §14 for one representation of `size` bytes.
 * `exact` is the only conforming answer for a well-formed single range; for forms where the RFC
 * lets a server choose (several ranges, odd spellings) `allowed` lists every conforming answer.
 */
type Outcome =
  { status: 200 } | { status: 206; start: number; end: number } | { status: 206; parts: Array<[number, number]> } | { status: 416 };

interface Spec {
  first?: number;
  last?: number;
  suffix?: number;
}

function parseCanonical(header: string): Spec[] | null {
  // The unit is case-insensitive (§14.1); empty list elements do not count (§5.6.1).
  const m = /^\s*bytes=(.*)$/is.exec(header);
  if (!m?.[1]) return null;
  const specs: Spec[] = [];
  for (const raw of m[1].split(',')) {
    const part = raw.trim();
    if (part === '') continue;
    let s: RegExpExecArray | null;
    if ((s = /^(\d+)-(\d+)$/.exec(part))) {
      const first = Number(s[1]);
      const last = Number(s[2]);
      if (last < first) return null; // invalid range-spec: the header is ignored
      specs.push({ first, last });
    } else if ((s = /^(\d+)-$/.exec(part))) specs.push({ first: Number(s[1]) });
    else if ((s = /^-(\d+)$/.exec(part))) specs.push({ suffix: Number(s[1]) });
    else return null;
  }
  return specs.length > 0 ? specs : null;
}

/** The satisfiable part of a spec as [start, end], or null. */
function resolve(spec: Spec, size: number): [number, number] | null {
  if (spec.suffix !== undefined) {
    if (spec.suffix === 0 || size === 0) return null;
    return [Math.max(0, size - spec.suffix), size - 1];
  }
  const first = spec.first ?? 0;
  if (first >= size) return null;
  return [first, Math.min(spec.last ?? size - 1, size - 1)];
}

function reference(header: string | undefined, size: number): Outcome[] {
  if (header === undefined) return [{ status: 200 }];
  const specs = parseCanonical(header);
  if (!specs) return [{ status: 200 }]; // not a valid bytes range-set: ignore Range
  const sat = specs.map((s) => resolve(s, size)).filter((r): r is [number, number] => r !== null);
  // A server MAY ignore Range (§14.2); the proxy does so for headers no player sends (> 1 KiB).
  const ignoring: Outcome[] = header.length > 1024 ? [{ status: 200 }] : [];
  if (sat.length === 0) return [{ status: 416 }, ...ignoring];
  if (sat.length === 1) {
    const [r] = sat as [[number, number]];
    return [{ status: 206, start: r[0], end: r[1] }, ...ignoring];
  }
  // Several ranges: multipart/byteranges in the order asked, unless they are more than the
  // server's part limit or cost more than the whole body; a server may always send 200 (§14.2).
  const bytes = sat.reduce((sum, [a, b]) => sum + b - a + 1, 0);
  if (sat.length > MAX_PARTS || bytes > size) return [{ status: 200 }];
  return [{ status: 206, parts: sat }, ...ignoring];
}

const num = (size: number): fc.Arbitrary<number> =>
  fc.oneof(
    fc.integer({ min: 0, max: Math.max(0, size + 2) }),
    fc.integer({ min: 0, max: 2 ** 40 }),
    fc.constantFrom(0, 1, size - 1, size, size + 1),
  );

function rangeHeader(size: number): fc.Arbitrary<string | undefined> {
  const spec = fc.oneof(
    fc.tuple(num(size), num(size)).map(([a, b]) => `${a}-${b}`), // includes reversed ones
    num(size).map((a) => `${a}-`),
    num(size).map((n) => `-${n}`),
  );
  return fc.oneof(
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 6, arbitrary: spec.map((s) => `bytes=${s}`) },
    { weight: 2, arbitrary: fc.array(spec, { minLength: 2, maxLength: 4 }).map((l) => `bytes=${l.join(',')}`) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          fc.constantFrom('BYTES=', 'Bytes= ', 'bytes=,', 'bytes= , '),
          fc.array(spec, { minLength: 1, maxLength: 3 }),
          fc.constantFrom('', ',', ', ,'),
        )
        .map(([lead, l, tail]) => `${lead}${l.join(', ')}${tail}`),
    },
    {
      weight: 2,
      arbitrary: fc.oneof(
        fc.string({ maxLength: 40 }),
        fc.constantFrom(
          'bytes=',
          'bytes=-',
          'bytes=--1',
          'items=0-5',
          'bytes=a-b',
          'bytes=1-2-3',
          'bytes 0-5',
          'bytes=0-5;x',
          'bytes=0x10-',
        ),
        fc.string({ maxLength: 10 }).map((s) => `bytes=${s}`),
        fc.constant(`bytes=0-${'9'.repeat(2000)}`),
      ),
    },
  );
}

function matches(plan: ReturnType<typeof planRange>, outcome: Outcome): boolean {
  if (outcome.status === 200) return plan.kind === 'full';
  if (outcome.status === 416) return plan.kind === 'unsatisfiable';
  if ('parts' in outcome) {
    return plan.kind === 'multipart' && JSON.stringify(plan.ranges.map((r) => [r.start, r.end])) === JSON.stringify(outcome.parts);
  }
  return plan.kind === 'partial' && plan.start === outcome.start && plan.end === outcome.end;
}

/** The parts of a multipart/byteranges body: each part's Content-Range and bytes. */
function parseMultipart(contentType: string, body: Buffer): Array<{ range: [number, number, number]; bytes: Buffer }> {
  const boundary = /boundary=([^;]+)/.exec(contentType)?.[1];
  assert.ok(boundary, `multipart Content-Type ${contentType}`);
  const parts: Array<{ range: [number, number, number]; bytes: Buffer }> = [];
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  let pos = body.indexOf(delimiter);
  assert.equal(pos, 0, 'the body starts with a delimiter');
  for (;;) {
    pos += delimiter.length;
    if (body.subarray(pos, pos + 2).toString() === '--') break; // the closing delimiter
    const headEnd = body.indexOf('\r\n\r\n', pos);
    const head = body.subarray(pos, headEnd).toString();
    const m = /content-range: bytes (\d+)-(\d+)\/(\d+)/i.exec(head);
    assert.ok(m, `part head ${head}`);
    const range: [number, number, number] = [Number(m[1]), Number(m[2]), Number(m[3])];
    const start = headEnd + 4;
    parts.push({ range, bytes: body.subarray(start, start + range[1] - range[0] + 1) });
    pos = start + range[1] - range[0] + 1;
    assert.equal(body.indexOf(delimiter, pos), pos, 'each part is followed by a delimiter');
  }
  return parts;
}

test('planRange agrees with the RFC 9110 reference model for random sizes and headers', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 50_000_000 }).chain((size) => fc.tuple(fc.constant(size), rangeHeader(size))),
      ([size, header]) => {
        const plan = planRange(header, size);
        const allowed = reference(header, size);
        return allowed.some((o) => matches(plan, o));
      },
    ),
    { numRuns: 5000 },
  );
});

describe('the live proxy answers like the reference model, byte for byte', () => {
  const SIZES = [1, 2, 1000, 64 * 1024 - 1, 64 * 1024, 3 * 64 * 1024 + 17];
  let upstream: Upstream;
  let proxy: Proxy;
  const files = new Map<number, { data: Buffer; url: string }>();

  before(async () => {
    upstream = await startUpstream();
    proxy = await startProxy({ chunkSize: 64 * 1024 });
    for (const size of SIZES) {
      const data = makeData(size, size);
      upstream.setFile(`/p${size}.bin`, data);
      const { streamUrl } = await proxy.add(upstream.url(`/p${size}.bin`));
      files.set(size, { data, url: streamUrl });
    }
  });
  after(async () => {
    await proxy.close();
    await upstream.close();
  });

  test('status, Content-Range, Content-Length and body', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...SIZES).chain((size) => fc.tuple(fc.constant(size), rangeHeader(size))),
        async ([size, header]) => {
          const file = files.get(size);
          assert.ok(file);
          const res = await fetchBytes(file.url, header === undefined ? {} : { headers: { range: header } });
          const allowed = reference(header, size);
          const contentType = String(res.headers['content-type']);
          const multipart = res.status === 206 && contentType.startsWith('multipart/byteranges');
          const parts = multipart ? parseMultipart(contentType, res.body) : [];
          const got: Outcome = multipart
            ? { status: 206, parts: parts.map((p) => [p.range[0], p.range[1]]) }
            : res.status === 206
              ? (() => {
                  const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(String(res.headers['content-range']));
                  assert.ok(m, `Content-Range ${String(res.headers['content-range'])}`);
                  assert.equal(Number(m[3]), size);
                  return { status: 206, start: Number(m[1]), end: Number(m[2]) };
                })()
              : ({ status: res.status } as Outcome);
          assert.ok(
            allowed.some((o) => JSON.stringify(o) === JSON.stringify(got)),
            `${JSON.stringify(header)} on ${size} bytes: got ${JSON.stringify(got)}, allowed ${JSON.stringify(allowed)}`,
          );
          assert.equal(res.headers['content-length'], String(res.body.length), 'exact Content-Length');
          if (got.status === 416) {
            assert.equal(res.headers['content-range'], `bytes */${size}`);
            assert.equal(res.body.length, 0);
          } else if (multipart) {
            for (const p of parts) {
              assert.equal(p.range[2], size);
              assert.equal(sha256(p.bytes), sha256(file.data.subarray(p.range[0], p.range[1] + 1)));
            }
          } else {
            const want = 'start' in got ? file.data.subarray(got.start, got.end + 1) : file.data;
            assert.equal(sha256(res.body), sha256(want));
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
