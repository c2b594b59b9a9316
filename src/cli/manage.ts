import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidArgumentError, type Command } from 'commander';
import cliProgress from 'cli-progress';
import type { EntryStatus, VerifyReport } from '../cache.js';
import type { GcReport } from '../store/evictor.js';
import { ENTRY_ID } from '../server/api-routes.js';
import { formatBytes, parseSize } from '../units.js';
import { CliError, EXIT, api, entryPages, jsonOption, postJson, printJson, printJsonArray, serverOption } from './client.js';
import { configOption } from './config.js';
import { mergeEntries, serverList, sumStats, type NodeEntry, type NodeStats } from './merge.js';
import { describeLimit, describeUpstream } from './bandwidth-format.js';
import { columnWidths, formatDuration, formatRows, percent, pinText, shortTime } from './format.js';

const POLL_MS = 250;

export const sizeArg = (value: string): number => {
  const n = parseSize(value);
  if (n === undefined || n < 1) throw new InvalidArgumentError('expected a size such as 1048576, 64MiB or 50GB.');
  return n;
};

const entryPath = (id: string, action = ''): string => `/api/entries/${encodeURIComponent(id)}${action && `/${action}`}`;

/** ls, prefetch, pin, unpin, rm, verify, gc, stats: all talk to a running server. */
export function registerManageCommands(program: Command): void {
  program
    .command('ls')
    .description('list entries: id, state, size, cached %, pinned, last access, URL (credentials redacted)')
    .addOption(jsonOption())
    .addOption(serverOption().argParser(serverList))
    .addOption(configOption())
    .action(ls);

  program
    .command('prefetch')
    .description('download a whole entry for offline use, with a progress bar; Ctrl-C pauses (re-run to resume)')
    .argument('<url-or-id>', 'an entry id, or a URL (registered first)')
    .option('--pin', 'pin the entry: never evicted')
    .option('--pin-head <size>', 'pin only the first SIZE bytes (and the tail chunk), e.g. 64MB', sizeArg)
    .addOption(jsonOption())
    .addOption(serverOption())
    .addOption(configOption())
    .action(prefetch);

  program
    .command('pin')
    .description('protect an entry from eviction (all of it, or with --head its first bytes and tail chunk)')
    .argument('<id>', 'entry id')
    .option('--head <size>', 'keep only the first SIZE bytes and the tail chunk, e.g. 64MB', sizeArg)
    .addOption(jsonOption())
    .addOption(serverOption())
    .addOption(configOption())
    .action(pin);

  program
    .command('unpin')
    .description('let an entry be evicted again')
    .argument('<id>', 'entry id')
    .addOption(jsonOption())
    .addOption(serverOption())
    .addOption(configOption())
    .action(unpin);

  program
    .command('rm')
    .description('remove an entry and its cached bytes')
    .argument('<id>', 'entry id')
    .addOption(serverOption())
    .addOption(configOption())
    .action(rm);

  program
    .command('verify')
    .description('re-read cached bytes against their checksums (one entry, or all); damaged chunks are dropped')
    .argument('[id]', 'entry id (default: every entry)')
    .addOption(jsonOption())
    .addOption(serverOption())
    .addOption(configOption())
    .action(verify);

  program
    .command('gc')
    .description('run the cleanup worker now: evict down to the limits and print what was freed')
    .addOption(jsonOption())
    .addOption(serverOption())
    .addOption(configOption())
    .action(gc);

  program
    .command('stats')
    .description('persisted totals (hits, misses, bytes from cache and upstream, evictions) and disk usage')
    .addOption(jsonOption())
    .addOption(serverOption().argParser(serverList))
    .addOption(configOption())
    .action(stats);
}

interface ClientOpts {
  server: string;
  json?: boolean;
}

/** `--server URL[,URL…]`: a list once parsed (a config file or the default give one string). */
type ServersOpts = Omit<ClientOpts, 'server'> & { server: string | string[] };
const serversOf = (opts: ServersOpts): string[] => (Array.isArray(opts.server) ? opts.server : serverList(opts.server));

/** One row of `ls`: the same columns for one server or several, `sixth` being LAST ACCESS or NODE. */
function entryCells(e: EntryStatus, sixth: string): string[] {
  return [e.id, e.state, e.totalBytes === null ? '?' : formatBytes(e.totalBytes), percent(e), pinText(e), sixth, e.url];
}

/** Streams the table page by page: column widths come from the first page (later cells may push). */
async function ls(many: ServersOpts): Promise<void> {
  const servers = serversOf(many);
  if (servers.length > 1) return lsNodes(servers, many.json === true);
  const opts = { ...many, server: servers[0] ?? '' };
  if (opts.json) return printJsonArray(entryPages(opts.server));
  const header = ['ID', 'STATE', 'SIZE', 'CACHED', 'PINNED', 'LAST ACCESS', 'URL'];
  let widths: number[] | undefined;
  for await (const entries of entryPages(opts.server)) {
    const rows = entries.map((e) => entryCells(e, shortTime(e.lastAccessed)));
    if (!widths) {
      if (rows.length === 0) {
        process.stdout.write('no entries\n');
        return;
      }
      widths = columnWidths([header, ...rows], [22, 12]);
      process.stdout.write(formatRows([header], widths));
    }
    process.stdout.write(formatRows(rows, widths));
  }
}

async function pin(id: string, opts: ClientOpts & { head?: number }): Promise<void> {
  const { body } = await api(opts.server, entryPath(id, 'pin'), postJson(opts.head === undefined ? {} : { headBytes: opts.head }));
  const e = body as EntryStatus;
  if (opts.json) return printJson(e);
  process.stdout.write(`pinned ${e.id}${e.pinHeadBytes === null ? '' : ` (head ${formatBytes(e.pinHeadBytes)} and tail chunk)`}\n`);
}

async function unpin(id: string, opts: ClientOpts): Promise<void> {
  const { body } = await api(opts.server, entryPath(id, 'pin'), { method: 'DELETE' });
  if (opts.json) return printJson(body);
  process.stdout.write(`unpinned ${(body as EntryStatus).id}\n`);
}

async function rm(id: string, opts: ClientOpts): Promise<void> {
  await api(opts.server, entryPath(id), { method: 'DELETE' });
  process.stdout.write(`removed ${id}\n`);
}

/** One request per entry: a whole large cache in one reply could outlast the client's timeout. */
async function verify(id: string | undefined, opts: ClientOpts): Promise<void> {
  const ids: string[] = [];
  if (id !== undefined) ids.push(id);
  else for await (const page of entryPages(opts.server)) for (const e of page) ids.push(e.id);
  const r: VerifyReport = { entries: 0, chunks: 0, bytes: 0, damaged: [] };
  for (const entryId of ids) {
    const one = await api(opts.server, entryPath(entryId, 'verify'), { method: 'POST' }).then(
      ({ body }) => body as VerifyReport,
      (err: unknown) => {
        // Removed since the listing: nothing left to verify. A named entry that is missing is an error.
        if (id === undefined && err instanceof CliError && err.exitCode === EXIT.NOT_FOUND) return undefined;
        throw err;
      },
    );
    if (!one) continue;
    r.entries += one.entries;
    r.chunks += one.chunks;
    r.bytes += one.bytes;
    r.damaged.push(...one.damaged);
  }
  if (opts.json) return printJson(r);
  const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;
  const lines = [`verified ${plural(r.chunks, 'chunk', 'chunks')} (${formatBytes(r.bytes)}) of ${plural(r.entries, 'entry', 'entries')}`];
  for (const d of r.damaged) lines.push(`damaged: ${d.id} bytes ${d.start}-${d.end} (dropped)`);
  if (r.damaged.length > 0) {
    lines.push(`${r.damaged.length} damaged chunks dropped: they are downloaded again when played (prefetch restores an offline copy)`);
  }
  process.stdout.write(lines.join('\n') + '\n');
}

async function gc(opts: ClientOpts): Promise<void> {
  const { body } = await api(opts.server, '/api/gc', { method: 'POST' });
  const r = body as GcReport;
  if (opts.json) return printJson(r);
  process.stdout.write(
    `freed ${formatBytes(r.freedBytes)} (${r.evictedEntries} entries, ${r.evictedRanges} ranges, ${r.removedFiles} stray files)\n` +
      `using ${formatBytes(r.usedBytes)} of ${formatBytes(r.limits.maxSize)}; ${formatBytes(r.freeBytes)} free on disk (keeping ${formatBytes(r.limits.minFree)})\n`,
  );
}

/** Several nodes: every node's entries, one line per id (the copy with the most bytes), with its node. */
async function lsNodes(servers: string[], json: boolean): Promise<void> {
  const lists: Array<{ node: string; entries: EntryStatus[] }> = [];
  for (const node of servers) {
    const entries: EntryStatus[] = [];
    for await (const page of entryPages(node)) entries.push(...page);
    lists.push({ node, entries });
  }
  const merged: NodeEntry[] = mergeEntries(lists);
  if (json) return printJson(merged);
  if (merged.length === 0) return void process.stdout.write('no entries\n');
  const header = ['ID', 'STATE', 'SIZE', 'CACHED', 'PINNED', 'NODE', 'URL'];
  const rows = merged.map((e) => entryCells(e, e.node));
  const widths = columnWidths([header, ...rows], [22, 12]);
  process.stdout.write(formatRows([header, ...rows], widths));
}

async function stats(many: ServersOpts): Promise<void> {
  const servers = serversOf(many);
  const answers: NodeStats[] = [];
  for (const server of servers) answers.push((await api(server, '/api/stats')).body as NodeStats);
  const nodes = answers.map((a, i) => ({ server: servers[i] ?? '', ...a }));
  const single = answers.length === 1 ? answers[0] : undefined;
  const s: NodeStats = single ?? sumStats(answers);
  // One node: its answer as it is; several: the sums, and each node's answer with its URL.
  if (many.json) return printJson(single ?? { ...s, nodes });
  const t = s.totals;
  const reads = t.hits + t.misses;
  const lines = [
    ...(nodes.length > 1 ? [`nodes:               ${nodes.length}`] : []),
    `entries:             ${s.entries}`,
    `hits:                ${t.hits}`,
    `misses:              ${t.misses}`,
    `hit ratio:           ${reads === 0 ? '-' : `${((100 * t.hits) / reads).toFixed(1)}%`}`,
    `served from cache:   ${formatBytes(t.bytesFromCache)}`,
    `fetched upstream:    ${formatBytes(t.bytesFromUpstream)}`,
    `evictions:           ${t.evictions} (${formatBytes(t.evictedBytes)})`,
    `disk used:           ${formatBytes(s.disk.usedBytes)} of ${formatBytes(s.disk.limits.maxSize)}`,
    `disk free:           ${formatBytes(s.disk.freeBytes)} (keeping ${formatBytes(s.disk.limits.minFree)})`,
    ...(s.bandwidth
      ? [
          `limit (background):  ${describeLimit(s.bandwidth.limitRate)}`,
          `limit (all):         ${describeLimit(s.bandwidth.limitRateAll)}`,
          `upstream now:        ${describeUpstream(s.bandwidth)}`,
        ]
      : []),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

/**
 * Registers (for a URL), pins if asked, queues the pre-cache, and follows it until Complete.
 * Ctrl-C pauses the pre-cache on the server (stored chunks are kept) and exits 130.
 */
async function prefetch(target: string, opts: ClientOpts & { pin?: boolean; pinHead?: number }): Promise<void> {
  let id = target;
  if (!ENTRY_ID.test(target)) {
    if (!URL.canParse(target)) throw new CliError(`not an entry id or a URL: ${target}`, EXIT.USAGE);
    const { body } = await api(opts.server, '/api/entries', postJson({ url: target }));
    id = (body as EntryStatus).id;
  }
  if (opts.pin || opts.pinHead !== undefined) {
    await api(opts.server, entryPath(id, 'pin'), postJson(opts.pinHead === undefined ? {} : { headBytes: opts.pinHead }));
  }
  await api(opts.server, entryPath(id, 'prefetch'), { method: 'POST' });

  const bar = process.stderr.isTTY && !opts.json ? newBar() : undefined;
  let interrupted = false;
  const wake = new AbortController();
  const onSigint = (): void => {
    interrupted = true;
    wake.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    let started = false;
    for (;;) {
      const { body } = await api(opts.server, entryPath(id));
      const e = body as EntryStatus;
      if (interrupted) break;
      if (bar && e.totalBytes !== null) {
        const payload = {
          done: formatBytes(e.downloadedBytes),
          size: formatBytes(e.totalBytes),
          speed: `${formatBytes(e.progress.bytesPerSecond)}/s`,
          eta: e.progress.etaSeconds === null ? '?' : formatDuration(e.progress.etaSeconds),
        };
        if (!started) bar.start(e.totalBytes, e.downloadedBytes, payload);
        else bar.update(e.downloadedBytes, payload);
        started = true;
      }
      if (e.state === 'Complete') {
        bar?.stop();
        if (opts.json) return printJson(e);
        process.stdout.write(`complete: ${e.id} (${e.totalBytes === null ? '?' : formatBytes(e.totalBytes)})\n`);
        return;
      }
      if (e.state === 'Failed') {
        bar?.stop();
        throw new CliError(`download failed: ${e.error ?? 'unknown error'} (re-run to retry)`, EXIT.FAILURE);
      }
      if (e.state === 'Paused' || e.state === 'NotStarted') {
        // Paused elsewhere (another Ctrl-C, a pause over the API): nothing will arrive.
        bar?.stop();
        throw new CliError(`the pre-cache of ${e.id} was paused at ${percent(e)} (re-run to resume)`, EXIT.FAILURE);
      }
      await sleep(POLL_MS, undefined, { signal: wake.signal }).catch(() => undefined);
    }
    bar?.stop();
    const { body } = await api(opts.server, entryPath(id, 'prefetch'), { method: 'DELETE' });
    const e = body as EntryStatus;
    if (opts.json) printJson(e);
    else process.stdout.write(`paused: ${e.id} at ${percent(e)} (re-run to resume)\n`);
    throw new CliError('interrupted', EXIT.INTERRUPTED);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

function newBar(): cliProgress.SingleBar {
  return new cliProgress.SingleBar(
    {
      format: '{bar} {percentage}% | {done} / {size} | {speed} | ETA {eta}',
      hideCursor: true,
      stream: process.stderr,
    },
    cliProgress.Presets.shades_classic,
  );
}
