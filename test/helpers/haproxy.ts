import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The shipped config: the test runs exactly it, with ports substituted. */
export const SHIPPED_CONFIG = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'deploy', 'haproxy.cfg');

/** Debian's /usr/sbin/haproxy, or one on PATH; undefined when not installed. */
export function findHaproxy(): string | undefined {
  for (const dir of ['/usr/sbin', '/usr/local/sbin', ...(process.env.PATH ?? '').split(':')]) {
    const file = path.join(dir, 'haproxy');
    if (dir && existsSync(file)) return file;
  }
  return undefined;
}

/** docs/deploy/haproxy.cfg with its bind port and its server lines replaced by these loopback ports. */
export function shippedConfigFor(frontendPort: number, nodePorts: readonly number[]): string {
  const text = readFileSync(SHIPPED_CONFIG, 'utf8');
  const servers = nodePorts.map((p, i) => `    server node${i + 1} 127.0.0.1:${p}`).join('\n');
  const out = text
    .replace(/^(\s*bind )\S+$/m, `$1127.0.0.1:${frontendPort}`)
    .replace(/^(\s*server node1 .*\n)(\s*server .*\n)*/m, `${servers}\n`);
  if (!out.includes(`127.0.0.1:${frontendPort}`) || !out.includes(`127.0.0.1:${nodePorts.at(-1) ?? 0}`)) {
    throw new Error('the shipped haproxy.cfg no longer has the bind and server lines this test substitutes');
  }
  return out;
}

export interface Haproxy {
  child: ChildProcess;
  stop(): Promise<void>;
}

/** `haproxy -f cfg -db` in the foreground; stopped with SIGTERM. */
export function startHaproxy(binary: string, dir: string, config: string): Haproxy {
  const file = path.join(dir, 'haproxy.cfg');
  writeFileSync(file, config);
  const child = spawn(binary, ['-f', file, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  child.on('exit', (code) => {
    if (code !== 0 && code !== null && code !== 143) process.stderr.write(`haproxy exited ${code}: ${stderr}\n`);
  });
  return {
    child,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const closed = once(child, 'exit');
      child.kill('SIGTERM');
      await closed;
    },
  };
}
