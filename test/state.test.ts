import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { Priority } from '../src/db/repository.js';
import { SqliteRepository } from '../src/db/sqlite-repository.js';
import { EntryState, coalesceRanges, deriveState } from '../src/state/entry-state.js';
import { tempDir } from './helpers/harness.js';

let dir: string;
let repo: SqliteRepository;
let n = 0;

before(() => {
  dir = tempDir();
  repo = new SqliteRepository(path.join(dir, 'cache.db'));
});
after(() => {
  repo.close();
  rmSync(dir, { recursive: true, force: true });
});

function newEntry(): string {
  const id = `entry-${++n}`;
  repo.insertEntry({
    id,
    cacheKey: id,
    sourceId: null,
    mediaId: null,
    quality: null,
    originalUrl: `http://upstream/${id}`,
    filePath: `${id}.bin`,
    chunkSize: 100,
    createdAt: 1,
    lastAccessed: 1,
    bitrate: null,
  });
  return id;
}
const meta = (size: number) => ({ expectedTotalSize: size, mimeType: 'video/mp4', etag: '"e"', lastModified: null });
const chunk = (start: number, end: number) => ({ start, end, checksum: 0, downloadedAt: 2 });
const state = (id: string) => deriveState(repo.entryFacts(id));

test('no entry at all is NotStarted', () => {
  assert.equal(deriveState(undefined), EntryState.NotStarted);
});

test('an entry with no chunks and nothing queued is NotStarted', () => {
  assert.equal(state(newEntry()), EntryState.NotStarted);
});

test('queued work on an entry of unknown size is Initializing', () => {
  const id = newEntry();
  repo.enqueue(id, 0, Priority.CRITICAL, 1);
  assert.equal(state(id), EntryState.Initializing);
});

test('known size, some bytes and pending queue rows is Downloading', () => {
  const id = newEntry();
  repo.setEntryMetadata(id, 1, meta(250));
  repo.enqueue(id, 0, Priority.HIGH, 1);
  repo.enqueue(id, 1, Priority.LOW, 1);
  assert.equal(state(id), EntryState.Downloading);
  repo.recordChunk(id, 1, 0, chunk(0, 99));
  assert.equal(state(id), EntryState.Downloading);
  assert.equal(repo.entryFacts(id)?.pendingChunks, 1, 'recording a chunk removes its queue row');
});

test('some chunks, nothing pending, not complete is Paused', () => {
  const id = newEntry();
  repo.setEntryMetadata(id, 1, meta(250));
  repo.recordChunk(id, 1, null, chunk(100, 199));
  assert.equal(state(id), EntryState.Paused);
});

test('stored bytes equal to the total is Complete, and is_complete is set', () => {
  const id = newEntry();
  repo.setEntryMetadata(id, 1, meta(250));
  repo.recordChunk(id, 1, 0, chunk(0, 99));
  repo.recordChunk(id, 1, 2, chunk(200, 249));
  assert.equal(state(id), EntryState.Paused);
  repo.recordChunk(id, 1, 1, chunk(100, 199));
  assert.equal(state(id), EntryState.Complete);
  assert.equal(repo.getEntry(id)?.isComplete, true);
  assert.equal(repo.entryFacts(id)?.storedBytes, 250);
});

test('a zero-length file is Complete once its size is known', () => {
  const id = newEntry();
  repo.setEntryMetadata(id, 1, meta(0));
  assert.equal(state(id), EntryState.Complete);
});

test('an error outranks everything and clearing it retries (Failed → previous state)', () => {
  const id = newEntry();
  repo.setEntryMetadata(id, 1, meta(250));
  repo.recordChunk(id, 1, 0, chunk(0, 99));
  repo.setEntryError(id, 'upstream answered 404');
  assert.equal(state(id), EntryState.Failed);
  repo.setEntryError(id, null);
  assert.equal(state(id), EntryState.Paused);
});

test('a new version forgets the old bytes, queue and validators in one step, and the old version can record nothing', () => {
  const id = newEntry();
  repo.setEntryMetadata(id, 1, meta(250));
  repo.recordChunk(id, 1, 0, chunk(0, 99));
  repo.enqueue(id, 1, Priority.LOW, 1);
  const next = repo.newVersion(id, 1, (v) => `${id}.v${v}.bin`);
  assert.equal(next?.version, 2);
  assert.equal(next?.filePath, `${id}.v2.bin`);
  const facts = repo.entryFacts(id);
  assert.deepEqual([facts?.storedBytes, facts?.pendingChunks, facts?.entry.expectedTotalSize, facts?.entry.etag], [0, 0, null, null]);
  assert.equal(state(id), EntryState.NotStarted);
  // A transfer of version 1 that finishes now records nothing, and sets no metadata.
  assert.equal(repo.recordChunk(id, 1, null, chunk(100, 199)), false);
  assert.equal(repo.setEntryMetadata(id, 1, meta(250)), false);
  assert.equal(repo.entryFacts(id)?.storedBytes, 0);
  assert.equal(repo.chunkCovering(id, 2, 150), undefined);
  // A second caller that saw version 1 changes nothing more.
  assert.equal(repo.newVersion(id, 1, (v) => `${id}.v${v}.bin`)?.version, 2);
  assert.equal(repo.setEntryMetadata(id, 2, meta(300)), true);
  assert.equal(repo.recordChunk(id, 2, 0, chunk(0, 99)), true);
  assert.equal(repo.chunkCovering(id, 2, 50)?.end, 99);
  assert.equal(repo.chunkCovering(id, 1, 50), undefined, 'rows of one version are not found under another');
});

test('the queue hands out work by priority, then age, then chunk order; a raise never lowers', () => {
  const id = newEntry();
  repo.setEntryMetadata(id, 1, meta(1000));
  repo.enqueue(id, 5, Priority.LOW, 10);
  repo.enqueue(id, 7, Priority.HIGH, 20);
  repo.enqueue(id, 6, Priority.HIGH, 20);
  repo.enqueue(id, 9, Priority.CRITICAL, 30);
  repo.enqueue(id, 9, Priority.LOW, 40); // does not lower CRITICAL
  const order: number[] = [];
  for (let row = repo.nextQueued(); row; row = repo.nextQueued()) {
    if (row.entryId === id) order.push(row.chunkIndex); // other tests' entries have rows too
    repo.setQueueStatus(row.entryId, row.chunkIndex, 'downloading');
  }
  assert.deepEqual(order, [9, 6, 7, 5]);
  assert.ok(repo.requeueDownloading().includes(id), 'it names the entries whose rows went back (for queue-changed)');
  assert.deepEqual(
    repo.queueFor(id).map((r) => r.status),
    ['queued', 'queued', 'queued', 'queued'],
    'a restart puts claimed rows back in the queue',
  );
  repo.dequeueEntry(id);
});

test('coalesceRanges merges touching and overlapping ranges', () => {
  assert.deepEqual(coalesceRanges([chunk(0, 9), chunk(10, 19), chunk(30, 39), chunk(35, 50)]), [
    [0, 19],
    [30, 50],
  ]);
});
