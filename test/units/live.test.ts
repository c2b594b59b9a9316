import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RateGate } from '../../src/live/rate-gate.js';
import { ReplayRing } from '../../src/live/replay-ring.js';

describe('RateGate: at most one message per key per interval, the last change never lost', () => {
  test('a first change goes out at once; changes within the interval wait for its end, then go out once', () => {
    const gate = new RateGate<string>(250);
    assert.equal(gate.mark('a'), Number.NEGATIVE_INFINITY);
    assert.deepEqual(gate.take(1000), ['a']);
    assert.equal(gate.nextDue(), null);
    assert.equal(gate.mark('a'), 1250);
    gate.mark('a');
    assert.deepEqual(gate.take(1100), [], 'inside the interval');
    assert.equal(gate.nextDue(), 1250);
    assert.deepEqual(gate.take(1250), ['a'], 'both changes go out as one');
    assert.deepEqual(gate.take(2000), [], 'nothing changed since');
  });

  test('keys are independent; sent() starts the interval; forget() drops a pending change', () => {
    const gate = new RateGate<string>(500);
    gate.sent('t', 0);
    gate.mark('t');
    gate.mark('u');
    assert.deepEqual(gate.take(100), ['u']);
    assert.equal(gate.nextDue(), 500);
    gate.forget('t');
    assert.equal(gate.nextDue(), null);
    assert.equal(gate.pending, 0);
    gate.mark('t');
    assert.deepEqual(gate.take(101), ['t'], 'forgotten: its next change goes out at once');
  });

  test('marked on every millisecond for 10 s, a key goes out exactly once per interval', () => {
    const gate = new RateGate<number>(250);
    let sent = 0;
    for (let now = 0; now < 10_000; now++) {
      gate.mark(7);
      sent += gate.take(now).length;
    }
    assert.equal(sent, 40);
  });

  test('take(limit) leaves the rest due for the next turn', () => {
    const gate = new RateGate<number>(500);
    for (let k = 0; k < 250; k++) gate.mark(k);
    assert.equal(gate.take(0, 100).length, 100);
    assert.equal(gate.nextDue(), Number.NEGATIVE_INFINITY, 'the others are still due now');
    assert.equal(gate.take(0, 100).length, 100);
    assert.equal(gate.take(0, 100).length, 50);
    assert.equal(gate.nextDue(), null);
  });

  test('prune forgets quiet keys only', () => {
    const gate = new RateGate<string>(100);
    gate.sent('quiet', 0);
    gate.sent('busy', 0);
    gate.mark('busy');
    gate.prune(50);
    assert.equal(gate.mark('quiet'), 100, 'not yet quiet for an interval');
    gate.take(100);
    gate.prune(1000);
    assert.equal(gate.mark('quiet'), Number.NEGATIVE_INFINITY);
  });
});

describe('ReplayRing: the last N messages by consecutive sequence number', () => {
  test('replays exactly what came after a held id, nothing for the newest, null past the window', () => {
    const ring = new ReplayRing<string>(4);
    assert.deepEqual(ring.after(0), [], 'nothing sent yet, nothing missed');
    for (const m of ['m1', 'm2', 'm3', 'm4', 'm5', 'm6']) ring.push(m);
    assert.equal(ring.lastSeq, 6);
    assert.equal(ring.firstSeq, 3);
    assert.deepEqual(ring.after(2), ['m3', 'm4', 'm5', 'm6'], 'the oldest held message follows id 2');
    assert.deepEqual(ring.after(4), ['m5', 'm6']);
    assert.deepEqual(ring.after(6), []);
    assert.equal(ring.after(1), null, 'm2 is gone: a gap, so a snapshot');
    assert.equal(ring.after(7), null, 'never given out');
    assert.equal(ring.after(-1), null);
    assert.equal(ring.after(2.5), null);
  });

  test('after wrapping many times the window still holds exactly the last N in order', () => {
    const ring = new ReplayRing<number>(5);
    for (let i = 1; i <= 1003; i++) assert.equal(ring.push(i), i);
    assert.deepEqual(ring.after(998), [999, 1000, 1001, 1002, 1003]);
    assert.equal(ring.after(997), null);
  });
});
