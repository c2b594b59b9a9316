import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DemandRegistry } from '../../src/download/demand.js';

test('a demand handle holds what its reader wants and releases it exactly once', () => {
  const registry = new DemandRegistry();
  const a = registry.open('e');
  const b = registry.open('e');
  assert.deepEqual(a.set([3, 4, 5], 3 * 100 + 7), []);
  b.set([4], 400);
  assert.deepEqual(registry.chunksOf('e'), [3, 4, 5]);
  assert.deepEqual(a.set([5, 6], 500), [3, 4], 'a seek returns what the reader no longer wants');
  assert.equal(registry.wants('e', 4), true, 'b still wants chunk 4');
  assert.deepEqual(a.release().sort(), [5, 6]);
  assert.deepEqual(a.release(), [], 'a second release gives nothing back');
  assert.deepEqual(a.set([9], 900), [], 'a released handle cannot take demand again');
  assert.deepEqual(registry.snapshot(), [{ entryId: 'e', handles: 1, chunks: [4] }]);
  b.release();
  assert.deepEqual(registry.snapshot(), []);
});

test('protection covers each reader from its position through its last wanted chunk, not what it played', () => {
  const registry = new DemandRegistry();
  const h = registry.open('e');
  h.set([7, 8, 9], 7 * 100 + 42);
  registry.open('e').set([2], 250);
  assert.deepEqual(registry.protectedSpans('e', 100), [
    [742, 999],
    [250, 299],
  ]);
  assert.deepEqual(registry.protectedSpans('other', 100), []);
});
