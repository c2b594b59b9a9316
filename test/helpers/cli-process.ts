import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built CLI (`npm test` builds first). */
export const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliProcess {
  child: ChildProcess;
  /** The `http://127.0.0.1:PORT` a `serve` prints once listening; '' if it exits first. */
  url: Promise<string>;
  done: Promise<CliResult>;
}

/** Environment without MEDIACACHE_* from the developer's shell, so tests see only what they set. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MEDIACACHE_')) env[k] = v;
  return { ...env, ...extra };
}

/** Runs `mediacache ARGS` as a real process, collecting its output. */
export function startCli(args: string[], env: Record<string, string> = {}): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let resolveUrl: (url: string) => void = () => undefined;
  const url = new Promise<string>((resolve) => (resolveUrl = resolve));
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
    const m = /http:\/\/127\.0\.0\.1:\d+/.exec(stdout);
    if (m) resolveUrl(m[0]);
  });
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = once(child, 'close').then(([code, signal]) => {
    resolveUrl('');
    return { code: code as number | null, signal: signal as NodeJS.Signals | null, stdout, stderr };
  });
  return { child, url, done };
}

/** Runs `mediacache ARGS` to completion. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return startCli(args, env).done;
}
