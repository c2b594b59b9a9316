#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander';
import { pino } from 'pino';
import { MediaCache, DEFAULTS, type EntryStatus } from './cache.js';
import { startServer, DEFAULT_HOST, DEFAULT_PORT } from './server/http-server.js';
import { MediaCacheError } from './errors.js';
import { formatBytes, parseSize } from './units.js';

/** Exit codes, documented in the README. */
const EXIT = { OK: 0, FAILURE: 1, USAGE: 2, UNREACHABLE: 3, NOT_FOUND: 4 } as const;

class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

const positiveInt = (name: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer.`);
  return n;
};
const port = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('port must be 0-65535.');
  return n;
};
const size = (value: string): number => {
  const n = parseSize(value);
  if (n === undefined || n < 1) throw new InvalidArgumentError('expected a size such as 1048576, 10MiB or 4MB.');
  return n;
};

const program = new Command()
  .name('mediacache')
  .description('A caching streaming proxy for media: play and seek remote files as if they were local.')
  .showHelpAfterError('(run with --help for usage)')
  .configureOutput({ outputError: (text, write) => write(text) });

program
  .command('serve')
  .description('run the proxy (stops cleanly on Ctrl-C / SIGTERM)')
  .addOption(new Option('--host <host>', 'address to bind').env('MEDIACACHE_HOST').default(DEFAULT_HOST))
  .addOption(new Option('--port <port>', 'port to listen on (0 = any free)').env('MEDIACACHE_PORT').argParser(port).default(DEFAULT_PORT))
  .addOption(new Option('--data-dir <dir>', 'database and cached files').env('MEDIACACHE_DATA_DIR').default(DEFAULTS.dataDir))
  .addOption(new Option('--chunk-size <bytes>', 'download unit for new entries (e.g. 10MiB)').env('MEDIACACHE_CHUNK_SIZE').argParser(size).default(DEFAULTS.chunkSize, '10MiB'))
  .addOption(new Option('--max-concurrent-downloads <n>', 'upstream transfers at once').env('MEDIACACHE_MAX_CONCURRENT_DOWNLOADS').argParser(positiveInt('max-concurrent-downloads')).default(DEFAULTS.maxConcurrentDownloads))
  .addOption(new Option('--lookahead-chunks <n>', 'chunks fetched ahead of a reader at HIGH priority').env('MEDIACACHE_LOOKAHEAD_CHUNKS').argParser(positiveInt('lookahead-chunks')).default(DEFAULTS.lookaheadChunks))
  .addOption(new Option('--wait-timeout-s <s>', 'how long a read waits for missing bytes').env('MEDIACACHE_WAIT_TIMEOUT_S').argParser(positiveInt('wait-timeout-s')).default(DEFAULTS.waitTimeoutMs / 1000))
  .addOption(new Option('--no-background-fill', 'do not fetch the rest of an opened file in the background'))
  .addOption(new Option('--log-level <level>', 'fatal, error, warn, info, debug').env('MEDIACACHE_LOG_LEVEL').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
  .action(serve);

program
  .command('add')
  .description('register a URL with a running server and print its stream URL')
  .argument('<url>', 'http(s) URL of the media file')
  .option('--source-id <id>', 'media server id (with --media-id: a cache key that survives token rotation)')
  .option('--media-id <id>', 'item id on that server')
  .option('--quality <q>', 'quality or version of the item')
  .option('--json', 'print the entry as JSON')
  .addOption(serverOption())
  .action(add);

program
  .command('status')
  .description('show one entry, or all entries, of a running server')
  .argument('[id]', 'entry id')
  .option('--json', 'print JSON')
  .addOption(serverOption())
  .action(status);

function serverOption(): Option {
  return new Option('--server <url>', 'URL of the running mediacache server')
    .env('MEDIACACHE_SERVER')
    .default(`http://${DEFAULT_HOST}:${DEFAULT_PORT}`);
}

interface ServeOptions {
  host: string;
  port: number;
  dataDir: string;
  chunkSize: number;
  maxConcurrentDownloads: number;
  lookaheadChunks: number;
  waitTimeoutS: number;
  backgroundFill: boolean;
  logLevel: string;
}

async function serve(opts: ServeOptions): Promise<void> {
  const logger = pino({ level: opts.logLevel, base: undefined }, pino.destination(2));
  const cache = await MediaCache.open({
    dataDir: opts.dataDir,
    chunkSize: opts.chunkSize,
    maxConcurrentDownloads: opts.maxConcurrentDownloads,
    lookaheadChunks: opts.lookaheadChunks,
    waitTimeoutMs: opts.waitTimeoutS * 1000,
    backgroundFill: opts.backgroundFill,
  });
  cache.on('state-changed', ({ entryId, state }) => logger.info({ entryId, state }, 'entry state'));
  let server;
  try {
    server = await startServer(cache, { host: opts.host, port: opts.port, logger });
  } catch (err) {
    await cache.close();
    throw new CliError(`cannot listen on ${opts.host}:${opts.port}: ${(err as Error).message}`, EXIT.FAILURE);
  }
  process.stdout.write(`mediacache listening on ${server.url} (data dir ${cache.dataDir})\n`);

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      process.stderr.write('forced exit\n');
      process.exit(EXIT.FAILURE);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    void (async () => {
      await server.close();
      await cache.close();
      process.stdout.write('mediacache stopped\n');
      process.exit(EXIT.OK);
    })();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

async function api(server: string, path: string, init: RequestInit = {}): Promise<{ status: number; body: unknown }> {
  let res: Response;
  try {
    res = await fetch(new URL(path, server), init);
  } catch (err) {
    throw new CliError(`cannot reach the mediacache server at ${server} (is 'mediacache serve' running?)`, EXIT.UNREACHABLE);
  }
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text for the message
  }
  if (res.status >= 400) {
    const message = (body as { error?: { message?: string } }).error?.message ?? `HTTP ${res.status}`;
    throw new CliError(message, res.status === 404 ? EXIT.NOT_FOUND : EXIT.FAILURE);
  }
  return { status: res.status, body };
}

async function add(url: string, opts: { sourceId?: string; mediaId?: string; quality?: string; json?: boolean; server: string }): Promise<void> {
  const { body } = await api(opts.server, '/api/entries', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ url, sourceId: opts.sourceId, mediaId: opts.mediaId, quality: opts.quality }),
  });
  const entry = body as EntryStatus & { streamUrl: string };
  process.stdout.write(opts.json ? `${JSON.stringify(entry, null, 2)}\n` : `${entry.streamUrl}\n`);
}

async function status(id: string | undefined, opts: { json?: boolean; server: string }): Promise<void> {
  if (id !== undefined) {
    const { body } = await api(opts.server, `/api/entries/${encodeURIComponent(id)}`);
    const entry = body as EntryStatus;
    process.stdout.write(opts.json ? `${JSON.stringify(entry, null, 2)}\n` : describe(entry));
    return;
  }
  const { body } = await api(opts.server, '/api/entries');
  const entries = (body as { entries: EntryStatus[] }).entries;
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
    return;
  }
  if (entries.length === 0) process.stdout.write('no entries\n');
  for (const e of entries) {
    process.stdout.write(`${e.id}  ${e.state.padEnd(12)} ${percent(e).padStart(6)}  ${e.url}\n`);
  }
}

function percent(e: EntryStatus): string {
  return e.totalBytes ? `${((100 * e.downloadedBytes) / e.totalBytes).toFixed(1)}%` : e.totalBytes === 0 ? '100.0%' : '?';
}

/** One entry, with its chunk map as a text bar: █ stored, ░ missing. */
function describe(e: EntryStatus): string {
  const lines = [
    `id:         ${e.id}`,
    `url:        ${e.url}`,
    `state:      ${e.state}`,
    `size:       ${e.totalBytes === null ? 'unknown' : formatBytes(e.totalBytes)}`,
    `cached:     ${formatBytes(e.downloadedBytes)} (${percent(e)})`,
    `pending:    ${e.pendingChunks} chunk(s)`,
  ];
  if (e.error) lines.push(`error:      ${e.error}`);
  if (e.totalBytes) lines.push(`chunk map:  [${chunkBar(e, 60)}]`);
  return `${lines.join('\n')}\n`;
}

function chunkBar(e: EntryStatus, width: number): string {
  const total = e.totalBytes ?? 0;
  let bar = '';
  for (let i = 0; i < width; i++) {
    const from = Math.floor((i * total) / width);
    const to = Math.max(from, Math.floor(((i + 1) * total) / width) - 1);
    const covered = e.chunks.some(([s, end]) => s <= from && end >= to);
    bar += covered ? '█' : '░';
  }
  return bar;
}

program.parseAsync().catch((err: unknown) => {
  if (err instanceof CliError) {
    process.stderr.write(`mediacache: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  if (err instanceof MediaCacheError) {
    process.stderr.write(`mediacache: ${err.message}\n`);
    process.exit(EXIT.FAILURE);
  }
  process.stderr.write(`mediacache: unexpected error: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(EXIT.FAILURE);
});
