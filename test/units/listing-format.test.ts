import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isPlainUrl, redactUrl } from '../../src/entry-input.js';
import { isoTime } from '../../src/model/iso-time.js';

/** A small deterministic PRNG (mulberry32): the same cases on every run. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('isoTime: the same text as Date.toISOString at the edges of days, years, eras and outside its range', () => {
  const edges = [0, 1, 999, 1000, 59_999, 86_399_999, 86_400_000, 951_782_400_000, 951_868_799_999, 4_107_542_399_999, 4_107_542_400_000];
  const far = [253_402_300_799_999, 253_402_300_800_000, -1, -62_198_755_200_000, 8.64e15, 1.5, 1_795_000_000_000.25];
  for (const ms of [...edges, ...far]) assert.equal(isoTime(ms), new Date(ms).toISOString(), String(ms));
  assert.throws(() => isoTime(Number.NaN), RangeError);
  assert.throws(() => isoTime(8.64e15 + 1), RangeError);
  const next = rng(13);
  for (let i = 0; i < 200_000; i++) {
    const ms = Math.floor(next() * 253_402_300_800_000);
    assert.equal(isoTime(ms), new Date(ms).toISOString(), String(ms));
  }
});

test('isPlainUrl: accepted URLs are their own redaction; credentials, queries, dot segments and normalised spellings are not accepted', () => {
  const plain = [
    'http://127.0.0.1:9/library/show-1/episode-1.mkv',
    'https://media.example.com/a/b.mp4',
    'http://localhost:8096/Videos/abc/stream.mkv',
    'http://a/',
    'http://0.0.0.0:1/x//y/...',
    "https://cdn-1.example.org/x_y/~z/!$&'()*+,;=:@-",
  ];
  for (const u of plain) {
    assert.equal(isPlainUrl(u), true, u);
    assert.equal(redactUrl(u), u);
  }
  const notPlain = [
    'http://user:pw@host/x', // credentials
    'http://host/x?token=abc', // a query (may hold a token)
    'http://host/x#frag',
    'HTTP://host/x', // scheme and host are lowercased
    'http://Host/x',
    'http://host', // gains a '/'
    'http://host:80/x', // default ports are dropped
    'https://host:443/x',
    'http://host:65536/x', // invalid
    'http://host:0080/x',
    'http://01.2.3.4/x', // octal IPv4
    'http://1.2.3/x', // short IPv4
    'http://256.1.1.1/x',
    'http://0x7f.1/x',
    'http://host.123/x', // numeric last label: IPv4 parsing
    'http://xn--a.com/x', // punycode is validated
    'http://host/a/../b', // dot segments are resolved
    'http://host/a/./b',
    'http://host/a/%2e%2e/b',
    'http://host/a b', // percent-encoded
    'http://host/a\\b',
    'http://host/a{b}',
    'http://host/é',
    'ftp://host/x',
    ' http://host/x',
  ];
  for (const u of notPlain) assert.equal(isPlainUrl(u), false, u);
});

test('isPlainUrl: over random URLs, whatever it accepts the URL parser writes back unchanged', () => {
  const next = rng(7);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)] as T;
  const schemes = ['http://', 'http://', 'https://', 'HTTP://', 'http:/', 'http:\\\\', 'ws://'];
  const labels = [
    'a',
    'a',
    'ex-ample',
    'ex-ample',
    'a1',
    'a1',
    '127',
    '127',
    'xn--nxasmq6b',
    'xn--a',
    '1',
    '255',
    '256',
    '01',
    '0x7f',
    '',
    '-a',
    'a-',
    'A',
    'a1',
    '9z',
    '0',
  ];
  const ports = ['', '', ':80', ':443', ':8080', ':0', ':65535', ':65536', ':08', ':', ':1x'];
  const safe = [..."abcXYZ019-._~!$&'()*+,;=:@/"];
  const tricky = [...'%2e.\\^|{}`"<> #?é\t'];
  let accepted = 0;
  for (let i = 0; i < 100_000; i++) {
    const host = Array.from({ length: 1 + Math.floor(next() * 4) }, () => pick(labels)).join('.');
    const path = Array.from({ length: Math.floor(next() * 12) }, () => pick(next() < 0.95 ? safe : tricky)).join('');
    const raw = `${pick(schemes)}${host}${pick(ports)}${next() < 0.9 ? '/' : ''}${path}`;
    if (!isPlainUrl(raw)) continue;
    accepted++;
    assert.equal(new URL(raw).href, raw, raw);
  }
  assert.ok(accepted > 1_000, `only ${accepted} random URLs were plain: the generator no longer tests much`);
});
