import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalIp, isLoopbackIp } from '../../src/policy/ip.js';
import { closedAddressKind, refusedAddress, refusedUrl, upstreamPolicy } from '../../src/policy/upstream-policy.js';
import { HostGuard, hostnameOf } from '../../src/server/host-guard.js';

test('closedAddressKind: link-local and metadata addresses in every spelling; LAN, loopback, public and names are ordinary', () => {
  const cases: Array<[string, 'link-local' | 'metadata' | null]> = [
    ['169.254.169.254', 'link-local'],
    ['169.254.0.1', 'link-local'],
    ['169.254.255.255', 'link-local'],
    ['169.253.255.255', null],
    ['169.255.0.0', null],
    ['fe80::1', 'link-local'],
    ['FE80::abcd:1%eth0', 'link-local'],
    ['[fe80::1]', 'link-local'],
    ['febf:ffff::1', 'link-local'],
    ['fec0::1', null],
    ['::ffff:169.254.169.254', 'link-local'],
    ['::ffff:a9fe:a9fe', 'link-local'],
    ['0:0:0:0:0:ffff:a9fe:0101', 'link-local'],
    ['64:ff9b::169.254.169.254', 'link-local'],
    ['::169.254.169.254', 'link-local'],
    ['fd00:ec2::254', 'metadata'],
    ['100.100.100.200', 'metadata'],
    ['100.100.100.100', null],
    ['127.0.0.1', null],
    ['::1', null],
    ['::ffff:127.0.0.1', null],
    ['0.0.0.0', null],
    ['::', null],
    ['10.0.0.5', null],
    ['192.168.1.20', null],
    ['172.16.0.1', null],
    ['fd12:3456::1', null],
    ['2001:db8::1', null],
    ['8.8.8.8', null],
    ['metadata.google.internal', null],
    ['localhost', null],
    ['169.254.169.254.nip.io', null],
  ];
  for (const [address, kind] of cases) assert.equal(closedAddressKind(address), kind, address);
});

test('refusedAddress: closed addresses refused by default, all allowed with --allow-link-local', () => {
  const strict = upstreamPolicy(undefined);
  const open = upstreamPolicy(undefined, true);
  for (const address of ['169.254.169.254', 'fe80::1', '::ffff:169.254.169.254', 'fd00:ec2::254']) {
    assert.match(refusedAddress(address, strict) ?? '', /link-local|metadata/, address);
    assert.equal(refusedAddress(address, open), null, address);
  }
  for (const address of ['127.0.0.1', '192.168.1.20', '::1', '2001:db8::1']) assert.equal(refusedAddress(address, strict), null, address);
});

test('refusedUrl: scheme, allowlist by host as written (host or host:port), literal addresses as the URL parser normalises them', () => {
  const none = upstreamPolicy(undefined);
  const listed = upstreamPolicy([' NAS.lan ', '127.0.0.1:8080', 'media.example']);
  const cases: Array<[string, typeof none, RegExp | null]> = [
    ['http://nas.lan/film.mkv', none, null],
    ['http://127.0.0.1:32400/x', none, null],
    ['https://cdn.example/x', none, null],
    ['http://169.254.169.254/latest/meta-data/', none, /link-local/],
    ['http://2852039166/', none, /link-local/], // decimal spelling of 169.254.169.254
    ['http://0xa9.0xfe.0xa9.0xfe/', none, /link-local/],
    ['http://[fe80::1]:8080/', none, /link-local/],
    ['http://[::ffff:169.254.169.254]/', none, /link-local/],
    ['http://[fd00:ec2::254]/', none, /metadata/],
    ['ftp://nas.lan/x', none, /not an http/],
    ['http://nas.lan/x', listed, null],
    ['http://NAS.LAN:8096/x', listed, null],
    ['http://media.example/x', listed, null],
    ['http://127.0.0.1:8080/x', listed, null],
    ['http://127.0.0.1:9090/x', listed, /not in the allowed list/],
    ['http://localhost:8080/x', listed, /not in the allowed list/],
    ['http://169.254.169.254/', upstreamPolicy(['169.254.169.254']), /link-local/],
    ['http://169.254.169.254/', upstreamPolicy(['169.254.169.254'], true), null],
  ];
  for (const [url, policy, expected] of cases) {
    const refusal = refusedUrl(new URL(url), policy);
    if (expected === null) assert.equal(refusal, null, url);
    else assert.match(refusal ?? '', expected, url);
  }
});

test('IP helpers: one canonical spelling per address; loopback is 127.0.0.0/8 and ::1, also IPv4-mapped', () => {
  assert.equal(canonicalIp('::ffff:127.0.0.1'), canonicalIp('[0:0:0:0:0:ffff:7f00:1]'));
  assert.equal(canonicalIp('0:0:0:0:0:0:0:1'), canonicalIp('::1'));
  assert.equal(canonicalIp('::ffff:10.0.0.1'), '10.0.0.1', 'IPv4-mapped is the IPv4 address');
  assert.equal(canonicalIp('64:ff9b::10.0.0.1'), '64:ff9b:0:0:0:0:a00:1', 'NAT64 is another address');
  assert.equal(canonicalIp('example.com'), null);
  const loopback: Array<[string, boolean]> = [
    ['127.0.0.1', true],
    ['127.255.0.9', true],
    ['::1', true],
    ['[::1]', true],
    ['::ffff:127.0.0.1', true],
    ['128.0.0.1', false],
    ['::2', false],
    ['::', false],
    ['localhost', false],
  ];
  for (const [address, expected] of loopback) assert.equal(isLoopbackIp(address), expected, address);
});

test('hostnameOf: port, brackets and a trailing dot removed; malformed Host headers are null', () => {
  const cases: Array<[string, string | null]> = [
    ['localhost', 'localhost'],
    ['LocalHost:7171', 'localhost'],
    ['localhost.', 'localhost'],
    ['127.0.0.1:7171', '127.0.0.1'],
    ['[::1]:7171', '::1'],
    ['[::1]', '::1'],
    ['::1', '::1'],
    ['media.home:80', 'media.home'],
    ['', null],
    [':7171', null],
    ['a:b:c', null],
    ['evil.example:99999999', null],
    ['[evil.example]', null],
  ];
  for (const [header, expected] of cases) assert.equal(hostnameOf(header), expected, header);
});

test('HostGuard: loopback names, the bound address, public hosts and (wildcard binds) the interface addresses; nothing else', () => {
  let asked = 0;
  const interfaces = ['127.0.0.1', '192.168.1.20', 'fe80::1c2d:3e4f'];
  const cases: Array<[{ bindHost: string; publicHosts?: string[] }, string | undefined, boolean]> = [
    [{ bindHost: '127.0.0.1' }, 'localhost:7171', true],
    [{ bindHost: '127.0.0.1' }, 'app.localhost', true],
    [{ bindHost: '127.0.0.1' }, '127.0.0.1:7171', true],
    [{ bindHost: '127.0.0.1' }, '127.8.9.10', true],
    [{ bindHost: '127.0.0.1' }, '[::1]:7171', true],
    [{ bindHost: '127.0.0.1' }, undefined, true],
    [{ bindHost: '127.0.0.1' }, 'evil.example', false],
    [{ bindHost: '127.0.0.1' }, 'evil.example:7171', false],
    [{ bindHost: '127.0.0.1' }, 'localhost.evil.example', false],
    [{ bindHost: '127.0.0.1' }, '127.0.0.1.nip.io', false],
    [{ bindHost: '127.0.0.1' }, '192.168.1.20', false],
    [{ bindHost: '127.0.0.1' }, '', false],
    [{ bindHost: '127.0.0.1', publicHosts: ['Media.Home', 'nas.lan:8080'] }, 'media.home:7171', true],
    [{ bindHost: '127.0.0.1', publicHosts: ['media.home'] }, 'nas.lan', false],
    [{ bindHost: '127.0.0.1', publicHosts: ['nas.lan:8080'] }, 'nas.lan', true],
    [{ bindHost: '192.168.1.20' }, '192.168.1.20:7171', true],
    [{ bindHost: '192.168.1.20' }, '192.168.1.21', false],
    [{ bindHost: '::' }, '[::ffff:192.168.1.20]:7171', true],
    [{ bindHost: '0.0.0.0' }, '192.168.1.20', true],
    [{ bindHost: '0.0.0.0' }, '[fe80::1c2d:3e4f]:7171', true],
    [{ bindHost: '0.0.0.0' }, '10.9.9.9', false],
    [{ bindHost: '0.0.0.0' }, 'evil.example', false],
    [{ bindHost: '0.0.0.0', publicHosts: ['nas.lan'] }, 'nas.lan', true],
  ];
  for (const [options, header, expected] of cases) {
    const guard = new HostGuard({ ...options, interfaceAddresses: () => (asked++, interfaces) });
    assert.equal(guard.allows(header), expected, `${JSON.stringify(options)} Host ${header}`);
  }
  // Interfaces are looked up again on a miss: an address gained after start-up is ours.
  const later: string[] = [];
  const guard = new HostGuard({ bindHost: '0.0.0.0', interfaceAddresses: () => later });
  assert.equal(guard.allows('10.1.2.3'), false);
  later.push('10.1.2.3');
  assert.equal(guard.allows('10.1.2.3'), true);
  assert.ok(asked > 0);
});
