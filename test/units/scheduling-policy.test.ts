import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Priority } from '../../src/db/repository.js';
import {
  backoffDelay,
  keepsPrefix,
  openingPlan,
  pickVictim,
  priorityWithoutReaders,
  shouldSplit,
  SPLIT_UNMEASURED_BYTES,
  strongerStop,
  type StopReason,
} from '../../src/policy/scheduling.js';
import { decideAdmission, type Admission } from '../../src/policy/admission.js';

const { CRITICAL, HIGH, MEDIUM, LOW } = Priority;

test('pickVictim: the least urgent running transfer, the latest among equals, only if less urgent than the queued work', () => {
  const t = (name: string, priority: Priority) => ({ name, priority });
  const cases: Array<[Array<{ name: string; priority: Priority }>, Priority, string | undefined]> = [
    [[t('a', LOW), t('b', HIGH)], CRITICAL, 'a'],
    [[t('a', LOW), t('b', LOW)], CRITICAL, 'b'],
    [[t('a', HIGH), t('b', MEDIUM)], HIGH, 'b'],
    [[t('a', HIGH), t('b', HIGH)], HIGH, undefined],
    [[t('a', CRITICAL)], CRITICAL, undefined],
    [[t('a', MEDIUM)], LOW, undefined],
    [[], CRITICAL, undefined],
  ];
  for (const [running, next, expected] of cases) {
    assert.equal(pickVictim(running, next)?.name, expected, `${JSON.stringify(running)} for ${next}`);
  }
});

test('priorityWithoutReaders: MEDIUM while pre-caching, LOW with background fill, else dropped', () => {
  const cases: Array<[boolean, boolean, Priority | null]> = [
    [true, true, MEDIUM],
    [true, false, MEDIUM],
    [false, true, LOW],
    [false, false, null],
  ];
  for (const [prefetching, fill, expected] of cases) assert.equal(priorityWithoutReaders(prefetching, fill), expected);
});

test('backoffDelay doubles from the base and stops at the cap', () => {
  const retry = { attempts: 5, baseDelayMs: 100, maxDelayMs: 500 };
  assert.deepEqual(
    [1, 2, 3, 4, 5].map((a) => backoffDelay(a, retry)),
    [100, 200, 400, 500, 500],
  );
});

test('stop reasons: a stronger one replaces a weaker one, never the reverse; only pre-emption and cancel keep a prefix', () => {
  const cases: Array<[StopReason | null, StopReason, StopReason]> = [
    [null, 'preempted', 'preempted'],
    ['preempted', 'cancelled', 'cancelled'],
    ['cancelled', 'preempted', 'cancelled'],
    ['preempted', 'invalidated', 'invalidated'],
    ['invalidated', 'shutdown', 'invalidated'],
    ['shutdown', 'invalidated', 'invalidated'],
    ['cancelled', 'shutdown', 'shutdown'],
  ];
  for (const [current, requested, expected] of cases) assert.equal(strongerStop(current, requested), expected, `${current} + ${requested}`);
  assert.deepEqual(([null, 'preempted', 'cancelled', 'shutdown', 'invalidated'] as const).map(keepsPrefix), [
    true,
    true,
    true,
    false,
    false,
  ]);
});

test('openingPlan: head and tail at HIGH, the rest by pre-cache or background fill', () => {
  assert.deepEqual(openingPlan(0, false, true), { high: [], rest: null });
  assert.deepEqual(openingPlan(1, false, true), { high: [0], rest: LOW });
  assert.deepEqual(openingPlan(10, true, true), { high: [0, 9], rest: MEDIUM });
  assert.deepEqual(openingPlan(10, false, false), { high: [0, 9], rest: null });
});

test('decideAdmission: what fits starts; playback waits for room; background that cannot fit is dropped', () => {
  const cases: Array<[{ fits: boolean; priority: Priority; entryBeingEvicted: boolean; noRoomForBackground: boolean }, Admission]> = [
    [{ fits: true, priority: LOW, entryBeingEvicted: false, noRoomForBackground: false }, 'admit'],
    [{ fits: true, priority: CRITICAL, entryBeingEvicted: true, noRoomForBackground: false }, 'wait'],
    [{ fits: false, priority: CRITICAL, entryBeingEvicted: false, noRoomForBackground: true }, 'wait'],
    [{ fits: false, priority: HIGH, entryBeingEvicted: false, noRoomForBackground: false }, 'wait'],
    [{ fits: false, priority: MEDIUM, entryBeingEvicted: false, noRoomForBackground: false }, 'wait'],
    [{ fits: false, priority: MEDIUM, entryBeingEvicted: false, noRoomForBackground: true }, 'drop'],
    [{ fits: false, priority: LOW, entryBeingEvicted: false, noRoomForBackground: true }, 'drop'],
    [{ fits: true, priority: LOW, entryBeingEvicted: false, noRoomForBackground: true }, 'admit'],
  ];
  for (const [input, expected] of cases) assert.equal(decideAdmission(input), expected, JSON.stringify(input));
});

test('shouldSplit: a seek splits a transfer when waiting for it is slower than a new request', () => {
  const cases: Array<[{ distance: number; bytesPerMs: number | null; firstByteMs: number | null }, boolean]> = [
    [{ distance: 0, bytesPerMs: 1, firstByteMs: 1 }, false],
    // 4 MB/s = 4,000 B/ms; 1 MB ahead is 250 ms of waiting against a 20 ms first byte: split.
    [{ distance: 1_000_000, bytesPerMs: 4_000, firstByteMs: 20 }, true],
    // 100 KB ahead is 25 ms: less than 1.5 × 20 ms, keep waiting.
    [{ distance: 100_000, bytesPerMs: 4_000, firstByteMs: 20 }, false],
    [{ distance: 130_000, bytesPerMs: 4_000, firstByteMs: 20 }, true],
    // Unmeasured: only a far seek splits.
    [{ distance: SPLIT_UNMEASURED_BYTES - 1, bytesPerMs: null, firstByteMs: 20 }, false],
    [{ distance: SPLIT_UNMEASURED_BYTES, bytesPerMs: null, firstByteMs: null }, true],
  ];
  for (const [input, expected] of cases) assert.equal(shouldSplit(input), expected, JSON.stringify(input));
});
