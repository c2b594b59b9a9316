/**
 * Several nodes behind HAProxy with the shipped docs/deploy/haproxy.cfg (ports substituted): three
 * `mediacache serve` processes on loopback, each with its own data dir, one real upstream counting
 * bytes per path. Needs haproxy (Debian: `apt-get install haproxy`, as .ci/run does): skipped
 * locally without it; in CI (`CI` set) a missing haproxy fails the suite.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeData, sha256, startUpstream, type Upstream } from './helpers/upstream.js';
import { tempDir } from './helpers/harness.js';
import { runCli, startCli, type CliProcess } from './helpers/cli-process.js';
import { findHaproxy, shippedConfigFor, startHaproxy, type Haproxy } from './helpers/haproxy.js';

const HAPROXY = findHaproxy();
const skip = HAPROXY === undefined && !process.env.CI ? 'haproxy is not installed (apt-get install haproxy; CI installs it)' : false;
const SECRET = 'test-cluster-secret-0123456789abcdef';
const ENTRIES = 30;
const UPSTREAM_TOKEN = 'S3cr3tUpstreamT0ken';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

interface Added {
  id: string;
  streamUrl: string;
  path: string;
  data: Buffer;
}

async function post(base: string, body: unknown): Promise<Response> {
  return fetch(`${base}/api/entries`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

async function play(url: string): Promise<{ status: number; body: Buffer; node: string | null }> {
  const res = await fetch(url);
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()), node: res.headers.get('x-mediacache-node') };
}

describe('several nodes behind HAProxy (shipped haproxy.cfg, consistent hashing on the entry id)', { skip }, () => {
  let upstream: Upstream;
  let haproxy: Haproxy | undefined;
  const dirs: string[] = [];
  const nodes: Array<{ port: number; dir: string; name: string; proc?: CliProcess }> = [];
  let balancer = '';
  const added: Added[] = [];

  const startNode = async (i: number): Promise<void> => {
    const n = nodes[i];
    assert.ok(n);
    n.proc = startCli([
      'serve',
      ...['--port', String(n.port), '--data-dir', n.dir, '--chunk-size', '64KiB', '--min-free', '0', '--log-level', 'warn'],
      ...['--cluster-secret', SECRET, '--public-url', balancer, '--node-name', n.name],
    ]);
    assert.ok(await n.proc.url, `${n.name} started`);
  };
  const nodeUrl = (i: number): string => `http://127.0.0.1:${nodes[i]?.port ?? 0}`;
  /** Which nodes hold the whole entry (asked directly, not through the balancer). */
  const holders = async (a: Added, live: number[] = [0, 1, 2]): Promise<number[]> => {
    const out: number[] = [];
    for (const i of live) {
      const res = await fetch(`${nodeUrl(i)}/api/entries/${a.id}`);
      if (res.status === 200 && ((await res.json()) as { downloadedBytes: number }).downloadedBytes === a.data.length) out.push(i);
    }
    return out;
  };

  before(async () => {
    if (HAPROXY === undefined) throw new Error('haproxy is required when CI is set (.ci/run installs the Debian package)');
    upstream = await startUpstream();
    const ports = [await freePort(), await freePort(), await freePort()];
    const front = await freePort();
    balancer = `http://127.0.0.1:${front}`;
    for (const [i, port] of ports.entries()) {
      const dir = tempDir();
      dirs.push(dir);
      nodes.push({ port, dir, name: `node${i + 1}` });
      await startNode(i);
    }
    const hdir = tempDir('mediacache-haproxy-');
    dirs.push(hdir);
    haproxy = startHaproxy(HAPROXY, hdir, shippedConfigFor(front, ports));
    for (let i = 0; ; i++) {
      const ok = await fetch(`${balancer}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (i > 100) throw new Error('haproxy did not come up');
      await sleep(50);
    }
  });

  after(async () => {
    await haproxy?.stop();
    for (const n of nodes) {
      if (n.proc && n.proc.child.exitCode === null && n.proc.child.signalCode === null) n.proc.child.kill('SIGTERM');
      await n.proc?.done;
    }
    await upstream?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('30 entries registered and read through HAProxy: upstream bytes = 1.00 × their sizes, every body byte-exact, each on one node', async () => {
    for (let i = 0; i < ENTRIES; i++) {
      const data = makeData(100_000 + ((i * 7919) % 200_000), 1000 + i);
      const path = `/lib/${i}.mkv`;
      upstream.setFile(path, data);
      const res = await post(balancer, { url: `${upstream.url(path)}?api_key=${UPSTREAM_TOKEN}`, sourceId: 'nas', mediaId: String(i) });
      assert.equal(res.status, 201);
      const entry = (await res.json()) as { id: string; streamUrl: string };
      assert.match(entry.id, /^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/);
      assert.ok(entry.streamUrl.startsWith(`${balancer}/stream/${entry.id}?t=`), entry.streamUrl);
      assert.ok(
        !entry.streamUrl.includes(UPSTREAM_TOKEN) && !entry.streamUrl.includes('/lib/'),
        'the stream URL shows nothing of the upstream',
      );
      added.push({ id: entry.id, streamUrl: entry.streamUrl, path, data });
    }
    assert.equal(new Set(added.map((a) => a.id)).size, ENTRIES);
    for (const a of added) {
      const got = await play(a.streamUrl);
      assert.equal(got.status, 200);
      assert.equal(sha256(got.body), sha256(a.data), a.path);
    }
    await upstream.waitQuiet(100);
    const total = added.reduce((s, a) => s + a.data.length, 0);
    assert.equal(upstream.bytesSent(), total, 'no file fetched twice, none fetched beyond its size');
    const owners = new Map<number, number>();
    for (const a of added) {
      const h = await holders(a);
      assert.equal(h.length, 1, `${a.path} is stored by exactly one node`);
      owners.set(h[0] ?? -1, (owners.get(h[0] ?? -1) ?? 0) + 1);
    }
    assert.equal(owners.size, 3, `every node owns some entries: ${JSON.stringify([...owners])}`);

    // The same key registered again through any node is the same id (deterministic ids).
    const again = (await (await post(nodeUrl(2), { url: upstream.url('/lib/0.mkv'), sourceId: 'nas', mediaId: '0' })).json()) as {
      id: string;
    };
    assert.equal(again.id, added[0]?.id);
  });

  test('a stream URL handed out by node A plays through HAProxy whichever node owns it', async () => {
    const handed: Added[] = [];
    for (let i = 0; i < 4; i++) {
      const data = makeData(150_000 + i, 2000 + i);
      const path = `/handed/${i}.mkv`;
      upstream.setFile(path, data);
      const entry = (await (await post(nodeUrl(0), { url: upstream.url(path), sourceId: 'nas', mediaId: `h${i}` })).json()) as Added;
      handed.push({ id: entry.id, streamUrl: entry.streamUrl, path, data });
    }
    const servedBy = new Set<string>();
    for (const a of handed) {
      const got = await play(a.streamUrl);
      assert.equal(got.status, 200);
      assert.equal(sha256(got.body), sha256(a.data));
      servedBy.add(got.node ?? '');
    }
    assert.ok(
      [...servedBy].some((n) => n !== 'node1'),
      `some were owned elsewhere and registered from the URL: ${[...servedBy].join(',')}`,
    );
  });

  test('forged or altered stream URLs get 403 MC_ERR_BAD_SIGNATURE and register nothing', async () => {
    const a = added[0];
    assert.ok(a);
    const url = new URL(a.streamUrl);
    const token = url.searchParams.get('t') ?? '';
    const unknownId = 'AAAAAAAAAAAAAAAAAAAAAA';
    const flipped = token.slice(0, 20) + (token[20] === 'A' ? 'B' : 'A') + token.slice(21);
    for (const forged of [
      `${balancer}/stream/${unknownId}`,
      `${balancer}/stream/${unknownId}?t=${token}`,
      `${balancer}/stream/${unknownId}?t=not-a-token`,
      `${balancer}/stream/${a.id}?t=${flipped}`,
    ]) {
      const res = await fetch(forged);
      assert.equal(res.status, 403, forged);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'MC_ERR_BAD_SIGNATURE');
    }
    for (const i of [0, 1, 2]) assert.equal((await fetch(`${nodeUrl(i)}/api/entries/${unknownId}`)).status, 404);
  });

  test('`ls` and `stats` with --server URL,URL,URL merge the three nodes', async () => {
    const servers = [0, 1, 2].map(nodeUrl).join(',');
    const ls = await runCli(['ls', '--json', '--server', servers]);
    assert.equal(ls.code, 0, ls.stderr);
    const listed = JSON.parse(ls.stdout) as Array<{ id: string; node: string; downloadedBytes: number }>;
    assert.equal(listed.length, ENTRIES + 4, 'one line per entry, however many nodes know it');
    for (const a of added) assert.equal(listed.find((e) => e.id === a.id)?.downloadedBytes, a.data.length, 'the owner’s copy is shown');
    const stats = await runCli(['stats', '--json', '--server', servers]);
    assert.equal(stats.code, 0, stats.stderr);
    const merged = JSON.parse(stats.stdout) as { totals: { bytesFromUpstream: number }; nodes: unknown[] };
    assert.equal(merged.nodes.length, 3);
    assert.ok(merged.totals.bytesFromUpstream >= added.reduce((s, a) => s + a.data.length, 0));
    const health = (await (await fetch(`${nodeUrl(1)}/healthz`)).json()) as { node: string };
    assert.equal(health.node, 'node2');
  });

  test('a node SIGKILLed: every entry still plays byte-exact, only its entries are refetched; restarted, they route back with 0 upstream bytes', async () => {
    const owner = new Map<string, number>();
    for (const a of added) owner.set(a.id, (await holders(a))[0] ?? -1);
    const victim = 1;
    const victimEntries = added.filter((a) => owner.get(a.id) === victim);
    assert.ok(victimEntries.length > 0);
    const n = nodes[victim];
    assert.ok(n?.proc);
    n.proc.child.kill('SIGKILL');
    await n.proc.done;
    upstream.resetStats();

    for (const a of added) {
      const got = await play(a.streamUrl);
      assert.equal(got.status, 200, a.path);
      assert.equal(sha256(got.body), sha256(a.data), a.path);
      assert.notEqual(got.node, n.name);
    }
    await upstream.waitQuiet(100);
    for (const a of added) {
      const expected = owner.get(a.id) === victim ? a.data.length : 0;
      assert.equal(upstream.bytesSent(a.path), expected, `${a.path} (owner node${(owner.get(a.id) ?? 0) + 1})`);
    }

    await startNode(victim);
    const probe = victimEntries[0];
    assert.ok(probe);
    for (let i = 0; ; i++) {
      const res = await fetch(`${balancer}/api/entries/${probe.id}`);
      await res.arrayBuffer();
      if (res.headers.get('x-mediacache-node') === n.name) break;
      if (i > 200) throw new Error('the restarted node never got its keys back');
      await sleep(50);
    }
    upstream.resetStats();
    for (const a of added) {
      const got = await play(a.streamUrl);
      assert.equal(sha256(got.body), sha256(a.data), a.path);
      if (owner.get(a.id) === victim) assert.equal(got.node, n.name, 'its keys route back to it');
    }
    await upstream.waitQuiet(100);
    assert.equal(upstream.bytesSent(), 0, 'what it had cached is served again without upstream traffic');
  });
});
