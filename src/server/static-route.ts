/**
 * The dashboard's static files (built by web/build.mjs into dist/dashboard/): `GET /` is the page,
 * `/dashboard/<name>-<hash>.<ext>` its assets. Served with a strict Content-Security-Policy (only
 * this origin's scripts, styles and connections; no inline code, no framing), exact content types,
 * and caching by name: the page is revalidated (ETag), assets are immutable (their hash is in the name).
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCodes, MediaCacheError } from '../errors.js';

/** From src/server/ (tests) and dist/server/ (the package) alike: the built files are in dist/dashboard/. */
const DIR = fileURLToPath(new URL('../../dist/dashboard/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "media-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

interface StaticFile {
  body: Buffer;
  type: string;
  etag: string;
  cacheControl: string;
}

let files: Map<string, StaticFile> | null = null;

/** Read once: the files do not change while the process runs (a rebuild needs a restart). */
function load(): Map<string, StaticFile> {
  if (files) return files;
  const map = new Map<string, StaticFile>();
  let names: string[] = [];
  try {
    names = readdirSync(DIR);
  } catch {
    // Not built: every dashboard path answers 404 with the reason.
  }
  for (const name of names) {
    const type = TYPES[path.extname(name)];
    if (!type) continue;
    const body = readFileSync(path.join(DIR, name));
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    const cacheControl = name === 'index.html' ? 'no-cache' : 'public, max-age=31536000, immutable';
    map.set(name === 'index.html' ? '/' : `/dashboard/${name}`, { body, type, etag, cacheControl });
  }
  files = map;
  return map;
}

/** Answers `path` when it is one of the dashboard's files; false when the path is not the dashboard's. */
export function serveDashboard(urlPath: string, req: IncomingMessage, res: ServerResponse): boolean {
  if (urlPath !== '/' && !urlPath.startsWith('/dashboard/')) return false;
  const file = load().get(urlPath);
  if (!file) {
    throw new MediaCacheError(
      ErrorCodes.NOT_FOUND,
      urlPath === '/' ? 'the dashboard is not built: run npm run build' : `nothing at ${urlPath}`,
    );
  }
  if (req.method !== 'GET' && req.method !== 'HEAD')
    throw new MediaCacheError(ErrorCodes.METHOD_NOT_ALLOWED, 'the dashboard answers GET and HEAD');
  const headers = {
    'content-type': file.type,
    'cache-control': file.cacheControl,
    etag: file.etag,
    'content-security-policy': DASHBOARD_CSP,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
  };
  const match = req.headers['if-none-match']?.split(',').some((t) => t.trim().replace(/^W\//, '') === file.etag);
  if (match) {
    res.writeHead(304, headers).end();
    return true;
  }
  res.writeHead(200, { ...headers, 'content-length': file.body.length });
  res.end(req.method === 'HEAD' ? undefined : file.body);
  return true;
}
