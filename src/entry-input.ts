import { z } from 'zod';

const httpUrl = z
  .string()
  .max(8192)
  .superRefine((s, ctx) => {
    if (!URL.canParse(s)) ctx.addIssue({ code: 'custom', message: 'url must be an absolute URL' });
    else if (!['http:', 'https:'].includes(new URL(s).protocol)) {
      ctx.addIssue({ code: 'custom', message: 'only http and https URLs are supported' });
    }
  });

/** What a caller gives to cache a file: the URL, and optionally the identity that survives token rotation. */
export const EntryInputSchema = z
  .object({
    url: httpUrl,
    sourceId: z.string().min(1).max(256).optional(),
    mediaId: z.string().min(1).max(256).optional(),
    quality: z.string().min(1).max(64).optional(),
    /** Bits per second of the media, as the media server reports it: sizes lookahead in seconds. */
    bitrate: z.number().int().positive().max(10_000_000_000).optional(),
  })
  .strict()
  .refine((v) => (v.sourceId === undefined) === (v.mediaId === undefined), {
    message: 'sourceId and mediaId go together',
  });

export type EntryInput = z.infer<typeof EntryInputSchema>;

/**
 * The cache key: (sourceId, mediaId, quality) when given, else the URL. Media-server URLs carry
 * rotating tokens, so keying by them would re-download a file each time the token changes.
 */
export function cacheKeyOf(input: EntryInput): string {
  if (input.sourceId !== undefined && input.mediaId !== undefined) {
    return JSON.stringify(['media', input.sourceId, input.mediaId, input.quality ?? null]);
  }
  return JSON.stringify(['url', input.url]);
}

const SECRET_PARAM = /token|key|auth|sig|secret|password|pass|session|credential/i;

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
/** A DNS name that URL parsing keeps as it is: lowercase ASCII labels, none punycode, the last not numeric. */
const NAME = '(?:(?!xn--)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\\.)*(?!xn--)[a-z](?:[a-z0-9-]*[a-z0-9])?';
/** No dot segments, nothing percent-encoded or to encode, no query, no fragment. */
const PLAIN_PATH = "(?:/(?!\\.\\.?(?:/|$))[\\w.~!$&'()*+,;=:@-]*)+";
const PLAIN_URL = new RegExp(`^(https?)://(?:${OCTET}(?:\\.${OCTET}){3}|${NAME})(?::([1-9]\\d{0,4}))?${PLAIN_PATH}$`);

/**
 * True when `new URL(raw).href` is `raw` itself and there is nothing in it to redact (no user
 * info, no query): most media URLs, which a listing then need not parse (issue 13).
 */
export function isPlainUrl(raw: string): boolean {
  const m = PLAIN_URL.exec(raw);
  if (!m) return false;
  const port = m[2] === undefined ? null : Number(m[2]);
  return port === null || (port <= 65_535 && port !== (m[1] === 'http' ? 80 : 443));
}

/** The URL with credentials masked, for logs, metrics and listings. */
export function redactUrl(raw: string): string {
  if (isPlainUrl(raw)) return raw;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return '<invalid url>';
  }
  if (url.username) url.username = 'REDACTED';
  if (url.password) url.password = 'REDACTED';
  for (const name of [...url.searchParams.keys()]) {
    if (SECRET_PARAM.test(name)) url.searchParams.set(name, 'REDACTED');
  }
  return url.toString();
}
