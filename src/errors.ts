/**
 * Every error mediacache raises on purpose carries a stable `code`; callers branch on the code,
 * never on the message. `HTTP_STATUS` is the one place a code becomes an HTTP status.
 */
export const ErrorCodes = {
  INVALID_INPUT: 'MC_ERR_INVALID_INPUT',
  UNAUTHORIZED: 'MC_ERR_UNAUTHORIZED',
  FORBIDDEN: 'MC_ERR_FORBIDDEN',
  BAD_SIGNATURE: 'MC_ERR_BAD_SIGNATURE',
  UPSTREAM_REFUSED: 'MC_ERR_UPSTREAM_REFUSED',
  UNSUPPORTED_MEDIA_TYPE: 'MC_ERR_UNSUPPORTED_MEDIA_TYPE',
  MISDIRECTED: 'MC_ERR_MISDIRECTED',
  NOT_FOUND: 'MC_ERR_NOT_FOUND',
  METHOD_NOT_ALLOWED: 'MC_ERR_METHOD_NOT_ALLOWED',
  BODY_TOO_LARGE: 'MC_ERR_BODY_TOO_LARGE',
  RANGE_NOT_SATISFIABLE: 'MC_ERR_RANGE_NOT_SATISFIABLE',
  PRECONDITION_FAILED: 'MC_ERR_PRECONDITION_FAILED',
  UPSTREAM_STATUS: 'MC_ERR_UPSTREAM_STATUS',
  UPSTREAM_BAD_REPLY: 'MC_ERR_UPSTREAM_BAD_REPLY',
  UPSTREAM_CHANGED: 'MC_ERR_UPSTREAM_CHANGED',
  UPSTREAM_NO_RANGE: 'MC_ERR_UPSTREAM_NO_RANGE',
  UPSTREAM_NETWORK: 'MC_ERR_UPSTREAM_NETWORK',
  ENTRY_FAILED: 'MC_ERR_ENTRY_FAILED',
  WAIT_TIMEOUT: 'MC_ERR_WAIT_TIMEOUT',
  ABORTED: 'MC_ERR_ABORTED',
  DATA_DIR_LOCKED: 'MC_ERR_DATA_DIR_LOCKED',
  DATABASE: 'MC_ERR_DATABASE',
  STORAGE: 'MC_ERR_STORAGE',
  INSUFFICIENT_STORAGE: 'MC_ERR_INSUFFICIENT_STORAGE',
  CLOSED: 'MC_ERR_CLOSED',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export const HTTP_STATUS: Record<ErrorCode, number> = {
  MC_ERR_INVALID_INPUT: 400,
  MC_ERR_UNAUTHORIZED: 401,
  MC_ERR_FORBIDDEN: 403,
  MC_ERR_BAD_SIGNATURE: 403,
  MC_ERR_UPSTREAM_REFUSED: 403,
  MC_ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  MC_ERR_MISDIRECTED: 421,
  MC_ERR_NOT_FOUND: 404,
  MC_ERR_METHOD_NOT_ALLOWED: 405,
  MC_ERR_BODY_TOO_LARGE: 413,
  MC_ERR_RANGE_NOT_SATISFIABLE: 416,
  MC_ERR_PRECONDITION_FAILED: 412,
  MC_ERR_UPSTREAM_STATUS: 502,
  MC_ERR_UPSTREAM_BAD_REPLY: 502,
  MC_ERR_UPSTREAM_CHANGED: 502,
  MC_ERR_UPSTREAM_NO_RANGE: 502,
  MC_ERR_UPSTREAM_NETWORK: 502,
  MC_ERR_ENTRY_FAILED: 502,
  MC_ERR_WAIT_TIMEOUT: 503,
  MC_ERR_ABORTED: 499,
  MC_ERR_DATA_DIR_LOCKED: 409,
  MC_ERR_DATABASE: 503,
  MC_ERR_STORAGE: 503,
  MC_ERR_INSUFFICIENT_STORAGE: 507,
  MC_ERR_CLOSED: 503,
};

/** How a storage failure starts in cache_entries.error_message, so readers can tell it apart. */
export const STORAGE_FAILURE = 'cache storage failed';

export class MediaCacheError extends Error {
  readonly code: ErrorCode;
  /** For upstream replies: the status the upstream answered. */
  readonly status?: number;
  /** Whether retrying the same operation may succeed (network blips, 5xx). */
  readonly transient: boolean;

  constructor(code: ErrorCode, message: string, options: { status?: number; transient?: boolean; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'MediaCacheError';
    this.code = code;
    if (options.status !== undefined) this.status = options.status;
    this.transient = options.transient ?? false;
  }
}

export function isMediaCacheError(err: unknown, code?: ErrorCode): err is MediaCacheError {
  return err instanceof MediaCacheError && (code === undefined || err.code === code);
}

/** A failure of the database itself (busy, locked, I/O): the request may succeed later. */
export function isDatabaseFailure(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && typeof code === 'string' && code.startsWith('SQLITE_');
}

export function httpStatusOf(err: unknown): number {
  if (err instanceof MediaCacheError) return HTTP_STATUS[err.code];
  return isDatabaseFailure(err) ? HTTP_STATUS[ErrorCodes.DATABASE] : 500;
}
