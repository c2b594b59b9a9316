import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { makeData, sha256 } from './helpers/upstream.js';
import { fetchBytes, getJson, getRange, startProxy, tempDir } from './helpers/harness.js';
import { startCli } from './helpers/cli-process.js';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
const data = makeData(300_000, 61);

/** A minimal HTTPS upstream with a fresh self-signed certificate, serving one file with Range. */
async function startHttpsUpstream(dir: string): Promise<{ url: string; ca: string; connections: () => number; close(): Promise<void> }> {
  const [key, cert] = [path.join(dir, 'key.pem'), path.join(dir, 'cert.pem')];
  const made = spawnSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert,
  ]); // prettier-ignore
  assert.equal(made.status, 0, made.stderr.toString());
  let connections = 0;
  const server = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (!m) return res.writeHead(200, { 'content-length': data.length }).end(data);
    const start = Number(m[1]);
    const end = Math.min(m[2] ? Number(m[2]) : data.length - 1, data.length - 1);
    res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${data.length}`, 'content-length': end - start + 1, etag: '"v1"' });
    res.end(data.subarray(start, end + 1));
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}/film.mkv`,
    ca: cert,
    connections: () => connections,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('HTTPS upstream', { skip: hasOpenssl ? false : 'openssl is not installed' }, () => {
  const dir = tempDir('mediacache-tls-');
  let upstream: Awaited<ReturnType<typeof startHttpsUpstream>>;
  before(async () => (upstream = await startHttpsUpstream(dir)));
  after(async () => {
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an untrusted certificate fails fast: one connection, a 502 naming the code and the fix', async () => {
    const proxy = await startProxy({ chunkSize: 64 * 1024, backgroundFill: false });
    try {
      const { id, streamUrl } = await proxy.add(upstream.url);
      const before = upstream.connections();
      const res = await fetchBytes(streamUrl);
      assert.equal(res.status, 502);
      assert.match(res.body.toString(), /TLS certificate rejected \(DEPTH_ZERO_SELF_SIGNED_CERT\).*NODE_EXTRA_CA_CERTS/);
      assert.equal(upstream.connections() - before, 1, 'no retries');
      assert.equal(proxy.cache.getEntry(id)?.state, 'Failed');
    } finally {
      await proxy.close();
    }
  });

  test('with NODE_EXTRA_CA_CERTS, `mediacache serve` streams it byte-exact', async () => {
    const dataDir = tempDir();
    const serve = startCli(['serve', '--port', '0', '--data-dir', dataDir, '--min-free', '0', '--log-level', 'silent'], {
      NODE_EXTRA_CA_CERTS: upstream.ca,
    });
    try {
      const url = await serve.url;
      assert.ok(url, 'serve is listening');
      const added = await fetchBytes(`${url}/api/entries`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ url: upstream.url }),
      });
      assert.equal(added.status, 201, added.body.toString());
      const { streamUrl } = JSON.parse(added.body.toString()) as { streamUrl: string };
      const whole = await fetchBytes(streamUrl);
      assert.equal(whole.status, 200);
      assert.equal(sha256(whole.body), sha256(data));
      const part = await getRange(streamUrl, 'bytes=123456-234567');
      assert.equal(sha256(part.body), sha256(data.subarray(123456, 234568)));
      const { entries } = await getJson<{ entries: Array<{ state: string; error: string | null }> }>(`${url}/api/entries`);
      assert.equal(entries.length, 1);
      assert.equal(entries[0]?.error ?? null, null);
    } finally {
      serve.child.kill('SIGTERM');
      await serve.done;
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
