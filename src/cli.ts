#!/usr/bin/env -S node --max-semi-space-size=1
import { createRequire } from 'node:module';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { pino } from 'pino';
import type { BackgroundFill } from './policy/scheduling.js';
import { MediaCache, DEFAULTS, type CacheOptions, type EntryStatus } from './cache.js';
import { startServer, isLoopback, DEFAULT_HOST, DEFAULT_PORT } from './server/http-server.js';
import { ErrorCodes, MediaCacheError, isMediaCacheError } from './errors.js';
import { moveDatabaseAside } from './cli/reset-db.js';
import { parseBitrate, parseSize } from './units.js';
import { parseRateSchedule } from './policy/rate-limit.js';
import { startActivityLog } from './stats/activity-log.js';
import { dashboardUrl, registerDashboardCommand } from './cli/dashboard.js';
import { CliError, EXIT, api, entryPages, jsonOption, printJson, printJsonArray, serverOption } from './cli/client.js';
import { applyConfigFile, configOption } from './cli/config.js';
import { describe, percent } from './cli/format.js';
import { bandwidthLine } from './cli/bandwidth-format.js';
import type { BandwidthSnapshot } from './download/bandwidth.js';
import { registerManageCommands, sizeArg } from './cli/manage.js';

// Many players read cached files at once: give libuv's file I/O pool room beyond its default 4
// threads. Set before the first file operation; an explicit setting by the user wins.
process.env.UV_THREADPOOL_SIZE ??= '16';

const positiveInt =
  (name: string) =>
  (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer.`);
    return n;
  };
const port = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('port must be 0-65535.');
  return n;
};
const hostList = (value: string): string[] => {
  const hosts = value
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean);
  if (hosts.length === 0 || hosts.some((h) => /[\s/]/.test(h))) throw new InvalidArgumentError('expected HOST[,HOST...]');
  return hosts;
};
const bitrate = (value: string): number => {
  const n = parseBitrate(value);
  if (n === undefined) throw new InvalidArgumentError('expected a bitrate in bits per second, such as 8000000, 8Mbps or 800kbps.');
  return n;
};
const sizeOrZero = (value: string): number => {
  const n = parseSize(value);
  if (n === undefined) throw new InvalidArgumentError('expected a size such as 0, 2GB or 500MiB.');
  return n;
};

/** A rate or timetable, checked here (a usage error) and handed on as written. */
const rateLimit = (value: string): string => {
  try {
    parseRateSchedule(value);
  } catch (err) {
    throw new InvalidArgumentError(`${(err as Error).message} (${ErrorCodes.INVALID_INPUT})`);
  }
  return value;
};

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

const program = new Command()
  .name('mediacache')
  .description('A caching streaming proxy for media: play and seek remote files as if they were local.')
  .version(version, '-V, --version', 'print the version')
  .showHelpAfterError('(run with --help for usage)')
  .configureOutput({ outputError: (text, write) => write(text) })
  // Usage errors exit 2 (see the catch below) instead of commander's 1.
  .exitOverride()
  .hook('preAction', (_program, command) => applyConfigFile(program, command));

program
  .command('serve')
  .description('run the proxy (stops cleanly on Ctrl-C / SIGTERM)')
  .addOption(new Option('--host <host>', 'address to bind').env('MEDIACACHE_HOST').default(DEFAULT_HOST))
  .addOption(new Option('--port <port>', 'port to listen on (0 = any free)').env('MEDIACACHE_PORT').argParser(port).default(DEFAULT_PORT))
  .addOption(new Option('--data-dir <dir>', 'database and cached files').env('MEDIACACHE_DATA_DIR').default(DEFAULTS.dataDir))
  .addOption(
    new Option('--chunk-size <bytes>', 'download unit for new entries (e.g. 10MiB)')
      .env('MEDIACACHE_CHUNK_SIZE')
      .argParser(sizeArg)
      .default(DEFAULTS.chunkSize, '10MiB'),
  )
  .addOption(
    new Option('--max-concurrent-downloads <n>', 'upstream transfers at once')
      .env('MEDIACACHE_MAX_CONCURRENT_DOWNLOADS')
      .argParser(positiveInt('max-concurrent-downloads'))
      .default(DEFAULTS.maxConcurrentDownloads),
  )
  .addOption(
    new Option('--lookahead-chunks <n>', "chunks fetched ahead of a reader at HIGH priority (when the entry's bitrate is unknown)")
      .env('MEDIACACHE_LOOKAHEAD_CHUNKS')
      .argParser(positiveInt('lookahead-chunks'))
      .default(DEFAULTS.lookaheadChunks),
  )
  .addOption(
    new Option('--lookahead-s <s>', "seconds of playback fetched ahead of a reader when the entry's bitrate is known")
      .env('MEDIACACHE_LOOKAHEAD_S')
      .argParser(positiveInt('lookahead-s'))
      .default(DEFAULTS.lookaheadSeconds),
  )
  .addOption(
    new Option('--wait-timeout-s <s>', 'how long a read waits for missing bytes')
      .env('MEDIACACHE_WAIT_TIMEOUT_S')
      .argParser(positiveInt('wait-timeout-s'))
      .default(DEFAULTS.waitTimeoutMs / 1000),
  )
  .addOption(
    new Option(
      '--background-fill <mode>',
      "when the rest of a file is fetched in the background: 'always' (every opened file), 'played' (once a player read 30 s of it, or 32 MiB: probes and library scans fetch only what they read), 'never'",
    )
      .env('MEDIACACHE_BACKGROUND_FILL')
      .choices(['always', 'played', 'never'])
      .default('played'),
  )
  .addOption(new Option('--no-background-fill', 'the same as --background-fill never'))
  .addOption(
    new Option(
      '--limit-rate <rate>',
      "bytes per second for background work (pre-cache, background fill), one bucket shared by all of it: 2MB/s, 512KiB, off, or a timetable '08:00,1M 23:00,off'",
    )
      .env('MEDIACACHE_LIMIT_RATE')
      .argParser(rateLimit),
  )
  .addOption(
    new Option(
      '--limit-rate-all <rate>',
      'bytes per second for every upstream transfer, playback first within it (same forms as --limit-rate)',
    )
      .env('MEDIACACHE_LIMIT_RATE_ALL')
      .argParser(rateLimit),
  )
  .addOption(
    new Option('--max-size <size>', 'disk the cached files may use (allocated blocks), e.g. 50GB')
      .env('MEDIACACHE_MAX_SIZE')
      .argParser(sizeArg)
      .default(undefined, 'min(20% of the disk, 50GB)'),
  )
  .addOption(
    new Option('--min-free <size>', 'free disk space to leave, e.g. 2GB')
      .env('MEDIACACHE_MIN_FREE')
      .argParser(sizeOrZero)
      .default(DEFAULTS.minFree, '2GB'),
  )
  .addOption(
    new Option('--cleanup-interval-s <s>', 'period of the cleanup worker')
      .env('MEDIACACHE_CLEANUP_INTERVAL_S')
      .argParser(positiveInt('cleanup-interval-s'))
      .default(DEFAULTS.cleanupIntervalMs / 1000),
  )
  .addOption(
    new Option('--stats-interval-s <s>', 'period of the activity summary in the log (silent when idle)')
      .env('MEDIACACHE_STATS_INTERVAL_S')
      .argParser(positiveInt('stats-interval-s'))
      .default(60),
  )
  .addOption(
    new Option('--log-level <level>', 'fatal, error, warn, info, debug')
      .env('MEDIACACHE_LOG_LEVEL')
      .choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .default('info'),
  )
  .addOption(
    new Option('--auth-token <token>', 'bearer token guarding /api and /metrics (required off loopback)').env('MEDIACACHE_AUTH_TOKEN'),
  )
  .addOption(
    new Option('--public-host <names>', 'other names clients use to reach this server (comma-separated); any other Host gets 421')
      .env('MEDIACACHE_PUBLIC_HOST')
      .argParser(hostList),
  )
  .addOption(
    new Option(
      '--cluster-secret <secret>',
      'shared by every node of a cluster (16+ characters): ids from the cache key, signed stream URLs',
    ).env('MEDIACACHE_CLUSTER_SECRET'),
  )
  .addOption(
    new Option('--public-url <url>', "the balancer's address (e.g. http://media.lan:8080): stream URLs are handed out on it, signed").env(
      'MEDIACACHE_PUBLIC_URL',
    ),
  )
  .addOption(new Option('--node-name <name>', 'how this node names itself in /healthz (default hostname:port)').env('MEDIACACHE_NODE_NAME'))
  .addOption(
    new Option('--allow-upstream <hosts>', 'only cache URLs on these hosts (comma-separated; also checked on every redirect)')
      .env('MEDIACACHE_ALLOW_UPSTREAM')
      .argParser(hostList),
  )
  .addOption(
    new Option(
      '--allow-link-local',
      'let upstreams (and redirects) reach link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10), refused by default after DNS resolution',
    ).env('MEDIACACHE_ALLOW_LINK_LOCAL'),
  )
  .addOption(new Option('--reset-db', 'if the database is unreadable, move it aside (cache.db.corrupt-<time>) and start empty'))
  .addOption(configOption())
  .action(serve);

program
  .command('add')
  .description('register a URL with a running server and print its stream URL')
  .argument('<url>', 'http(s) URL of the media file')
  .option('--source-id <id>', 'media server id (with --media-id: a cache key that survives token rotation)')
  .option('--media-id <id>', 'item id on that server')
  .option('--quality <q>', 'quality or version of the item')
  .option('--bitrate <rate>', 'bits per second of the media (e.g. 8Mbps): lookahead is then sized in seconds', bitrate)
  .addOption(jsonOption().default(false))
  .addOption(serverOption())
  .addOption(configOption())
  .action(add);

program
  .command('status')
  .description('show one entry (state, %, chunk map), or all entries, of a running server')
  .argument('[id]', 'entry id')
  .addOption(jsonOption())
  .addOption(serverOption())
  .addOption(configOption())
  .action(status);

registerManageCommands(program);
registerDashboardCommand(program);

interface ServeOptions {
  host: string;
  port: number;
  dataDir: string;
  chunkSize: number;
  maxConcurrentDownloads: number;
  lookaheadChunks: number;
  lookaheadS: number;
  waitTimeoutS: number;
  backgroundFill: BackgroundFill | false;
  limitRate?: string;
  limitRateAll?: string;
  maxSize?: number;
  minFree: number;
  cleanupIntervalS: number;
  statsIntervalS: number;
  logLevel: string;
  resetDb?: boolean;
  authToken?: string;
  publicHost?: string[];
  clusterSecret?: string;
  publicUrl?: string;
  nodeName?: string;
  allowUpstream?: string[];
  allowLinkLocal?: boolean;
}

async function serve(opts: ServeOptions): Promise<void> {
  if (!isLoopback(opts.host) && !opts.authToken) {
    throw new CliError(
      `refusing to bind ${opts.host} without an auth token: anyone who can reach it could drive the cache. ` +
        'Set --auth-token (or MEDIACACHE_AUTH_TOKEN), or bind 127.0.0.1.',
      EXIT.USAGE,
    );
  }
  const logger = pino({ level: opts.logLevel, base: undefined }, pino.destination(2));
  const cacheOptions = {
    dataDir: opts.dataDir,
    chunkSize: opts.chunkSize,
    maxConcurrentDownloads: opts.maxConcurrentDownloads,
    lookaheadChunks: opts.lookaheadChunks,
    lookaheadSeconds: opts.lookaheadS,
    waitTimeoutMs: opts.waitTimeoutS * 1000,
    backgroundFill: opts.backgroundFill === false ? ('never' as const) : opts.backgroundFill,
    limitRate: opts.limitRate,
    limitRateAll: opts.limitRateAll,
    maxSize: opts.maxSize,
    minFree: opts.minFree,
    cleanupIntervalMs: opts.cleanupIntervalS * 1000,
    allowedUpstreamHosts: opts.allowUpstream,
    allowLinkLocalUpstreams: opts.allowLinkLocal === true,
    clusterSecret: opts.clusterSecret,
  };
  const cache = await openCache(cacheOptions, opts.resetDb === true);
  cache.on('state-changed', ({ entryId, state }) => logger.info({ entryId, state }, 'entry state'));
  cache.on('background-error', ({ error }) => logger.warn({ err: error }, 'background work failed; will retry'));
  cache.on('entry-invalidated', ({ entryId, reason }) => logger.warn({ entryId, reason }, 'cached bytes dropped'));
  // A long-running proxy logs what slipped through rather than dropping every player's stream.
  process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled rejection'));
  const stopActivityLog = startActivityLog(cache.stats, (fields, message) => logger.info(fields, message), opts.statsIntervalS * 1000);
  let server;
  try {
    server = await startServer(cache, {
      host: opts.host,
      port: opts.port,
      logger,
      authToken: opts.authToken,
      publicHosts: opts.publicHost,
      cluster: { publicUrl: opts.publicUrl, clusterSecret: opts.clusterSecret, nodeName: opts.nodeName },
    });
  } catch (err) {
    await cache.close();
    throw new CliError(`cannot listen on ${opts.host}:${opts.port}: ${(err as Error).message}`, EXIT.FAILURE);
  }
  const limits = cache.getLimits();
  logger.info({ maxSize: limits.maxSize, minFree: limits.minFree }, 'cache limits');
  process.stdout.write(`mediacache listening on ${server.url} (data dir ${cache.dataDir})\n`);
  process.stdout.write(`dashboard: ${dashboardUrl(server.url)}\n`);

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      process.stderr.write('forced exit\n');
      process.exit(EXIT.FAILURE);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    void (async () => {
      stopActivityLog();
      await server.close();
      await cache.close();
      process.stdout.write('mediacache stopped\n');
      process.exit(EXIT.OK);
    })();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

/** Opens the cache; an unreadable database gets a way out instead of a stack trace. */
async function openCache(options: CacheOptions & { dataDir: string }, resetDb: boolean): Promise<MediaCache> {
  try {
    return await MediaCache.open(options);
  } catch (err) {
    if (!isMediaCacheError(err, ErrorCodes.DATABASE)) throw err;
    if (!resetDb) {
      throw new CliError(
        `${err.message}\nThe database is unreadable or corrupt. Run "mediacache serve --reset-db" to move it ` +
          'aside (as cache.db.corrupt-<time>) and start with an empty cache; cached files are downloaded again.',
        EXIT.FAILURE,
      );
    }
    const aside = moveDatabaseAside(options.dataDir);
    process.stderr.write(`mediacache: moved the unreadable database to ${aside}; starting with an empty cache\n`);
    return MediaCache.open(options);
  }
}

async function add(
  url: string,
  opts: { sourceId?: string; mediaId?: string; quality?: string; bitrate?: number; json?: boolean; server: string },
): Promise<void> {
  const { body } = await api(opts.server, '/api/entries', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ url, sourceId: opts.sourceId, mediaId: opts.mediaId, quality: opts.quality, bitrate: opts.bitrate }),
  });
  const entry = body as EntryStatus & { streamUrl: string };
  if (opts.json) printJson(entry);
  else process.stdout.write(`${entry.streamUrl}\n`);
}

async function status(id: string | undefined, opts: { json?: boolean; server: string }): Promise<void> {
  if (id !== undefined) {
    const { body } = await api(opts.server, `/api/entries/${encodeURIComponent(id)}`);
    const entry = body as EntryStatus;
    if (opts.json) printJson(entry);
    else process.stdout.write(describe(entry));
    return;
  }
  if (opts.json) return printJsonArray(entryPages(opts.server));
  const { bandwidth } = (await api(opts.server, '/api/stats')).body as { bandwidth?: BandwidthSnapshot };
  if (bandwidth && (bandwidth.limitRate || bandwidth.limitRateAll)) process.stdout.write(bandwidthLine(bandwidth));
  let any = false;
  for await (const entries of entryPages(opts.server)) {
    for (const e of entries) process.stdout.write(`${e.id}  ${e.state.padEnd(12)} ${percent(e).padStart(6)}  ${e.url}\n`);
    any ||= entries.length > 0;
  }
  if (!any) process.stdout.write('no entries\n');
}

program.parseAsync().catch((err: unknown) => {
  if (err instanceof CommanderError) {
    // Help and version are successes; anything else commander reports is a usage error.
    const ok = err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version';
    process.exit(ok ? EXIT.OK : EXIT.USAGE);
  }
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
