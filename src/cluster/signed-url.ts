import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { EntryInputSchema, type EntryInput } from '../entry-input.js';
import { ErrorCodes, MediaCacheError } from '../errors.js';
import { deriveKey } from './ids.js';

/**
 * The token a self-describing stream URL carries (`/stream/<id>?t=<token>`): everything a node that
 * has never seen the entry needs to register it — the upstream URL and the cache key — encrypted
 * (AES-256-GCM: a token in the upstream URL is not readable from the stream URL) and signed
 * (HMAC-SHA256 over the id and the ciphertext, checked first, in constant time). Binary layout,
 * base64url: version (1) ‖ iv (12) ‖ ciphertext ‖ GCM tag (16) ‖ HMAC (first 16 bytes).
 */
const VERSION = 1;
const IV = 12;
const TAG = 16;
const MAC = 16;
/** Room for an 8 KiB upstream URL and its key, base64url-encoded, under the 16 KiB header limit. */
const MAX_TOKEN = 12_288;

/** The payload, with short names: it rides in every stream URL. */
const Payload = z
  .object({ u: z.string(), s: z.string().optional(), m: z.string().optional(), q: z.string().optional(), b: z.number().optional() })
  .strict();

export class StreamUrlSigner {
  private readonly macKey: Buffer;
  private readonly encKey: Buffer;

  constructor(secret: string) {
    this.macKey = deriveKey(secret, 'stream-url-mac');
    this.encKey = deriveKey(secret, 'stream-url-enc');
  }

  /** The token for entry `id` described by `input`. */
  sign(id: string, input: EntryInput): string {
    const payload: z.infer<typeof Payload> = { u: input.url };
    if (input.sourceId !== undefined) payload.s = input.sourceId;
    if (input.mediaId !== undefined) payload.m = input.mediaId;
    if (input.quality !== undefined) payload.q = input.quality;
    if (input.bitrate !== undefined) payload.b = input.bitrate;
    const iv = randomBytes(IV);
    const cipher = createCipheriv('aes-256-gcm', this.encKey, iv);
    cipher.setAAD(Buffer.from(id));
    const sealed = Buffer.concat([Buffer.from([VERSION]), iv, cipher.update(JSON.stringify(payload)), cipher.final(), cipher.getAuthTag()]);
    return Buffer.concat([sealed, this.mac(id, sealed)]).toString('base64url');
  }

  /** The entry a token describes, when it was made by a holder of the secret for this very id; else MC_ERR_BAD_SIGNATURE. */
  verify(id: string, token: string | null): EntryInput {
    if (token === null || token === '') throw badSignature('this node does not know the entry and the stream URL carries no signature');
    const raw = token.length <= MAX_TOKEN && /^[A-Za-z0-9_-]+$/.test(token) ? Buffer.from(token, 'base64url') : Buffer.alloc(0);
    if (raw.length < 1 + IV + TAG + MAC + 2 || raw[0] !== VERSION) throw badSignature('malformed stream URL signature');
    const sealed = raw.subarray(0, raw.length - MAC);
    if (!timingSafeEqual(raw.subarray(raw.length - MAC), this.mac(id, sealed))) throw badSignature('stream URL signature does not match');
    const iv = sealed.subarray(1, 1 + IV);
    const decipher = createDecipheriv('aes-256-gcm', this.encKey, iv);
    decipher.setAAD(Buffer.from(id));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG));
    let text: string;
    try {
      text = Buffer.concat([decipher.update(sealed.subarray(1 + IV, sealed.length - TAG)), decipher.final()]).toString('utf8');
    } catch {
      throw badSignature('stream URL payload does not decrypt');
    }
    const payload = Payload.safeParse(JSON.parse(text));
    const input = payload.success
      ? EntryInputSchema.safeParse({
          url: payload.data.u,
          sourceId: payload.data.s,
          mediaId: payload.data.m,
          quality: payload.data.q,
          bitrate: payload.data.b,
        })
      : undefined;
    if (!input?.success) throw badSignature('stream URL payload is not an entry');
    return input.data;
  }

  private mac(id: string, sealed: Buffer): Buffer {
    return createHmac('sha256', this.macKey).update(id).update('\n').update(sealed).digest().subarray(0, MAC);
  }
}

function badSignature(message: string): MediaCacheError {
  return new MediaCacheError(ErrorCodes.BAD_SIGNATURE, message);
}
