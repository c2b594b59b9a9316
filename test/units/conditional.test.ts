import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  evaluatePreconditions,
  httpDate,
  ifRangeHolds,
  validatorsOf,
  type ConditionalHeaders,
  type Precondition,
} from '../../src/server/conditional.js';

const LM = 'Tue, 15 Nov 1994 12:45:26 GMT';
const v = { etag: '"abc-v2"', lastModified: LM };
const before = 'Tue, 15 Nov 1994 12:45:25 GMT';
const after = 'Tue, 15 Nov 1994 12:45:27 GMT';

test('preconditions in the order of RFC 9110 §13.2.2', () => {
  const cases: Array<[ConditionalHeaders, Precondition]> = [
    [{}, 'proceed'],
    [{ ifMatch: '"abc-v2"' }, 'proceed'],
    [{ ifMatch: '"x", "abc-v2"' }, 'proceed'],
    [{ ifMatch: '*' }, 'proceed'],
    [{ ifMatch: 'W/"abc-v2"' }, 'failed'], // If-Match compares strongly
    [{ ifMatch: '"other"' }, 'failed'],
    [{ ifUnmodifiedSince: LM }, 'proceed'],
    [{ ifUnmodifiedSince: after }, 'proceed'],
    [{ ifUnmodifiedSince: before }, 'failed'],
    [{ ifUnmodifiedSince: 'not a date' }, 'proceed'],
    [{ ifMatch: '"abc-v2"', ifUnmodifiedSince: before }, 'proceed'], // If-Match present: IUS ignored
    [{ ifNoneMatch: '"abc-v2"' }, 'not-modified'],
    [{ ifNoneMatch: 'W/"abc-v2"' }, 'not-modified'], // weak comparison
    [{ ifNoneMatch: '"x", W/"abc-v2"' }, 'not-modified'],
    [{ ifNoneMatch: '*' }, 'not-modified'],
    [{ ifNoneMatch: '"other"' }, 'proceed'],
    [{ ifModifiedSince: LM }, 'not-modified'],
    [{ ifModifiedSince: after }, 'not-modified'],
    [{ ifModifiedSince: before }, 'proceed'],
    [{ ifModifiedSince: 'garbage' }, 'proceed'],
    [{ ifNoneMatch: '"other"', ifModifiedSince: after }, 'proceed'], // INM present: IMS ignored
    [{ ifMatch: '"other"', ifNoneMatch: '"abc-v2"' }, 'failed'], // 412 before 304
    [{ ifMatch: '"abc-v2"', ifNoneMatch: '"abc-v2"' }, 'not-modified'],
  ];
  for (const [headers, expected] of cases) assert.equal(evaluatePreconditions(headers, v), expected, JSON.stringify(headers));
});

test('date conditions are ignored when the last-modified date is unknown', () => {
  const noDate = { etag: '"abc-v2"', lastModified: null };
  assert.equal(evaluatePreconditions({ ifUnmodifiedSince: before }, noDate), 'proceed');
  assert.equal(evaluatePreconditions({ ifModifiedSince: after }, noDate), 'proceed');
});

test('If-Range holds on a strong matching tag or the exact Last-Modified date only', () => {
  const cases: Array<[string | undefined, boolean]> = [
    [undefined, true],
    ['"abc-v2"', true],
    ['"abc-v1"', false],
    ['W/"abc-v2"', false],
    [LM, true],
    [before, false],
    [after, false],
    ['garbage', false],
  ];
  for (const [ifRange, expected] of cases) assert.equal(ifRangeHolds(ifRange, v), expected, String(ifRange));
  assert.equal(ifRangeHolds(LM, { etag: '"abc-v2"', lastModified: null }), false);
});

test('HTTP dates: IMF-fixdate and the obsolete forms; anything else is no date', () => {
  const ms = Date.UTC(1994, 10, 6, 8, 49, 37);
  assert.equal(httpDate('Sun, 06 Nov 1994 08:49:37 GMT'), ms);
  assert.equal(httpDate('Sunday, 06-Nov-94 08:49:37 GMT'), ms);
  assert.equal(httpDate('Sun Nov  6 08:49:37 1994'), ms);
  assert.equal(httpDate('1994-11-06T08:49:37Z'), null);
  assert.equal(httpDate('sun, 06 nov 1994 08:49:37 gmt'), null, 'HTTP-date is case-sensitive');
  assert.equal(httpDate('Sun, 06 Nov 1994 08:49:37 +0000'), null);
  assert.equal(httpDate('yesterday'), null);
});

test('a stream ETag follows the upstream validators and our version, and is strong', () => {
  const entry = { id: 'e', version: 1, createdAt: 5, expectedTotalSize: 100, etag: '"up"', lastModified: LM };
  assert.equal(validatorsOf(entry).etag, '"up-v1"');
  assert.equal(validatorsOf({ ...entry, version: 2 }).etag, '"up-v2"');
  const weak = validatorsOf({ ...entry, etag: 'W/"up"' }).etag;
  assert.match(weak, /^"[A-Za-z0-9_-]{22}-v1"$/);
  assert.notEqual(weak, validatorsOf({ ...entry, etag: 'W/"up2"' }).etag);
  const none = { ...entry, etag: null, lastModified: null };
  assert.notEqual(validatorsOf(none).etag, validatorsOf({ ...none, id: 'f' }).etag, 'no upstream validator: the entry identity counts');
  assert.equal(validatorsOf(entry).lastModified, LM);
});
