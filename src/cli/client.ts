import { Option } from 'commander';
import type { EntryStatus } from '../status.js';
import { DEFAULT_HOST, DEFAULT_PORT } from '../server/http-server.js';

/** Exit codes, documented in the README ("Cache management"). */
export const EXIT = { OK: 0, FAILURE: 1, USAGE: 2, UNREACHABLE: 3, NOT_FOUND: 4, INTERRUPTED: 130 } as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export function serverOption(): Option {
  return new Option('--server <url>', 'URL of the running mediacache server')
    .env('MEDIACACHE_SERVER')
    .default(`http://${DEFAULT_HOST}:${DEFAULT_PORT}`);
}

export function jsonOption(): Option {
  return new Option('--json', 'print JSON');
}

/** One call to the server's JSON API; HTTP errors become CliErrors with the matching exit code. */
export async function api(server: string, path: string, init: RequestInit = {}): Promise<{ status: number; body: unknown }> {
  let res: Response;
  try {
    // A server bound beyond loopback guards its API with a bearer token (see `serve --auth-token`).
    const token = process.env.MEDIACACHE_AUTH_TOKEN;
    const headers = new Headers(init.headers);
    if (token) headers.set('authorization', `Bearer ${token}`);
    // The server refuses state changes that are not JSON (a cross-site form could send those).
    const method = (init.method ?? 'GET').toUpperCase();
    if (method !== 'GET' && method !== 'HEAD' && !headers.has('content-type')) headers.set('content-type', 'application/json');
    res = await fetch(new URL(path, server), { ...init, headers });
  } catch {
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
    const message = (body as { error?: { message?: string } } | null)?.error?.message ?? `HTTP ${res.status}`;
    throw new CliError(message, res.status === 404 ? EXIT.NOT_FOUND : res.status === 400 ? EXIT.USAGE : EXIT.FAILURE);
  }
  return { status: res.status, body };
}

export function postJson(body: unknown): RequestInit {
  return { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Walks `GET /api/entries` page by page (the server pages at 500 by default). */
export async function* entryPages(server: string, limit = 500): AsyncGenerator<EntryStatus[], void, undefined> {
  for (let cursor: string | null = ''; cursor !== null;) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (cursor !== '') query.set('cursor', cursor);
    const { body } = await api(server, `/api/entries?${query.toString()}`);
    const page = body as { entries: EntryStatus[]; next: string | null };
    yield page.entries;
    cursor = page.next;
  }
}

/** Prints a JSON array element by element, as JSON.stringify(all, null, 2) would, without holding it all. */
export async function printJsonArray(pages: AsyncIterable<readonly unknown[]>): Promise<void> {
  let first = true;
  for await (const page of pages) {
    for (const item of page) {
      const text = JSON.stringify(item, null, 2).replace(/^/gm, '  ');
      process.stdout.write(`${first ? '[\n' : ',\n'}${text}`);
      first = false;
    }
  }
  process.stdout.write(first ? '[]\n' : '\n]\n');
}
