import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { ErrorCodes, MediaCacheError } from '../errors.js';

/** Entry ids are 22 base64url characters (128 bits); anything else is refused before any lookup. */
export const ENTRY_ID = /^[A-Za-z0-9_-]{22}$/;

/** The shortest cluster secret accepted: 16 characters, so a guessed secret is not the weak link. */
export const MIN_SECRET_LENGTH = 16;

/**
 * One key per purpose from the cluster secret (HKDF-SHA256): the id key, the URL MAC key and the
 * URL encryption key never coincide, so knowing ids tells nothing about the others.
 */
export function deriveKey(secret: string, purpose: 'entry-id' | 'stream-url-mac' | 'stream-url-enc'): Buffer {
  if (secret.length < MIN_SECRET_LENGTH) {
    throw new MediaCacheError(ErrorCodes.INVALID_INPUT, `the cluster secret must have at least ${MIN_SECRET_LENGTH} characters`);
  }
  return Buffer.from(hkdfSync('sha256', secret, 'mediacache', `mediacache ${purpose} v1`, 32));
}

/**
 * An id from a 16-byte digest, or null when it would start with '-' (it would read as an option on
 * the command line: `mediacache status -x…`): the caller then tries the next candidate.
 */
export function idFromDigest(digest: Buffer): string | null {
  const id = digest.subarray(0, 16).toString('base64url');
  return id.startsWith('-') ? null : id;
}

/** Today's ids: 128 random bits. */
export function randomEntryId(): string {
  for (;;) {
    const id = idFromDigest(randomBytes(16));
    if (id !== null) return id;
  }
}

/**
 * The id every node computes for a cache key: HMAC-SHA256(key, counter ‖ cache key), first 128 bits,
 * base64url. The counter moves on only when a candidate starts with '-' (1 in 64), so all 128 bits
 * stay keyed output; no one without the secret can predict or steer an id.
 */
export class EntryIds {
  private readonly key: Buffer;

  constructor(secret: string) {
    this.key = deriveKey(secret, 'entry-id');
  }

  idFor(cacheKey: string): string {
    for (let counter = 0; ; counter++) {
      const id = idFromDigest(createHmac('sha256', this.key).update(`${counter}\n${cacheKey}`).digest());
      if (id !== null) return id;
    }
  }
}
