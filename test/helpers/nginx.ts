/**
 * A real nginx (the Debian package's binary) serving one directory on a free loopback port, for the
 * differential conformance suite: the test writes the config, starts nginx in the foreground as a
 * child process and stops it. Nothing outside the temp dir is read or written.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, chmodSync, constants, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir } from './harness.js';

const CANDIDATES = [process.env.NGINX_BIN, '/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx'];

/** The nginx binary, or undefined when none is installed. `NGINX_BIN` overrides the usual places. */
export function findNginx(): string | undefined {
  for (const candidate of CANDIDATES) {
    if (!candidate) continue;
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface NginxOptions {
  /** Directory served at `/` (must be readable by nginx's worker). */
  root: string;
  /** Extra directives inside `server { }`. */
  serverDirectives?: string;
}

export interface Nginx {
  readonly origin: string;
  url(p: string): string;
  /** The temp dir holding config, pid, logs and temp paths. */
  readonly dir: string;
  /** The error log so far (for failure messages). */
  errorLog(): string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  server.close();
  await once(server, 'close');
  return port;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function config(dir: string, port: number, options: NginxOptions): string {
  const tmp = (name: string): string => path.join(dir, 'temp', name);
  // As root the master would switch workers to the build's default user, which may not be able to
  // read a 0700 temp dir; staying root is harmless for a test server bound to 127.0.0.1.
  const user = process.getuid?.() === 0 ? 'user root root;\n' : '';
  return `${user}daemon off;
master_process on;
worker_processes 1;
pid ${path.join(dir, 'nginx.pid')};
error_log ${path.join(dir, 'error.log')} warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${tmp('body')};
  proxy_temp_path ${tmp('proxy')};
  fastcgi_temp_path ${tmp('fastcgi')};
  uwsgi_temp_path ${tmp('uwsgi')};
  scgi_temp_path ${tmp('scgi')};
  types { video/mp4 mp4; }
  default_type application/octet-stream;
  sendfile off;
  keepalive_timeout 5s;
  server {
    listen 127.0.0.1:${port};
    server_name localhost;
    root ${options.root};
    etag on;
${options.serverDirectives ?? ''}
  }
}
`;
}

/** Starts nginx with a config written into a fresh temp dir; resolves once it accepts connections. */
export async function startNginx(binary: string, options: NginxOptions): Promise<Nginx> {
  const dir = tempDir('mediacache-nginx-');
  mkdirSync(path.join(dir, 'temp'));
  chmodSync(dir, 0o755);
  const errorLogPath = path.join(dir, 'error.log');
  const errorLog = (): string => {
    try {
      return readFileSync(errorLogPath, 'utf8');
    } catch {
      return '';
    }
  };

  // A port found free can be taken by someone else before nginx binds it: try a few.
  let lastError = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const confPath = path.join(dir, 'nginx.conf');
    writeFileSync(confPath, config(dir, port, options));
    // -e: the error log before the config is read (else the build's default path is opened).
    const child: ChildProcess = spawn(binary, ['-p', dir, '-c', confPath, '-e', errorLogPath], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    let exited = false;
    const exit = once(child, 'exit').then(() => {
      exited = true;
    });
    const deadline = performance.now() + 5000;
    while (!exited && performance.now() < deadline) {
      if (await canConnect(port)) {
        const origin = `http://127.0.0.1:${port}`;
        let stopping: Promise<void> | undefined;
        return {
          origin,
          dir,
          url: (p) => origin + p,
          errorLog,
          stop() {
            stopping ??= (async () => {
              if (!exited) {
                // SIGQUIT would wait for keep-alive connections; SIGTERM is nginx's fast shutdown.
                child.kill('SIGTERM');
                const timer = sleep(5000).then(() => {
                  if (!exited) child.kill('SIGKILL');
                });
                await Promise.race([exit, timer]);
                await exit;
              }
              rmSync(dir, { recursive: true, force: true });
            })();
            return stopping;
          },
        };
      }
      await sleep(20);
    }
    if (!exited) {
      child.kill('SIGKILL');
      await exit;
    }
    lastError = `${stderr}\n${errorLog()}`.trim();
    // Only an address already in use is worth another port.
    if (!/Address already in use/i.test(lastError)) break;
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error(`nginx did not start: ${lastError || 'no output'}`);
}
