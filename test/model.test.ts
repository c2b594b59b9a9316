/**
 * Model-based test of the download core over a real local upstream and a real data dir.
 *
 * fast-check generates sequences of: open a reader at a position (an HTTP GET with Range through
 * the proxy, or `cache.openReader` in-process), read N bytes, seek, close, the upstream file swapped
 * (new bytes, new ETag, sometimes a new size), bit rot in a stored row followed by `verify`, `gc`
 * under a small max size, entry removed (and added again), restart on the same data dir, settle.
 *
 * The model keeps every upstream version of every file. After every step:
 * - every byte a reader got is, for the whole response, a slice of ONE upstream version, no older
 *   than the one the cache knew when the read was sent and no newer than the one current when its
 *   response began (headers / ensureSize); never a mix. A response may be cut only when the cache
 *   could have learnt of a newer version, or the entry was removed, or the cache restarted;
 * - no demand handle remains for readers that are closed; readers waiting ≤ readers open;
 * - transfers and slots ≤ maxConcurrentDownloads; upstream responses running ≤ the limit and,
 *   at some moment within a short poll, equal to `inspect().slotsUsed`;
 * - open files ≤ 16 + open readers + transfers.
 * At settle points (no reader waits, nothing downloads): no waiters, no slots, no upstream
 * response, no demand for entries without open readers, no files beyond current versions and
 * open readers, and every stored row's bytes equal the version its entry says it holds.
 *
 * Replay a failure: MODEL_SEED=<seed> [MODEL_PATH=<path>] node --import tsx --test test/model.test.ts
 * (the seeds are printed as test diagnostics and in fast-check's failure report).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { seedRuns } from './helpers/seeds.js';
import { Agent, request } from 'undici';
import type { MediaCache } from '../src/cache.js';
import { makeData, startUpstream, type Upstream } from './helpers/upstream.js';
import { flipByte } from './helpers/seams.js';
import { startProxy, tempDir, type Proxy } from './helpers/harness.js';

const CHUNK = 16 * 1024;
/** The proxy cuts a reader that waited this long for bytes: a stall shows up as an unexplained cut. */
const WAIT_TIMEOUT_MS = 2_000;
/** Longer than any legitimate wait: a pull that takes this long is a stall the proxy did not cut. */
const PULL_TIMEOUT_MS = WAIT_TIMEOUT_MS + 4_000;
const SETTLE_TIMEOUT_MS = WAIT_TIMEOUT_MS + 3_000;
const MAX_OPEN_READERS = 4;
const IDLE_FILES = 16;

interface Config {
  /** Chunks (and extra bytes) of each entry's first version. */
  files: Array<{ chunks: number; extra: number }>;
  backgroundFill: boolean;
  maxConcurrentDownloads: number;
  bytesPerSecond: number | undefined;
}

interface EntryModel {
  path: string;
  /** Every version the upstream has served, oldest first; `etags[k]` is version k's ETag. */
  versions: Buffer[];
  etags: string[];
  /** Index of the version the upstream serves now. */
  current: number;
  id: string;
  /** Ids this entry had before removals. */
  oldIds: string[];
  removals: number;
}

type ReaderState = 'open' | 'ended' | 'cut' | 'closed';

interface ReaderModel {
  n: number;
  kind: 'http' | 'direct';
  entry: number;
  id: string;
  pos: number;
  /** Oldest version allowed: the one the cache knew when the read was sent. */
  lo: number;
  /** Newest version allowed: the one current when the response began. */
  hi: number;
  /** Versions still consistent with every byte received. */
  candidates: number[];
  got: Buffer[];
  gotLength: number;
  removalsAtSend: number;
  restartsAtSend: number;
  state: ReaderState;
  pull: () => Promise<Buffer | null>;
  release: () => Promise<void>;
}

class ModelFailure extends Error {}

let runCounter = 0;
let totalSteps = 0;

class World {
  upstream!: Upstream;
  proxy!: Proxy;
  readonly dataDir = tempDir('mediacache-model-');
  readonly agent = new Agent({ connections: 32 });
  readonly entries: EntryModel[] = [];
  readonly readers: ReaderModel[] = [];
  readonly trace: string[] = [];
  readonly run = ++runCounter;
  restarts = 0;
  /** HTTP readers closed or cut since the last settle: the proxy notices their sockets later. */
  httpGoneSinceSettle: ReaderModel[] = [];
  private readerCount = 0;

  constructor(readonly config: Config) {}

  get cache(): MediaCache {
    return this.proxy.cache;
  }

  async start(): Promise<void> {
    this.upstream = await startUpstream({ bytesPerSecond: this.config.bytesPerSecond });
    await this.openProxy();
    for (const [i, f] of this.config.files.entries()) {
      const e: EntryModel = { path: `/r${this.run}/e${i}.mp4`, versions: [], etags: [], current: -1, id: '', oldIds: [], removals: 0 };
      this.entries.push(e);
      this.publish(e, f.chunks * CHUNK + f.extra);
      e.id = (await this.proxy.add(this.upstream.url(e.path))).id;
    }
  }

  private async openProxy(): Promise<void> {
    this.proxy = await startProxy({
      dataDir: this.dataDir,
      chunkSize: CHUNK,
      maxConcurrentDownloads: this.config.maxConcurrentDownloads,
      backgroundFill: this.config.backgroundFill,
      lookaheadChunks: 2,
      waitTimeoutMs: WAIT_TIMEOUT_MS,
      retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 50 },
      maxSize: 1e12,
      minFree: 0,
      cleanupIntervalMs: 3_600_000,
    });
  }

  /** A new upstream version of the entry's file, with its own ETag. */
  publish(e: EntryModel, size: number): void {
    const k = e.versions.length;
    const data = makeData(size, this.run * 1000 + this.entries.indexOf(e) * 50 + k + 1);
    const etag = `"r${this.run}-e${this.entries.indexOf(e)}-v${k}"`;
    e.versions.push(data);
    e.etags.push(etag);
    e.current = k;
    this.upstream.setFile(e.path, data, { etag });
  }

  note(line: string): void {
    this.trace.push(`${totalSteps}: ${line}`);
  }

  fail(message: string): never {
    const details = [
      message,
      `config: ${JSON.stringify(this.config)}`,
      `entries: ${this.entries.map((e, i) => `e${i}=${e.id} v${e.current} sizes [${e.versions.map((v) => v.length).join(', ')}]`).join('; ')}`,
      'trace (last 60):',
      ...this.trace.slice(-60),
    ].join('\n');
    throw new ModelFailure(details);
  }

  openReaders(): ReaderModel[] {
    return this.readers.filter((r) => r.state === 'open');
  }

  /** Version index the cache says the entry holds, or -1 when it does not know yet. */
  knownVersion(e: EntryModel): number {
    const etag = this.cache.inspect(e.id).entry?.etag ?? null;
    if (etag === null) return -1;
    const v = e.etags.indexOf(etag);
    if (v === -1) this.fail(`entry ${e.id} holds ETag ${etag}, which the upstream never served for it`);
    return v;
  }

  // ---- readers ------------------------------------------------------------------------------

  async openReader(entryIndex: number, at: number, http: boolean): Promise<ReaderModel> {
    const e = this.entries[entryIndex] as EntryModel;
    const known = this.knownVersion(e);
    const lo = known === -1 ? e.current : known;
    const size = (e.versions[lo] as Buffer).length;
    const pos = at % size;
    const r: ReaderModel = {
      n: ++this.readerCount,
      kind: http ? 'http' : 'direct',
      entry: entryIndex,
      id: e.id,
      pos,
      lo,
      hi: e.current,
      candidates: [],
      got: [],
      gotLength: 0,
      removalsAtSend: e.removals,
      restartsAtSend: this.restarts,
      state: 'open',
      pull: async () => null,
      release: async () => undefined,
    };
    this.readers.push(r);
    this.note(`open #${r.n} ${r.kind} e${entryIndex} (${e.id}) at ${pos}, versions ${lo}..${e.current}`);
    try {
      if (http) await this.openHttp(r, e);
      else await this.openDirect(r, e);
    } catch (err) {
      if (err instanceof ModelFailure) throw err;
      await this.cut(r, `open failed: ${String(err)}`);
    }
    return r;
  }

  /** Fixes the versions a response may hold once it began and its size is known. */
  private began(r: ReaderModel, e: EntryModel, total: number): void {
    r.hi = e.current;
    for (let v = r.lo; v <= r.hi; v++) if ((e.versions[v] as Buffer).length === total) r.candidates.push(v);
    if (r.candidates.length === 0) {
      this.fail(`reader #${r.n}: its response is ${total} bytes long, the size of no version in ${r.lo}..${r.hi}`);
    }
  }

  private async openHttp(r: ReaderModel, e: EntryModel): Promise<void> {
    const res = await request(`${this.proxy.server.url}/stream/${r.id}`, {
      dispatcher: this.agent,
      headers: { range: `bytes=${r.pos}-` },
      headersTimeout: PULL_TIMEOUT_MS,
      bodyTimeout: 0,
    });
    if (res.statusCode === 416) {
      res.body.resume();
      const total = Number(/\*\/(\d+)/.exec(String(res.headers['content-range']))?.[1]);
      this.began(r, e, total);
      if (r.pos < total) this.fail(`reader #${r.n}: 416 for ${r.pos}, inside ${total} bytes`);
      r.state = 'ended';
      return;
    }
    if (res.statusCode !== 206) {
      const body = await res.body.text().catch(() => '');
      await this.cut(r, `status ${res.statusCode} ${body.slice(0, 200)}`);
      return;
    }
    const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(String(res.headers['content-range']));
    if (!range || Number(range[1]) !== r.pos) this.fail(`reader #${r.n}: Content-Range ${String(res.headers['content-range'])}`);
    this.began(r, e, Number(range[3]));
    res.body.on('error', () => undefined); // a cut surfaces through iteration; destroy() must not throw
    const it = (res.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    r.pull = async () => {
      const next = await it.next();
      return next.done ? null : next.value;
    };
    r.release = async () => {
      res.body.destroy();
    };
  }

  private async openDirect(r: ReaderModel, e: EntryModel): Promise<void> {
    const controller = new AbortController();
    const reader = this.cache.openReader(r.id, controller.signal);
    let closed = false;
    let it: AsyncIterator<Buffer> | undefined;
    r.release = async () => {
      if (closed) return;
      closed = true;
      await it?.return?.(undefined).catch(() => undefined);
      reader.close();
    };
    try {
      const got = (await reader.ensureSize(r.pos)) as { expectedTotalSize?: number | null } | undefined;
      const total = got?.expectedTotalSize ?? this.cache.getEntry(r.id)?.totalBytes ?? null;
      if (total === null) return this.fail(`reader #${r.n}: ensureSize resolved with the size unknown`);
      this.began(r, e, total);
      if (r.pos >= total) {
        r.state = 'ended';
        await r.release();
        return;
      }
      it = reader.read(r.pos, total - 1)[Symbol.asyncIterator]();
      const iterator = it;
      r.pull = async () => {
        const next = await iterator.next();
        return next.done ? null : Buffer.from(next.value); // the reader reuses its buffers
      };
    } catch (err) {
      await r.release().catch(() => undefined);
      throw err;
    }
  }

  /** Pulls until `bytes` more arrived, the response ended, or it was cut. */
  async read(r: ReaderModel, bytes: number): Promise<void> {
    if (r.state !== 'open') return;
    const e = this.entries[r.entry] as EntryModel;
    let got = 0;
    while (got < bytes && r.state === 'open') {
      let timer: NodeJS.Timeout | undefined;
      const stalled = new Promise<'stalled'>((resolve) => (timer = setTimeout(() => resolve('stalled'), PULL_TIMEOUT_MS)));
      let piece: Buffer | null | 'stalled';
      const started = performance.now();
      try {
        piece = await Promise.race([r.pull(), stalled]);
      } catch (err) {
        await this.cut(r, `${String(err)} after ${Math.round(performance.now() - started)} ms`);
        return;
      } finally {
        clearTimeout(timer);
      }
      if (piece === 'stalled') this.fail(`reader #${r.n}: no byte and no error for ${PULL_TIMEOUT_MS} ms at ${r.pos + r.gotLength}`);
      if (piece === null) {
        const size = (e.versions[r.candidates[0] as number] as Buffer).length;
        if (r.pos + r.gotLength !== size) this.fail(`reader #${r.n}: ended cleanly at ${r.pos + r.gotLength}, version size ${size}`);
        r.state = 'ended';
        this.note(`#${r.n} ended at ${size}, version(s) ${r.candidates.join('/')}`);
        await r.release();
        return;
      }
      this.accept(r, e, piece);
      got += piece.length;
    }
    this.note(`#${r.n} read to ${r.pos + r.gotLength}, version(s) ${r.candidates.join('/')}`);
  }

  /** Checks a received piece against the versions still possible for this response. */
  private accept(r: ReaderModel, e: EntryModel, piece: Buffer): void {
    const at = r.pos + r.gotLength;
    r.got.push(piece);
    r.gotLength += piece.length;
    const fits = (v: number): boolean => {
      const data = e.versions[v] as Buffer;
      return at + piece.length <= data.length && piece.equals(data.subarray(at, at + piece.length));
    };
    const left = r.candidates.filter(fits);
    if (left.length > 0) {
      r.candidates = left;
      return;
    }
    const all = Buffer.concat(r.got);
    const matched = e.versions.map((data, v) => {
      let n = 0;
      while (n < all.length && r.pos + n < data.length && all[n] === data[r.pos + n]) n++;
      return `v${v} matches its first ${n}`;
    });
    this.fail(
      `reader #${r.n} (${r.kind}, e${r.entry}, from ${r.pos}, allowed versions ${r.lo}..${r.hi} of size ${
        (e.versions[r.candidates[0] as number] as Buffer).length
      }): ${all.length} bytes received match no single version (${matched.join(', ')} bytes)`,
    );
  }

  /** A response ended early: fine only when the cache may have learnt of a change, or lost the entry. */
  private async cut(r: ReaderModel, why: string): Promise<void> {
    const e = this.entries[r.entry] as EntryModel;
    r.state = 'cut';
    if (r.kind === 'http') this.httpGoneSinceSettle.push(r);
    await r.release().catch(() => undefined);
    this.note(`#${r.n} cut at ${r.pos + r.gotLength}: ${why}`);
    const changed = r.lo < e.current || e.removals !== r.removalsAtSend || this.restarts !== r.restartsAtSend;
    if (!changed) {
      this.fail(
        `reader #${r.n} (${r.kind}, e${r.entry} from ${r.pos}) was cut at ${r.pos + r.gotLength} with no upstream change, removal or restart since it began: ${why}`,
      );
    }
  }

  async close(r: ReaderModel): Promise<void> {
    if (r.state === 'open' || r.state === 'ended') {
      if (r.kind === 'http') this.httpGoneSinceSettle.push(r);
      r.state = 'closed';
      await r.release();
      this.note(`close #${r.n}`);
    }
  }

  // ---- invariants ---------------------------------------------------------------------------

  /** Checked after every step. */
  async checkAlways(): Promise<void> {
    totalSteps++;
    const max = this.config.maxConcurrentDownloads;
    const s = this.cache.inspect();
    const open = this.openReaders();
    if (s.maxConcurrentDownloads !== max) this.fail(`inspect().maxConcurrentDownloads ${s.maxConcurrentDownloads}, configured ${max}`);
    // Transfers still receiving hold an upstream request; one asked to stop (pre-empted, cancelled)
    // or with all its bytes in may still be recording them.
    const running = s.transfers.filter((f) => f.stopping === null && f.received < f.end - f.start + 1);
    if (running.length > max) this.fail(`${running.length} transfers running, limit ${max}: ${JSON.stringify(s.transfers)}`);
    if (s.slotsUsed > max) this.fail(`slotsUsed ${s.slotsUsed}, limit ${max}`);
    if (s.openFiles > IDLE_FILES + open.length + s.transfers.length) {
      this.fail(`${s.openFiles} open files with ${open.length} readers and ${s.transfers.length} transfers`);
    }
    // Demand only for readers still open (HTTP readers that left may not have been noticed yet).
    for (const d of s.demand) {
      if (d.handles === 0) continue;
      const holders = [...open, ...this.httpGoneSinceSettle].filter((r) => r.id === d.entryId).length;
      if (d.handles > holders) {
        this.fail(
          `entry ${d.entryId} holds ${d.handles} demand handle(s) (chunks ${d.chunks.join(',')}) with ${holders} reader(s) that may hold one`,
        );
      }
    }
    if (s.waiters > open.length + this.httpGoneSinceSettle.length) this.fail(`${s.waiters} waiters, ${open.length} readers open`);
    await this.checkUpstreamSlots();
  }

  /**
   * Upstream responses running never stay above the limit, and match the scheduler's count once
   * the requests in transition (starting, or ending on the upstream's side) have settled.
   */
  private async checkUpstreamSlots(): Promise<void> {
    const max = this.config.maxConcurrentDownloads;
    const deadline = performance.now() + 2_000;
    let last = '';
    for (;;) {
      const active = this.upstream.activeResponses();
      const slots = this.cache.inspect().slotsUsed;
      if (active <= max && active === slots) return;
      last = `upstream responses ${active}, slotsUsed ${slots}, limit ${max}`;
      if (performance.now() > deadline) this.fail(`for 2 s: ${last}`);
      await sleep(2);
    }
  }

  /** Waits until nothing downloads and no read waits, then checks the quiet-point invariants. */
  async settle(): Promise<void> {
    const deadline = performance.now() + SETTLE_TIMEOUT_MS;
    let why = '';
    for (;;) {
      why = this.unsettled();
      if (why === '') break;
      if (performance.now() > deadline) this.fail(`not quiet after ${SETTLE_TIMEOUT_MS} ms: ${why}`);
      await sleep(5);
    }
    this.httpGoneSinceSettle = [];
    for (const e of this.entries) this.checkRows(e);
    this.note('settled');
  }

  private unsettled(): string {
    const s = this.cache.inspect();
    const active = this.upstream.activeResponses();
    if (s.transfers.length > 0 || s.slotsUsed > 0 || active > 0) {
      return `transfers ${JSON.stringify(s.transfers)}, slotsUsed ${s.slotsUsed}, upstream responses ${active}`;
    }
    if (s.waiters > 0) return `${s.waiters} reads waiting for bytes with nothing downloading`;
    const open = this.openReaders();
    for (const d of s.demand) {
      const readers = open.filter((r) => r.id === d.entryId).length;
      if (d.handles > readers) {
        return `entry ${d.entryId} keeps ${d.handles} demand handle(s) (chunks ${d.chunks.join(',')}) with ${readers} reader(s) open`;
      }
    }
    const dir = this.filesDir();
    if (dir !== undefined) {
      const files = readdirSync(dir).filter((f) => statSync(path.join(dir, f)).isFile());
      if (files.length > this.entries.length + open.length) {
        return `${files.length} files in ${dir} for ${this.entries.length} entries and ${open.length} open readers: ${files.join(' ')}`;
      }
    }
    return '';
  }

  private filesDir(): string | undefined {
    for (const e of this.entries) {
      const file = this.cache.inspect(e.id).entry?.filePath;
      if (file !== undefined) return path.dirname(file);
    }
    return undefined;
  }

  /** Every stored row holds exactly the bytes of the version its entry says it holds. */
  private checkRows(e: EntryModel): void {
    const snap = this.cache.inspect(e.id).entry;
    if (!snap) return this.fail(`entry ${e.id} is gone from inspect()`);
    if (snap.rows.length === 0) return;
    if (snap.etag === null) {
      this.fail(`entry ${e.id} has ${snap.rows.length} rows but no known version (ETag null): ${JSON.stringify(snap.rows)}`);
    }
    const v = this.knownVersion(e);
    const data = e.versions[v] as Buffer;
    if (snap.expectedTotalSize !== data.length) this.fail(`entry ${e.id} v${v}: size ${snap.expectedTotalSize}, upstream ${data.length}`);
    const file = readFileSync(snap.filePath);
    for (const row of snap.rows) {
      const bytes = file.subarray(row.start, row.end + 1);
      const where = `entry ${e.id} (e${this.entries.indexOf(e)}) row ${row.start}-${row.end} of v${v} in ${path.basename(snap.filePath)}`;
      if (bytes.length !== row.end - row.start + 1) this.fail(`${where}: the file ends at ${file.length}`);
      if (bytes.equals(data.subarray(row.start, row.end + 1))) continue;
      const other = e.versions.findIndex((d) => bytes.equals(d.subarray(row.start, row.end + 1)));
      const crcOk = crc32(bytes) === row.checksum;
      this.fail(
        `${where}: holds ${other === -1 ? 'bytes of no version' : `the bytes of v${other}`} (row checksum ${crcOk ? 'matches' : 'does not match'} the file)`,
      );
    }
  }

  // ---- world steps --------------------------------------------------------------------------

  async swap(entryIndex: number, resize: number): Promise<void> {
    const e = this.entries[entryIndex] as EntryModel;
    const old = (e.versions[e.current] as Buffer).length;
    const size = resize === 0 ? old : Math.max(CHUNK + 1, old + resize * 5000);
    this.publish(e, size);
    this.note(`swap e${entryIndex} → v${e.current} (${size} bytes)`);
  }

  async rot(entryIndex: number, rowPick: number, offsetPick: number): Promise<void> {
    const e = this.entries[entryIndex] as EntryModel;
    // The proxy may read an HTTP reader's bytes ahead of us at any time: rot elsewhere only.
    // In-process readers read only when pulled, and verify runs before the next pull.
    if (this.openReaders().some((r) => r.id === e.id && r.kind === 'http')) {
      this.note(`rot e${entryIndex}: skipped (HTTP reader open)`);
      return;
    }
    const snap = this.cache.inspect(e.id).entry;
    const row = snap && snap.rows.length > 0 ? snap.rows[rowPick % snap.rows.length] : undefined;
    let flipped = -1;
    if (snap && row) {
      flipped = row.start + (offsetPick % (row.end - row.start + 1));
      flipByte(snap.filePath, flipped); // silent: size and mtime unchanged
    }
    const report = await this.cache.verify(e.id);
    this.note(`rot e${entryIndex} at ${flipped}; verify damaged ${JSON.stringify(report.damaged)}`);
    for (const d of report.damaged) {
      if (d.id === e.id && d.start <= flipped && flipped <= d.end) continue;
      this.fail(`verify found damage that was not injected (bytes changed after their row was recorded): ${JSON.stringify(d)}`);
    }
    const after = this.cache.inspect(e.id).entry;
    if (snap && after && after.filePath === snap.filePath && flipped >= 0) {
      const file = readFileSync(after.filePath);
      for (const r of after.rows) {
        if (r.start <= flipped && flipped <= r.end && crc32(file.subarray(r.start, r.end + 1)) !== r.checksum) {
          this.fail(`verify kept the damaged row ${r.start}-${r.end} of entry ${e.id}`);
        }
      }
    }
  }

  async gc(maxChunks: number | null): Promise<void> {
    const maxSize = maxChunks === null ? 1e12 : maxChunks * CHUNK;
    this.cache.setLimits({ maxSize });
    const report = await this.cache.gc();
    this.note(`gc maxSize ${maxChunks === null ? 'unlimited' : `${maxChunks} chunks`}: ${JSON.stringify(report)}`);
  }

  async remove(entryIndex: number): Promise<void> {
    const e = this.entries[entryIndex] as EntryModel;
    e.removals++;
    const removed = await this.cache.removeEntry(e.id);
    if (!removed) this.fail(`removeEntry(${e.id}) found no entry`);
    e.oldIds.push(e.id);
    e.id = (await this.proxy.add(this.upstream.url(e.path))).id;
    this.note(`remove e${entryIndex}: ${e.oldIds.at(-1)} → new id ${e.id}`);
  }

  async restart(): Promise<void> {
    this.restarts++;
    // In-process readers belong to the cache being closed; HTTP readers are cut by the server.
    for (const r of this.openReaders()) if (r.kind === 'direct') await this.close(r);
    for (const r of this.openReaders()) this.httpGoneSinceSettle.push(r);
    await this.proxy.stop();
    await this.openProxy();
    this.note('restart');
  }

  async dispose(): Promise<void> {
    for (const r of this.readers) if (r.state === 'open') await r.release().catch(() => undefined);
    await this.agent.destroy().catch(() => undefined);
    await this.proxy?.stop().catch(() => undefined);
    await this.upstream?.close();
    if (existsSync(this.dataDir)) rmSync(this.dataDir, { recursive: true, force: true });
  }
}

// ---- commands -----------------------------------------------------------------------------------

type Cmd = fc.AsyncCommand<World, World>;

function command(label: string, step: (w: World) => Promise<void>): Cmd {
  return {
    check: () => true,
    async run(_m, w) {
      w.note(label);
      await step(w);
      await w.checkAlways();
    },
    toString: () => label,
  };
}

const pickReader = (w: World, k: number): ReaderModel | undefined => {
  const open = w.openReaders();
  return open.length === 0 ? undefined : open[k % open.length];
};

const commandArb: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ entry: fc.nat(2), at: fc.nat(200_000), http: fc.boolean() }).map(({ entry, at, http }) =>
      command(`open(e${entry}, ${at}, ${http ? 'http' : 'direct'})`, async (w) => {
        const e = entry % w.entries.length;
        const open = w.openReaders();
        if (open.length >= MAX_OPEN_READERS) await w.close(open[0] as ReaderModel);
        await w.openReader(e, at, http);
      }),
    ),
  },
  {
    weight: 6,
    arbitrary: fc.record({ reader: fc.nat(7), bytes: fc.constantFrom(1, 4096, CHUNK, 3 * CHUNK, Infinity) }).map(({ reader, bytes }) =>
      command(`read(reader ${reader}, ${bytes})`, async (w) => {
        const r = pickReader(w, reader);
        if (r) await w.read(r, bytes);
      }),
    ),
  },
  {
    weight: 2,
    arbitrary: fc.record({ reader: fc.nat(7), at: fc.nat(200_000) }).map(({ reader, at }) =>
      command(`seek(reader ${reader}, ${at})`, async (w) => {
        const r = pickReader(w, reader);
        if (!r) return;
        await w.close(r);
        await w.openReader(r.entry, at, r.kind === 'http');
      }),
    ),
  },
  {
    weight: 2,
    arbitrary: fc.nat(7).map((reader) =>
      command(`close(reader ${reader})`, async (w) => {
        const r = pickReader(w, reader);
        if (r) await w.close(r);
      }),
    ),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({ entry: fc.nat(2), resize: fc.integer({ min: -3, max: 3 }) })
      .map(({ entry, resize }) => command(`swap(e${entry}, ${resize})`, (w) => w.swap(entry % w.entries.length, resize))),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({ entry: fc.nat(2), row: fc.nat(20), offset: fc.nat(CHUNK - 1) })
      .map(({ entry, row, offset }) =>
        command(`rot+verify(e${entry}, row ${row}, +${offset})`, (w) => w.rot(entry % w.entries.length, row, offset)),
      ),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(16, 24, null).map((chunks) => command(`gc(${chunks ?? 'unlimited'})`, (w) => w.gc(chunks))),
  },
  { weight: 1, arbitrary: fc.nat(2).map((entry) => command(`remove(e${entry})`, (w) => w.remove(entry % w.entries.length))) },
  { weight: 1, arbitrary: fc.constant(command('restart', (w) => w.restart())) },
  { weight: 2, arbitrary: fc.constant(command('settle', (w) => w.settle())) },
);

const configArb: fc.Arbitrary<Config> = fc.record({
  files: fc.array(fc.record({ chunks: fc.integer({ min: 4, max: 10 }), extra: fc.nat(CHUNK - 1) }), { minLength: 2, maxLength: 3 }),
  backgroundFill: fc.boolean(),
  maxConcurrentDownloads: fc.integer({ min: 1, max: 3 }),
  bytesPerSecond: fc.constantFrom(undefined, 4 * 1024 * 1024),
});

const property = fc.asyncProperty(configArb, fc.commands([commandArb], { maxCommands: 60, size: 'max' }), async (config, cmds) => {
  const world = new World(config);
  // An error nobody handles would kill a real proxy: say at which step it happened.
  const onUncaught = (err: unknown): void => {
    console.error(
      `uncaught exception during the model run: ${err instanceof Error ? err.stack : String(err)}\ntrace:\n${world.trace.slice(-30).join('\n')}`,
    );
  };
  process.on('uncaughtException', onUncaught);
  try {
    await world.start();
    await fc.asyncModelRun(() => ({ model: world, real: world }), cmds);
    // The end of every sequence is a quiet point too, before and after the readers leave.
    await world.settle();
    for (const r of world.openReaders()) await world.close(r);
    await world.checkAlways();
    await world.settle();
  } finally {
    await world.dispose();
    process.off('uncaughtException', onUncaught);
  }
});

const envSeed = process.env.MODEL_SEED === undefined ? undefined : Number(process.env.MODEL_SEED);

test(
  'the core keeps its invariants over random reads, seeks, upstream swaps, bit rot, gc, removals and restarts',
  { timeout: 240_000 },
  async (t) => {
    const before = totalSteps;
    const runs = seedRuns('MODEL', 20240917, 30);
    for (const { seed, numRuns } of runs) {
      t.diagnostic(`model seed ${seed} (replay: MODEL_SEED=${seed} node --import tsx --test test/model.test.ts)`);
      console.log(`model seed ${seed}`);
      await fc.assert(property, {
        seed,
        numRuns,
        path: process.env.MODEL_PATH,
        endOnFailure: process.env.MODEL_SHRINK === undefined,
        includeErrorInReport: true,
        plugins: [fc.interruptAfterTimeLimit(Number(process.env.MODEL_TIME_LIMIT_MS ?? 150_000))],
      });
    }
    t.diagnostic(`${totalSteps - before} steps`);
    if (envSeed === undefined) assert.ok(totalSteps - before >= 300, `only ${totalSteps - before} steps ran`);
  },
);
