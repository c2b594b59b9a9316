import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Priority } from '../../src/db/repository.js';
import { ErrorCodes, isMediaCacheError } from '../../src/errors.js';
import { backgroundTransfers, parseRate, parseRateSchedule, rateAt, rateScheduleOf, type Rate } from '../../src/policy/rate-limit.js';
import { Bandwidth } from '../../src/download/bandwidth.js';
import { TokenBucket } from '../../src/download/token-bucket.js';

const { CRITICAL, HIGH, MEDIUM, LOW } = Priority;

/** A local time in the week of Monday 2026-11-30 (Mon = 30, Sun = 6 Dec): independent of TZ. */
const at = (day: 'Mon' | 'Tue' | 'Wed' | 'Thu' | 'Fri' | 'Sat' | 'Sun', hh: number, mm: number, ss = 0): Date =>
  new Date(2026, 10, 30 + ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'].indexOf(day), hh, mm, ss);

test('parseRate: the CLI size units as bytes per second, a trailing /s, off and 0 meaning no limit', () => {
  const cases: Array<[string, Rate]> = [
    ['2MB', 2_000_000],
    ['2MB/s', 2_000_000],
    ['2mb/S', 2_000_000],
    ['512KiB', 524_288],
    ['512KiB/s', 524_288],
    ['1M', 1_000_000],
    ['1500000', 1_500_000],
    ['1.5MB/s', 1_500_000],
    [' 10MiB ', 10_485_760],
    ['off', null],
    ['OFF', null],
    ['0', null],
    ['0/s', null],
  ];
  for (const [text, expected] of cases) assert.equal(parseRate(text), expected, text);
});

test('parseRate and parseRateSchedule: bad input is MC_ERR_INVALID_INPUT with a message naming the culprit', () => {
  const cases: Array<[string, RegExp]> = [
    ['fast', /"fast" is not a rate/],
    ['2 MBps', /is not a rate|is not \[Day-\]HH:MM,RATE/],
    ['-1MB', /is not a rate/],
    ['2XB/s', /is not a rate/],
    ['', /empty rate/],
    ['08:00,1M 25:00,off', /25:00 is not a time of day/],
    ['08:60,1M', /08:60 is not a time of day/],
    ['8,1M 9:00,off', /"8,1M" is not \[Day-\]HH:MM,RATE/],
    ['Mon-08:00,1M Xyz-09:00,off', /"Xyz" is not a day/],
    ['08:00,1M 08:00,2M', /two entries for the same time/],
    ['08:00,fast', /"fast" is not a rate/],
    ['08:00', /is not a rate/],
  ];
  for (const [text, message] of cases) {
    assert.throws(
      () => parseRateSchedule(text),
      (err: unknown) => isMediaCacheError(err, ErrorCodes.INVALID_INPUT) && message.test(err.message),
      text,
    );
  }
  assert.throws(
    () => rateScheduleOf(-5),
    (err: unknown) => isMediaCacheError(err, ErrorCodes.INVALID_INPUT),
  );
  assert.throws(
    () => rateScheduleOf(1.5),
    (err: unknown) => isMediaCacheError(err, ErrorCodes.INVALID_INPUT),
  );
});

test('rateAt: a constant rate never switches; a number of bytes per second is one', () => {
  for (const schedule of [parseRateSchedule('2MB/s'), rateScheduleOf(2_000_000)]) {
    assert.deepEqual(rateAt(schedule as ReturnType<typeof parseRateSchedule>, at('Wed', 12, 0)), { bytesPerSecond: 2_000_000, next: null });
  }
  assert.deepEqual(rateAt(parseRateSchedule('off'), at('Wed', 12, 0)), { bytesPerSecond: null, next: null });
  // One timetable entry, or several with one rate: a constant too.
  assert.deepEqual(rateAt(parseRateSchedule('08:00,1M'), at('Wed', 3, 0)), { bytesPerSecond: 1_000_000, next: null });
  assert.deepEqual(rateAt(parseRateSchedule('08:00,1M 20:00,1MB'), at('Wed', 3, 0)), { bytesPerSecond: 1_000_000, next: null });
});

test('rateAt: a daily timetable switches exactly at its minutes and wraps round midnight', () => {
  const schedule = parseRateSchedule('08:00,1M 23:00,off');
  const cases: Array<[Date, Rate, Date, Rate]> = [
    // [now, rate now, next switch, rate then]
    [at('Tue', 7, 59, 59), null, at('Tue', 8, 0), 1_000_000],
    [at('Tue', 8, 0, 0), 1_000_000, at('Tue', 23, 0), null],
    [at('Tue', 8, 0, 1), 1_000_000, at('Tue', 23, 0), null],
    [at('Tue', 22, 59, 59), 1_000_000, at('Tue', 23, 0), null],
    [at('Tue', 23, 0, 0), null, at('Wed', 8, 0), 1_000_000],
    // Past midnight the evening's "off" still holds: the previous day's last entry wraps round.
    [at('Wed', 0, 0, 0), null, at('Wed', 8, 0), 1_000_000],
    [at('Wed', 3, 30), null, at('Wed', 8, 0), 1_000_000],
    // Sunday night to Monday morning wraps round the week.
    [at('Sun', 23, 30), null, at('Mon', 8, 0, 0), 1_000_000],
  ];
  // The week's last Sunday wraps to the following Monday (7 Dec).
  cases[cases.length - 1]![2] = new Date(2026, 11, 7, 8, 0);
  for (const [now, rate, nextAt, nextRate] of cases) {
    assert.deepEqual(rateAt(schedule, now), { bytesPerSecond: rate, next: { at: nextAt, bytesPerSecond: nextRate } }, now.toString());
  }
});

test('rateAt: an overnight window (23:00 on, 07:00 off) holds across midnight', () => {
  const schedule = parseRateSchedule('07:00,off 23:00,5MB/s');
  assert.equal(rateAt(schedule, at('Thu', 22, 59)).bytesPerSecond, null);
  assert.equal(rateAt(schedule, at('Thu', 23, 0)).bytesPerSecond, 5_000_000);
  assert.equal(rateAt(schedule, at('Fri', 0, 0)).bytesPerSecond, 5_000_000);
  assert.equal(rateAt(schedule, at('Fri', 6, 59)).bytesPerSecond, 5_000_000);
  assert.deepEqual(rateAt(schedule, at('Fri', 6, 59)).next, { at: at('Fri', 7, 0), bytesPerSecond: null });
  assert.equal(rateAt(schedule, at('Fri', 7, 0)).bytesPerSecond, null);
});

test('rateAt: weekday entries hold from their day and time until the next entry, wrapping round the week', () => {
  const schedule = parseRateSchedule('Mon-08:00,512KiB Fri-18:00,10MB sat-00:00,off');
  const cases: Array<[Date, Rate, Date, Rate]> = [
    [at('Mon', 7, 59), null, at('Mon', 8, 0), 524_288],
    [at('Mon', 8, 0), 524_288, at('Fri', 18, 0), 10_000_000],
    [at('Wed', 12, 0), 524_288, at('Fri', 18, 0), 10_000_000],
    [at('Fri', 18, 0), 10_000_000, at('Sat', 0, 0), null],
    [at('Sun', 12, 0), null, new Date(2026, 11, 7, 8, 0), 524_288],
  ];
  for (const [now, rate, nextAt, nextRate] of cases) {
    assert.deepEqual(rateAt(schedule, now), { bytesPerSecond: rate, next: { at: nextAt, bytesPerSecond: nextRate } }, now.toString());
  }
});

test('rateAt: an entry with a day wins over an every-day entry at the same minute', () => {
  const schedule = parseRateSchedule('08:00,1M 23:00,off Sat-08:00,off');
  assert.equal(rateAt(schedule, at('Fri', 9, 0)).bytesPerSecond, 1_000_000);
  assert.equal(rateAt(schedule, at('Sat', 9, 0)).bytesPerSecond, null);
  assert.deepEqual(rateAt(schedule, at('Fri', 23, 30)).next, { at: at('Sun', 8, 0), bytesPerSecond: 1_000_000 });
});

test('Bandwidth: a timetable switches at its times on an injected clock, and pacing follows it', async () => {
  let now = at('Tue', 7, 59).getTime();
  const bw = new Bandwidth({ background: parseRateSchedule('08:00,1MB 23:00,off') }, () => now);
  try {
    const signal = new AbortController().signal;
    const low = { priority: LOW };
    assert.equal(bw.snapshot().limitRate?.bytesPerSecond, null);
    assert.deepEqual(bw.snapshot().limitRate?.next, { at: at('Tue', 8, 0).toISOString(), bytesPerSecond: 1_000_000 });
    // Off: nothing is paced, however many bytes.
    assert.equal(bw.pace(low, 50_000_000, signal), undefined);
    now = at('Tue', 8, 0).getTime();
    bw.refresh();
    assert.equal(bw.snapshot().limitRate?.bytesPerSecond, 1_000_000);
    assert.equal(bw.snapshot().limitRate?.timetable, '08:00,1MB 23:00,off');
    // On: the first piece goes (a full bucket), the next one waits.
    assert.equal(bw.pace(low, 1_000_000, signal), undefined);
    const waiting = bw.pace(low, 1000, signal);
    assert.ok(waiting, 'a background piece in debt waits');
    // Playback is not covered by --limit-rate.
    assert.equal(bw.pace({ priority: CRITICAL }, 1_000_000, signal), undefined);
    assert.equal(bw.pace({ priority: HIGH }, 1_000_000, signal), undefined);
    // 23:00: off again, and the waiter is let go at once.
    now = at('Tue', 23, 0).getTime();
    bw.refresh();
    assert.equal(bw.snapshot().limitRate?.bytesPerSecond, null);
    await waiting;
    assert.equal(bw.snapshot().limitRateAll, null);
  } finally {
    bw.close();
  }
});

test('Bandwidth: raising a waiting transfer to CRITICAL lets it go at once; under limit-rate-all it is re-ranked instead', async () => {
  const signal = new AbortController().signal;
  const bw = new Bandwidth({ background: parseRateSchedule('1KB/s') });
  try {
    const t = { priority: MEDIUM as Priority };
    assert.equal(bw.pace(t, 10_000_000, signal), undefined); // deep in debt: the next wait is hours long
    const waiting = bw.pace(t, 1000, signal);
    assert.ok(waiting);
    t.priority = CRITICAL;
    bw.priorityChanged(t);
    await waiting; // resolves now, not in hours
  } finally {
    bw.close();
  }
  const all = new Bandwidth({ all: parseRateSchedule('1KB/s') });
  try {
    const t = { priority: LOW as Priority };
    assert.equal(all.pace(t, 10_000_000, signal), undefined);
    const waiting = all.pace(t, 1000, signal);
    assert.ok(waiting);
    t.priority = CRITICAL;
    all.priorityChanged(t); // still covered: it stays in the queue, first in line
    let done = false;
    void waiting.then(() => (done = true));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(done, false);
    // A stop (abort) lets it go.
    const stopper = new AbortController();
    const other = all.pace({ priority: LOW }, 1000, stopper.signal);
    assert.ok(other);
    stopper.abort();
    await other;
  } finally {
    all.close();
  }
});

test('TokenBucket: waiters go by rank, then arrival, each charged when it goes', async () => {
  let now = 0;
  const bucket = new TokenBucket(1_000_000, () => now);
  assert.equal(bucket.take(300_000, LOW), undefined); // it starts empty: 300 kB in debt
  const order: string[] = [];
  const waits = [
    ['low-1', bucket.take(10, LOW)],
    ['medium', bucket.take(10, MEDIUM)],
    ['low-2', bucket.take(10, LOW)],
    ['critical', bucket.take(10, CRITICAL)],
  ] as const;
  for (const [name, w] of waits) {
    assert.ok(w, name);
    void w.done.then(() => order.push(name));
  }
  const lateCritical = bucket.take(10, LOW);
  assert.ok(lateCritical);
  bucket.rerank(lateCritical, CRITICAL);
  void lateCritical.done.then(() => order.push('raised'));
  now += 1000; // a second of tokens: everyone can go at the timer
  await Promise.all(waits.map(([, w]) => w?.done));
  await lateCritical.done;
  assert.deepEqual(order, ['critical', 'raised', 'medium', 'low-1', 'low-2']);
  // A cancelled wait goes at once (a stopped or raised transfer does not wait for the timer).
  assert.equal(bucket.take(400_000, LOW), undefined);
  const cancelled = bucket.take(1_000_000, LOW);
  assert.ok(cancelled);
  bucket.cancel(cancelled);
  await cancelled.done;
  bucket.releaseAll();
});

test('backgroundTransfers: as many background transfers as reaching the limit takes at the measured rate, one while unmeasured', () => {
  const cases: Array<[Rate, number | null, number, number]> = [
    // [limit B/s, upstream bytes/ms per transfer, max, expected]
    [null, null, 3, 3],
    [null, 20_000, 3, 3],
    [2_000_000, null, 3, 1],
    [2_000_000, 20_000, 3, 1], // 20 MB/s per transfer: one is plenty
    [50_000_000, 20_000, 3, 3], // 2.5 transfers' worth
    [50_000_000, 20_000, 2, 2], // never more than the slots
    [30_000_000, 20_000, 3, 2],
    [2_000_000, 1_000, 3, 2], // a slow upstream (1 MB/s per transfer)
    [2_000_000, 0, 3, 1],
  ];
  for (const [limit, rate, max, expected] of cases)
    assert.equal(backgroundTransfers(limit, rate, max), expected, `${limit} ${rate} ${max}`);
});

test('Bandwidth.backgroundFull: under a limit no more background transfers than it needs; without one, never full', () => {
  const limited = new Bandwidth({ background: parseRateSchedule('2MB/s') });
  const free = new Bandwidth({});
  try {
    const t = (priority: Priority) => ({ priority });
    assert.equal(limited.backgroundFull([], null, 3), false);
    assert.equal(limited.backgroundFull([t(CRITICAL), t(HIGH)], null, 3), false, 'playback does not count');
    assert.equal(limited.backgroundFull([t(MEDIUM)], null, 3), true);
    assert.equal(limited.backgroundFull([t(LOW)], 1_000, 3), false, 'a slow upstream gets a second transfer');
    assert.equal(free.backgroundFull([t(LOW), t(LOW), t(MEDIUM)], null, 3), false);
  } finally {
    limited.close();
    free.close();
  }
});
