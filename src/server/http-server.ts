import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { MediaCache } from '../cache.js';
import { ErrorCodes, MediaCacheError } from '../errors.js';
import { ENTRY_ID, handleApi } from './api-routes.js';
import { sendError, sendJson } from './respond.js';
import { handleStream } from './stream-route.js';

export interface ServerOptions {
  /** Default 127.0.0.1: a cache proxy is a local service unless asked otherwise. */
  host?: string;
  /** Default 7171; 0 picks a free port. */
  port?: number;
  logger?: Logger;
  /** Connections served at once; more wait in the kernel's backlog. Default 512. */
  maxConnections?: number;
}

export interface CacheServer {
  /** `http://HOST:PORT`, with the port actually bound. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  streamUrl(id: string): string;
  close(): Promise<void>;
}

export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 7171;

/** Starts the HTTP surface of a cache: stream routes, the JSON API and health. */
export async function startServer(cache: MediaCache, options: ServerOptions = {}): Promise<CacheServer> {
  const host = options.host ?? DEFAULT_HOST;
  const log = options.logger;
  let base = '';
  const wildcard = host === '0.0.0.0' || host === '::';
  const streamUrlOf = (req: IncomingMessage | undefined, id: string): string => {
    // Bound to every interface, the address the client used is the one that reaches us.
    const origin = wildcard && req?.headers.host ? `http://${req.headers.host}` : base;
    return `${origin}/stream/${id}`;
  };

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    const parts = path.split('/').filter(Boolean);
    if (parts[0] === 'stream' && parts.length === 2) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        throw new MediaCacheError(ErrorCodes.METHOD_NOT_ALLOWED, 'streams answer GET and HEAD');
      }
      const id = parts[1] ?? '';
      if (!ENTRY_ID.test(id)) throw new MediaCacheError(ErrorCodes.NOT_FOUND, 'no such stream');
      return handleStream(cache, id, req, res);
    }
    if (parts[0] === 'api') return handleApi(cache, streamUrlOf, parts.slice(1), req, res);
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    throw new MediaCacheError(ErrorCodes.NOT_FOUND, `nothing at ${path}`);
  };

  const server = http.createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 60_000 }, (req, res) => {
    route(req, res).catch((err: unknown) => {
      if (!(err instanceof MediaCacheError)) log?.error({ err, url: req.url }, 'request failed');
      sendError(res, err);
    });
  });
  server.maxConnections = options.maxConnections ?? 512;
  // Streams are long; keep idle keep-alive sockets short-lived so they do not pile up.
  server.keepAliveTimeout = 5_000;
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? DEFAULT_PORT, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  base = `http://${shownHost}:${port}`;
  log?.info({ url: base }, 'listening');

  return {
    url: base,
    host,
    port,
    streamUrl: (id) => streamUrlOf(undefined, id),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
