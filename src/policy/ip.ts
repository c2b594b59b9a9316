import { isIP } from 'node:net';

/** An IP address as numbers: 4 octets, or 8 hextets for IPv6. */
export type ParsedIp = { v4: number[] } | { v6: number[] };

/**
 * Parses an IP literal (IPv6 with or without brackets or a `%zone`); null for anything else,
 * host names included. The numeric form lets `::ffff:a9fe:a9fe` and `::ffff:169.254.169.254`
 * compare equal, which string comparison would miss.
 */
export function parseIp(text: string): ParsedIp | null {
  const address = text.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const kind = isIP(address);
  if (kind === 4) return { v4: address.split('.').map(Number) };
  if (kind !== 6) return null;
  // A trailing dotted quad (::ffff:1.2.3.4) is two hextets written in decimal.
  const hexOnly = address.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_m, a: string, b: string, c: string, d: string) =>
    [(Number(a) << 8) | Number(b), (Number(c) << 8) | Number(d)].map((h) => h.toString(16)).join(':'),
  );
  const hex = (part: string): number[] => (part === '' ? [] : part.split(':').map((h) => Number.parseInt(h, 16)));
  const [left = '', right] = hexOnly.split('::');
  const leftParts = hex(left);
  const rightParts = right === undefined ? [] : hex(right);
  const zeros = new Array<number>(8 - leftParts.length - rightParts.length).fill(0);
  return { v6: [...leftParts, ...zeros, ...rightParts] };
}

/** The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d), -compatible (::a.b.c.d) or NAT64 (64:ff9b::a.b.c.d) one. */
export function embeddedV4(v6: readonly number[]): number[] | null {
  const [h0, h1, h2, h3, h4, h5, h6 = 0, h7 = 0] = v6;
  const zeros = h2 === 0 && h3 === 0 && h4 === 0;
  const mapped = h0 === 0 && h1 === 0 && zeros && h5 === 0xffff;
  const compatible = h0 === 0 && h1 === 0 && zeros && h5 === 0 && h6 !== 0;
  const nat64 = h0 === 0x64 && h1 === 0xff9b && zeros && h5 === 0;
  return mapped || compatible || nat64 ? [h6 >> 8, h6 & 0xff, h7 >> 8, h7 & 0xff] : null;
}

/**
 * One spelling per address, so equal addresses compare equal: IPv4 (also IPv4-mapped, which a
 * dual-stack socket reports for IPv4 peers) dotted, IPv6 as 8 hextets.
 */
export function canonicalIp(text: string): string | null {
  const ip = parseIp(text);
  if (!ip) return null;
  if ('v4' in ip) return ip.v4.join('.');
  const mapped = ip.v6.slice(0, 5).every((h) => h === 0) && ip.v6[5] === 0xffff;
  return mapped ? (embeddedV4(ip.v6) ?? []).join('.') : ip.v6.map((h) => h.toString(16)).join(':');
}

/** 127.0.0.0/8 and ::1, also as IPv4-mapped addresses. */
export function isLoopbackIp(text: string): boolean {
  const ip = parseIp(text);
  if (!ip) return false;
  const v4 = 'v4' in ip ? ip.v4 : embeddedV4(ip.v6);
  if (v4) return v4[0] === 127;
  return 'v6' in ip && ip.v6.slice(0, 7).every((h) => h === 0) && ip.v6[7] === 1;
}
