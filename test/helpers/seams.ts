/**
 * Seams that let a test inject an interleaving for real instead of hoping a race happens: a chunk
 * store whose fsyncs and writes can be held at a gate the test releases.
 *
 *   let held!: HeldStore;
 *   const proxy = await startProxy({ createStore: (root) => (held = new HeldStore(root)) });
 *   const gate = held.holdSync();          // syncs started from now on wait
 *   ...                                    // a transfer finishes its bytes, then blocks in sync()
 *   await held.whenSyncHeld();             // ...really blocked there
 *   ...                                    // do what must happen while it waits
 *   gate.release();                        // it goes on
 */
import { closeSync, openSync, readSync, readlinkSync, statSync, utimesSync, writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { ChunkStore } from '../../src/store/chunk-store.js';

/** A hold on one kind of operation; operations started while it is held wait until release(). */
export interface Gate {
  /** Lets every operation waiting on this gate go on; idempotent. */
  release(): void;
  readonly released: boolean;
  /** Operations that have waited on this gate so far (still waiting or let go). */
  readonly caught: number;
}

/** Which files a hold applies to (file names relative to the store root); all when omitted. */
export type FileFilter = (file: string) => boolean;

interface ActiveGate extends Gate {
  filter: FileFilter;
  wait: Promise<void>;
  caught: number;
}

function makeGate(filter: FileFilter, onRelease: (g: ActiveGate) => void): ActiveGate {
  let open!: () => void;
  const gate: ActiveGate = {
    filter,
    wait: new Promise<void>((resolve) => (open = resolve)),
    caught: 0,
    released: false,
    release() {
      if (gate.released) return;
      (gate as { released: boolean }).released = true;
      onRelease(gate);
      open();
    },
  };
  return gate;
}

type Kind = 'sync' | 'write';

/**
 * A ChunkStore whose `sync(file)` and write system calls (`writeAt`) can be held. Holding does
 * not affect operations already past the gate; released gates never hold again.
 */
export class HeldStore extends ChunkStore {
  private readonly gates: Record<Kind, ActiveGate[]> = { sync: [], write: [] };
  private readonly waiting: Record<Kind, number> = { sync: 0, write: 0 };
  private readonly watchers: Array<{ kind: Kind; n: number; resolve: () => void }> = [];
  /** Files whose sync went through (after any hold), in order: to tell which transfer synced when. */
  readonly synced: string[] = [];

  /** Holds every sync() of a matching file started from now until the gate is released. */
  holdSync(filter: FileFilter = () => true): Gate {
    return this.hold('sync', filter);
  }

  /** Holds every write (the positional write calls) to a matching file from now until released. */
  holdWrite(filter: FileFilter = () => true): Gate {
    return this.hold('write', filter);
  }

  /** Syncs blocked at a gate right now. */
  get syncsWaiting(): number {
    return this.waiting.sync;
  }

  /** Writes blocked at a gate right now. */
  get writesWaiting(): number {
    return this.waiting.write;
  }

  /** Resolves once at least `n` syncs are blocked at a gate at the same time. */
  whenSyncHeld(n = 1): Promise<void> {
    return this.when('sync', n);
  }

  /** Resolves once at least `n` writes are blocked at a gate at the same time. */
  whenWriteHeld(n = 1): Promise<void> {
    return this.when('write', n);
  }

  /** Releases every gate (for cleanup, so close() never waits on a forgotten hold). */
  releaseAll(): void {
    for (const kind of ['sync', 'write'] as const) for (const g of [...this.gates[kind]]) g.release();
  }

  override async sync(file: string): Promise<void> {
    await this.pass('sync', file);
    await super.sync(file);
    this.synced.push(file);
  }

  protected override async writeAt(fh: FileHandle, position: number, data: Uint8Array): Promise<void> {
    // writeAt does not know its file name; write holds use the handle's path when the filter needs one.
    await this.pass('write', pathOfHandle(this, fh));
    await super.writeAt(fh, position, data);
  }

  override async close(): Promise<void> {
    this.releaseAll();
    await super.close();
  }

  private hold(kind: Kind, filter: FileFilter): Gate {
    const gate = makeGate(filter, (g) => {
      const list = this.gates[kind];
      const i = list.indexOf(g);
      if (i !== -1) list.splice(i, 1);
    });
    this.gates[kind].push(gate);
    return gate;
  }

  private async pass(kind: Kind, file: string): Promise<void> {
    const holding = this.gates[kind].filter((g) => g.filter(file));
    if (holding.length === 0) return;
    for (const g of holding) g.caught++;
    this.waiting[kind]++;
    this.notify();
    try {
      await Promise.all(holding.map((g) => g.wait));
    } finally {
      this.waiting[kind]--;
    }
  }

  private when(kind: Kind, n: number): Promise<void> {
    if (this.waiting[kind] >= n) return Promise.resolve();
    return new Promise((resolve) => this.watchers.push({ kind, n, resolve }));
  }

  private notify(): void {
    for (let i = this.watchers.length - 1; i >= 0; i--) {
      const w = this.watchers[i]!;
      if (this.waiting[w.kind] >= w.n) {
        this.watchers.splice(i, 1);
        w.resolve();
      }
    }
  }
}

/**
 * The file a handle writes, relative to the store root, read from /proc (Linux) so write holds
 * can be filtered by file; '' where that is not available (a filter then sees '').
 */
function pathOfHandle(store: ChunkStore, fh: FileHandle): string {
  try {
    const target = readlinkSync(`/proc/self/fd/${fh.fd}`);
    return target.startsWith(store.root + '/') ? target.slice(store.root.length + 1) : target;
  } catch {
    return '';
  }
}

/** Silent bit rot: flips the byte at `position` of `file`, leaving its size and mtime as they were. */
export function flipByte(file: string, position: number): void {
  const before = statSync(file);
  const fd = openSync(file, 'r+');
  try {
    const one = Buffer.alloc(1);
    readSync(fd, one, 0, 1, position);
    one[0] = (one[0] ?? 0) ^ 0xff;
    writeSync(fd, one, 0, 1, position);
  } finally {
    closeSync(fd);
  }
  utimesSync(file, before.atime, before.mtime);
}
