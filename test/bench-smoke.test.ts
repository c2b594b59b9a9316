import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from './helpers/harness.js';

// Runs `bench/run.ts --quick` end to end against the built CLI (npm test builds first). It checks
// that every row ran and the table and JSON were produced; figures are not judged (no timing).
test('the benchmark runs in quick mode and prints and writes its table', { timeout: 180_000 }, async () => {
  const out = tempDir('mediacache-bench-smoke-');
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick', '--out', out], {
      cwd: path.resolve(import.meta.dirname, '..'),
      env: { ...process.env, BENCH_NO_INSTALL: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 0, `bench exited ${code}\n${stderr.slice(-3000)}`);

    assert.match(stdout, /\| # \| Scenario \| Proxy \| Baseline \| Ratio \/ diff \| Target \| Result \|/);
    // Rows 16–19 (real players) are printed as skipped, with the reason, where a player is missing.
    const ROWS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20];
    for (const row of ROWS) assert.match(stdout, new RegExp(`^\\| ${row} \\| `, 'm'), `row ${row} printed`);
    assert.doesNotMatch(stdout, /\| error \|/);

    const files = readdirSync(out).filter((f) => f.endsWith('.json'));
    assert.equal(files.length, 1);
    const result = JSON.parse(readFileSync(path.join(out, files[0] ?? ''), 'utf8')) as {
      mode: string;
      rows: Array<{ id: number; pass: boolean | null }>;
    };
    assert.equal(result.mode, 'quick');
    assert.deepEqual(
      result.rows.map((r) => r.id),
      ROWS,
    );
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
