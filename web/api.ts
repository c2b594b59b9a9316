/** Calls to the proxy's JSON API: the bearer token when one is set, errors turned into words. */

const TOKEN_KEY = 'mediacache.token';

/** An answer of the API that was not a success, with the server's code and message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value: string | null): void {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function authHeaders(): Record<string, string> {
  const t = token();
  return t ? { authorization: `Bearer ${t}` } : {};
}

/** Called when the API answers 401: the page asks for a token, then the call is retried once. */
let askToken: (reason: string) => Promise<void> = () => Promise.resolve();
export function onUnauthorized(ask: (reason: string) => Promise<void>): void {
  askToken = ask;
}

/**
 * One API call. State-changing calls always send `Content-Type: application/json` (the server
 * refuses them otherwise: that is what keeps other sites out), with a body or not.
 */
export async function api<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const headers: Record<string, string> = { accept: 'application/json', ...authHeaders() };
    if (method !== 'GET') headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
    } catch (err) {
      throw new ApiError(0, 'NETWORK', `the proxy cannot be reached (${err instanceof Error ? err.message : String(err)})`);
    }
    if (res.status === 401 && attempt === 0) {
      await askToken(token() ? 'The token was refused.' : 'This proxy needs its access token.');
      continue;
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!res.ok) throw errorOf(res.status, parsed, text);
    return parsed as T;
  }
}

function errorOf(status: number, parsed: unknown, text: string): ApiError {
  const e = (parsed as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  if (e && typeof e.code === 'string' && typeof e.message === 'string') return new ApiError(status, e.code, e.message);
  return new ApiError(status, `HTTP_${status}`, text.slice(0, 200) || `the proxy answered ${status}`);
}

/** An error as a sentence for the message area. */
export function describeError(action: string, err: unknown): string {
  if (err instanceof ApiError) return `${action} failed: ${err.message}${err.code.startsWith('MC_ERR_') ? ` (${err.code})` : ''}`;
  return `${action} failed: ${err instanceof Error ? err.message : String(err)}`;
}
