import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataDirLock, FRESH_LOCK_MS } from '../src/data-dir-lock.js';
import { isMediaCacheError } from '../src/errors.js';
import { tempDir } from './helpers/harness.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'helpers', 'lock-child.ts');
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function lockPath(): string {
  const dir = tempDir('mediacache-lock-');
  dirs.push(dir);
  return path.join(dir, 'mediacache.lock');
}

/** The pid of a process that has exited: what a killed owner leaves in its lock file. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await once(child, 'exit');
  assert.ok(child.pid);
  return child.pid;
}

function backdate(file: string, ms: number): void {
  const past = new Date(Date.now() - ms);
  utimesSync(file, past, past);
}

/** Our lock file: our pid, then our random tag. */
const ours = new RegExp(`^${process.pid}\\n[0-9a-f]{16}\\n$`);

const isLocked = (err: unknown): boolean => isMediaCacheError(err, 'MC_ERR_DATA_DIR_LOCKED');

interface Racer {
  child: ChildProcess;
  output: string;
  /** Resolves with the verdict line (`won`, `locked`, `error …`). */
  verdict: Promise<string>;
}

function startRacer(file: string): { racer: Racer; ready: Promise<void> } {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, file], { stdio: ['pipe', 'pipe', 'inherit'] });
  const racer: Racer = { child, output: '', verdict: Promise.resolve('') };
  let ready: () => void = () => undefined;
  let verdict: (line: string) => void = () => undefined;
  const readyPromise = new Promise<void>((resolve) => (ready = resolve));
  racer.verdict = new Promise((resolve) => (verdict = resolve));
  child.stdout?.on('data', (d: Buffer) => {
    racer.output += d.toString();
    if (racer.output.includes('ready\n')) ready();
    const line = racer.output.split('\n').find((l) => l !== 'ready' && l !== '');
    if (line) verdict(line);
  });
  child.once('exit', () => verdict(racer.output.split('\n').find((l) => l !== 'ready' && l !== '') ?? 'exited'));
  return { racer, ready: readyPromise };
}

test('processes racing to take over a stale lock (dead pid, or old and empty): exactly one wins, every round', async () => {
  const ROUNDS = 6;
  const RACERS = 4;
  for (let round = 0; round < ROUNDS; round++) {
    const file = lockPath();
    if (round % 2 === 0) writeFileSync(file, `${await deadPid()}\n`);
    else {
      writeFileSync(file, '');
      backdate(file, FRESH_LOCK_MS * 3);
    }
    const started = Array.from({ length: RACERS }, () => startRacer(file));
    await Promise.all(started.map((s) => s.ready));
    const startAt = performance.timeOrigin + performance.now() + 150;
    for (const { racer } of started) racer.child.stdin?.write(`${startAt}\n`);
    const verdicts = await Promise.all(started.map((s) => s.racer.verdict));
    const winners = started.filter((_s, i) => verdicts[i] === 'won');
    assert.equal(winners.length, 1, `round ${round}: ${verdicts.join(', ')}`);
    assert.equal(verdicts.filter((v) => v === 'locked').length, RACERS - 1, verdicts.join(', '));
    const winner = winners[0]?.racer.child;
    assert.match(readFileSync(file, 'utf8'), new RegExp(`^${winner?.pid}\n[0-9a-f]{16}\n$`), 'the lock names the winner');
    winner?.stdin?.end();
    for (const { racer } of started) if (racer.child.exitCode === null) await once(racer.child, 'exit');
    assert.ok(!existsSync(file), 'the winner released its lock');
    assert.deepEqual(readdirSync(path.dirname(file)), [], 'no temp, takeover or aside files left behind');
  }
});

test('an empty or half-written lock file younger than a few seconds is held (its owner may be writing it); older, it is stale', () => {
  for (const content of ['', '123', '12a\n']) {
    const file = lockPath();
    writeFileSync(file, content);
    assert.throws(
      () => DataDirLock.acquire(file),
      (err) => isLocked(err) && /being written/.test((err as Error).message),
    );
    assert.equal(readFileSync(file, 'utf8'), content, 'not taken over');
    backdate(file, FRESH_LOCK_MS + 1_000);
    const lock = DataDirLock.acquire(file);
    assert.match(readFileSync(file, 'utf8'), ours);
    lock.release();
    assert.ok(!existsSync(file));
  }
});

test('release() removes only our own lock: a lock file another process put in its place stays', () => {
  const file = lockPath();
  const lock = DataDirLock.acquire(file);
  // Someone removed our file (by hand) and another process, alive, took the name.
  rmSync(file);
  writeFileSync(file, `${process.ppid}\n`);
  lock.release();
  assert.equal(readFileSync(file, 'utf8'), `${process.ppid}\n`);
  // Even one carrying our pid is not ours unless it carries our tag.
  rmSync(file);
  const again = DataDirLock.acquire(file);
  rmSync(file);
  writeFileSync(file, `${process.pid}\n`);
  again.release();
  assert.ok(existsSync(file));
});

test('a live owner keeps its lock; one process cannot take its data dir twice; its own pid in a lock it does not hold is stale (same pid after a restart)', () => {
  const live = lockPath();
  writeFileSync(live, `${process.ppid}\n`);
  assert.throws(
    () => DataDirLock.acquire(live),
    (err) => isLocked(err) && new RegExp(`pid ${process.ppid}`).test((err as Error).message),
  );

  const file = lockPath();
  const lock = DataDirLock.acquire(file);
  assert.throws(
    () => DataDirLock.acquire(file),
    (err) => isLocked(err) && /already open in this process/.test((err as Error).message),
  );
  lock.release();

  const reused = lockPath();
  writeFileSync(reused, `${process.pid}\n`);
  backdate(reused, 60_000);
  DataDirLock.acquire(reused).release();
  assert.ok(!existsSync(reused));
});

test('a takeover marker left by a dead taker is cleared; one held by a live process means the lock is being taken', async () => {
  const file = lockPath();
  writeFileSync(file, `${await deadPid()}\n`);
  writeFileSync(`${file}.takeover`, `${await deadPid()}\n`);
  const lock = DataDirLock.acquire(file);
  assert.match(readFileSync(file, 'utf8'), ours);
  assert.ok(!existsSync(`${file}.takeover`));
  lock.release();

  writeFileSync(file, `${await deadPid()}\n`);
  writeFileSync(`${file}.takeover`, `${process.ppid}\n`);
  assert.throws(
    () => DataDirLock.acquire(file),
    (err) => isLocked(err) && /taking over/.test((err as Error).message),
  );
});
