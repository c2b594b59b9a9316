import { randomBytes } from 'node:crypto';
import type { ByteRange } from './range.js';

/** The layout of a multipart/byteranges body (RFC 9110 §14.6): heads, parts, closing line. */
export interface MultipartLayout {
  contentType: string;
  /** Exact body length: the response never goes chunked. */
  length: number;
  parts: Array<{ head: Buffer; range: ByteRange }>;
  tail: Buffer;
}

/**
 * Lays out the parts the way nginx does: each part is preceded by CRLF, the boundary line, its
 * Content-Type and Content-Range; the body ends with the closing boundary line.
 */
export function multipartLayout(ranges: readonly ByteRange[], size: number, type: string): MultipartLayout {
  const boundary = randomBytes(12).toString('hex');
  const parts = ranges.map((range) => ({
    head: Buffer.from(`\r\n--${boundary}\r\nContent-Type: ${type}\r\nContent-Range: bytes ${range.start}-${range.end}/${size}\r\n\r\n`),
    range,
  }));
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const length = parts.reduce((sum, p) => sum + p.head.length + p.range.end - p.range.start + 1, tail.length);
  return { contentType: `multipart/byteranges; boundary=${boundary}`, length, parts, tail };
}
