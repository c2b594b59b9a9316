/**
 * The CLI's listings over more entries than one page of `GET /api/entries` (500): `ls`, `ls --json`,
 * `status` and `verify` without an id each cover every entry exactly once.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startProxy, type Proxy } from './helpers/harness.js';
import { CLI, runCli } from './helpers/cli-process.js';

const ENTRIES = 1_100; // three pages at the CLI's 500

/** How many times each id occurs as a whole word in `text`. */
function occurrences(text: string, ids: readonly string[]): Map<string, number> {
  const counts = new Map(ids.map((id) => [id, 0]));
  for (const word of text.split(/\s+/)) if (counts.has(word)) counts.set(word, counts.get(word)! + 1);
  return counts;
}

function assertEachOnce(counts: Map<string, number>, what: string): void {
  const wrong = [...counts].filter(([, n]) => n !== 1);
  assert.deepEqual(wrong.slice(0, 5), [], `${what}: ${wrong.length} of ${counts.size} ids not listed exactly once`);
}

describe(`the CLI over ${ENTRIES} entries (several pages)`, () => {
  let proxy: Proxy;
  let ids: string[] = [];

  before(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run 'npm run build' first (npm test does)`);
    proxy = await startProxy();
    for (let i = 0; i < ENTRIES; i++) {
      ids.push(proxy.cache.addEntry({ url: `http://127.0.0.1:9/library/title-${i}.mkv`, sourceId: 'lib', mediaId: `m${i}` }).entry.id);
    }
    assert.equal(new Set(ids).size, ENTRIES);
  });
  after(async () => {
    await proxy.close();
    ids = [];
  });

  test('ls prints the header once and one row per entry', async () => {
    const r = await runCli(['ls', '--server', proxy.server.url]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    assert.equal(lines.filter((l) => /^ID\s+STATE\s/.test(l)).length, 1, 'one header');
    assert.match(lines[0]!, /^ID\s+STATE\s/, 'the header comes first');
    assert.equal(lines.length, ENTRIES + 1);
    assertEachOnce(occurrences(r.stdout, ids), 'ls');
  });

  test('ls --json prints one JSON document holding every entry once', async () => {
    const r = await runCli(['ls', '--json', '--server', proxy.server.url]);
    assert.equal(r.code, 0, r.stderr);
    const parsed = JSON.parse(r.stdout) as Array<{ id: string; state: string; url: string }>;
    assert.ok(Array.isArray(parsed));
    assert.equal(parsed.length, ENTRIES);
    assertEachOnce(occurrences(parsed.map((e) => e.id).join(' '), ids), 'ls --json');
    assert.ok(parsed.every((e) => e.state === 'NotStarted' && e.url.startsWith('http://127.0.0.1:9/library/')));
  });

  test('status without an id prints one line per entry', async () => {
    const r = await runCli(['status', '--server', proxy.server.url]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, ENTRIES);
    assertEachOnce(occurrences(r.stdout, ids), 'status');
  });

  test('status --json without an id prints one JSON document holding every entry once', async () => {
    const r = await runCli(['status', '--json', '--server', proxy.server.url]);
    assert.equal(r.code, 0, r.stderr);
    const parsed = JSON.parse(r.stdout) as Array<{ id: string }>;
    assert.equal(parsed.length, ENTRIES);
    assertEachOnce(occurrences(parsed.map((e) => e.id).join(' '), ids), 'status --json');
  });

  test('verify without an id checks every entry once', async () => {
    const r = await runCli(['verify', '--json', '--server', proxy.server.url]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { entries: number; chunks: number; damaged: unknown[] };
    assert.equal(report.entries, ENTRIES);
    assert.equal(report.chunks, 0);
    assert.deepEqual(report.damaged, []);
  });
});
