import { createHash, timingSafeEqual } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { MediaCache } from '../cache.js';
import { ErrorCodes, MediaCacheError } from '../errors.js';
import { handleApi } from './api-routes.js';
import { ENTRY_ID } from '../cluster/ids.js';
import { clusterRouting, type ClusterServerOptions } from '../cluster/stream-registration.js';
import { sendError, sendJson } from './respond.js';
import { handleStream } from './stream-route.js';
import { handleLive } from './live-routes.js';
import { LiveHub } from '../live/hub.js';
import { CacheMetrics } from './metrics.js';
import { HostGuard, isWildcard } from './host-guard.js';
import { isLoopbackIp } from '../policy/ip.js';
import { serveDashboard } from './static-route.js';

export interface ServerOptions {
  /** Default 127.0.0.1: a cache proxy is a local service unless asked otherwise. */
  host?: string;
  /** Default 7171; 0 picks a free port. */
  port?: number;
  logger?: Logger;
  /** Connections served at once; more wait in the kernel's backlog. Default 512. */
  maxConnections?: number;
  /**
   * Bearer token guarding /api/* and /metrics (not /stream: players cannot send headers, and
   * stream ids are unguessable). Required when binding anything but a loopback address.
   */
  authToken?: string;
  /**
   * Names clients use to reach the server besides loopback names and the bound address
   * (`--public-host`): requests with any other Host get 421 (DNS rebinding).
   */
  publicHosts?: readonly string[];
  /** Several nodes behind a balancer: `publicUrl`, `clusterSecret`, `nodeName` (see src/cluster/). */
  cluster?: ClusterServerOptions;
}

/** 127.0.0.0/8, ::1 and localhost: only this machine can connect. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || isLoopbackIp(h);
}

/** A JSON body cannot be sent cross-site without a CORS preflight, which this server never grants. */
const JSON_TYPE = /^application\/json\s*(;|$)/i;

/** Compares digests so the check takes the same time whatever the guess. */
function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  if (!m?.[1]) return false;
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(m[1]), digest(token));
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
  const authToken = options.authToken || undefined;
  if (!isLoopback(host) && !authToken) {
    throw new MediaCacheError(
      ErrorCodes.INVALID_INPUT,
      `binding ${host} exposes the API beyond this machine: set an auth token (--auth-token or MEDIACACHE_AUTH_TOKEN)`,
    );
  }
  let base = '';
  let nodeName = '';
  const metrics = new CacheMetrics(cache);
  const wildcard = isWildcard(host);
  const cluster = clusterRouting(cache, options.cluster);
  const hosts = new HostGuard({ bindHost: host, publicHosts: [...(options.publicHosts ?? []), ...cluster.hosts] });
  // Off loopback (a token is then required), players on the LAN may reach streams by any name
  // (mDNS, a router's DNS): stream ids are unguessable, and the API keeps its host check.
  const streamsAnyHost = !isLoopback(host);
  // Bound to every interface, the address the client used is the one that reaches us.
  const streamBaseOf = (req: IncomingMessage | undefined): string =>
    `${wildcard && req?.headers.host ? `http://${req.headers.host}` : base}/stream/`;
  const streamUrlOf = (req: IncomingMessage | undefined, id: string): string => cluster.streamUrl(id) ?? streamBaseOf(req) + id;
  const streamUrls = { of: streamUrlOf, base: (req: IncomingMessage) => (cluster.signsUrls ? null : streamBaseOf(req)) };

  const hub = new LiveHub(cache, { streamUrl: (id) => streamUrlOf(undefined, id) });
  metrics.watchLive(hub);

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    const parts = path.split('/').filter(Boolean);
    const isStream = parts[0] === 'stream' && parts.length === 2;
    if (!(isStream && streamsAnyHost) && !hosts.allows(req.headers.host)) {
      throw new MediaCacheError(
        ErrorCodes.MISDIRECTED,
        `this server answers only its own host names, not ${JSON.stringify(req.headers.host?.slice(0, 100))}: add it with --public-host`,
      );
    }
    if (isStream) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        throw new MediaCacheError(ErrorCodes.METHOD_NOT_ALLOWED, 'streams answer GET and HEAD');
      }
      const id = parts[1] ?? '';
      if (!ENTRY_ID.test(id)) throw new MediaCacheError(ErrorCodes.NOT_FOUND, 'no such stream');
      return handleStream(cache, cluster.admit(id, req.url ?? ''), req, res, {
        onFirstByte: (s, seek) => metrics.observeFirstByte(s, seek),
      });
    }
    if (authToken && (parts[0] === 'api' || path === '/metrics') && !tokenMatches(req.headers.authorization, authToken)) {
      res.setHeader('www-authenticate', 'Bearer');
      throw new MediaCacheError(ErrorCodes.UNAUTHORIZED, 'missing or wrong bearer token');
    }
    if (
      parts[0] === 'api' &&
      req.method !== 'GET' &&
      req.method !== 'HEAD' &&
      !authToken &&
      !JSON_TYPE.test(req.headers['content-type'] ?? '')
    ) {
      // A form post or a text/plain fetch from another site needs no preflight: refuse anything that changes state unless it is JSON.
      throw new MediaCacheError(
        ErrorCodes.UNSUPPORTED_MEDIA_TYPE,
        `${req.method ?? 'this method'} under /api needs Content-Type: application/json (or a bearer token)`,
      );
    }
    if (parts[0] === 'api' && (await handleLive(hub, parts, req, res))) return;
    if (parts[0] === 'api') return handleApi(cache, streamUrls, parts.slice(1), req, res);
    if (serveDashboard(path, req, res)) return;
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok', node: nodeName });
    if (path === '/metrics' && req.method === 'GET') {
      const { contentType, body } = await metrics.render();
      res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    throw new MediaCacheError(ErrorCodes.NOT_FOUND, `nothing at ${path}`);
  };

  const server = http.createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 60_000 }, (req, res) => {
    // Behind a balancer, every answer says which node gave it.
    res.setHeader('x-mediacache-node', nodeName);
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
    server.once('error', (err) => {
      hub.close();
      reject(err);
    });
    server.listen(options.port ?? DEFAULT_PORT, host, () => {
      server.removeAllListeners('error');
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  base = `http://${shownHost}:${port}`;
  nodeName = options.cluster?.nodeName ?? `${hostname()}:${port}`;
  log?.info({ url: base }, 'listening');

  return {
    url: base,
    host,
    port,
    streamUrl: (id) => streamUrlOf(undefined, id),
    close: () =>
      new Promise<void>((resolve) => {
        metrics.close();
        hub.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
