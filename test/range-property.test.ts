import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { planRange } from '../src/server/range.js';
import { makeData, sha256, startUpstream, type Upstream } from './helpers/upstream.js';
import { fetchBytes, startProxy, type Proxy } from './helpers/harness.js';

/**
 * An independent reference model of RFC 9110 §14 for one representation of `size` bytes.
 * `exact` is the only conforming answer for a well-formed single range; for forms where the RFC
 * lets a server choose (several ranges, odd spellings) `allowed` lists every conforming answer.
 */
type Outcome = { status: 200 } | { status: 206; start: number; end: number } | { status: 416 };

interface Spec {
  first?: number;
  last?: number;
  suffix?: number;
}

function parseCanonical(header: string): Spec[] | null {
  const m = /^bytes=(.+)$/.exec(header);
  if (!m?.[1]) return null;
  const specs: Spec[] = [];
  for (const raw of m[1].split(',')) {
    const part = raw.trim();
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
  return specs;
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
  if (specs.length === 1) {
    const [r] = sat as [[number, number]];
    return [{ status: 206, start: r[0], end: r[1] }, ...ignoring];
  }
  // Several ranges: a server may ignore them (200) or, when they coalesce into one, send that.
  sat.sort((a, b) => a[0] - b[0]);
  const merged: Array<[number, number]> = [];
  for (const [s, e] of sat) {
    const last = merged[merged.length - 1];
    if (last && s <= last[1] + 1) last[1] = Math.max(last[1], e);
    else merged.push([s, e]);
  }
  const outcomes: Outcome[] = [{ status: 200 }];
  if (merged.length === 1) outcomes.push({ status: 206, start: merged[0]![0], end: merged[0]![1] });
  return outcomes;
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
  return plan.kind === 'partial' && plan.start === outcome.start && plan.end === outcome.end;
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
          const got: Outcome =
            res.status === 206
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
          if (got.status === 416) {
            assert.equal(res.headers['content-range'], `bytes */${size}`);
            assert.equal(res.body.length, 0);
          } else {
            const want = got.status === 206 ? file.data.subarray(got.start, got.end + 1) : file.data;
            assert.equal(res.headers['content-length'], String(want.length));
            assert.equal(sha256(res.body), sha256(want));
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
