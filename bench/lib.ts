/**
 * Bench plumbing: child processes (the proxy, the baseline servers), RSS sampling, fixture
 * files on disk, and small HTTP clients that time body bytes (not headers).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeData } from '../test/helpers/upstream.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const HOST = '127.0.0.1';

/** One row of the table (and of the JSON). */
export interface Row {
  id: number;
  scenario: string;
  proxy: string;
  baseline: string;
  diff: string;
  target: string;
  pass: boolean | null;
  data: Record<string, unknown>;
}

// ---- fixtures -----------------------------------------------------------------------------------

const BLOCK = 64 * 1024 * 1024;

/**
 * A deterministic file of `size` bytes (makeData per 64 MiB block, seeded by block index), kept
 * under the OS temp dir between runs so reruns skip generating gigabytes. Never committed.
 */
export function fixtureFile(name: string, size: number, seed: number): string {
  const dir = path.join(tmpdir(), 'mediacache-bench-data');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}-${size}-${seed}.bin`);
  if (existsSync(file) && statSync(file).size === size) return file;
  const fd = openSync(file, 'w');
  try {
    for (let off = 0, block = 0; off < size; off += BLOCK, block++) {
      const data = makeData(Math.min(BLOCK, size - off), seed * 100_003 + block);
      writeSync(fd, data, 0, data.length, off);
    }
  } finally {
    closeSync(fd);
  }
  return file;
}

// ---- child servers ------------------------------------------------------------------------------

export interface ChildServer {
  readonly url: string;
  readonly pid: number;
  readonly proc: ChildProcess;
  stop(): Promise<void>;
}

/** Spawns a server and resolves once it prints a line containing its `http://HOST:PORT`. */
async function spawnServer(cmd: string, args: string[], label: string, env: NodeJS.ProcessEnv = process.env): Promise<ChildServer> {
  const proc = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
    if (process.env.BENCH_DEBUG) process.stderr.write(d);
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = /http:\/\/[\d.]+:\d+/.exec(out);
      if (m) {
        proc.stdout?.off('data', onData);
        proc.stdout?.resume();
        resolve(m[0]);
      }
    };
    proc.stdout?.on('data', onData);
    proc.once('exit', (code) => reject(new Error(`${label} exited (${code}) before listening: ${stderr}`)));
    proc.once('error', reject);
  });
  return childServer(proc, url, 'SIGTERM', 10_000);
}

export interface ProxyChild extends ChildServer {
  dataDir: string;
  /** Registers a URL and returns the entry id and stream URL. */
  add(url: string): Promise<{ id: string; streamUrl: string }>;
  remove(id: string): Promise<void>;
  entry(id: string): Promise<{ state: string; downloadedBytes: number; totalBytes: number | null }>;
  prefetch(id: string): Promise<void>;
}

/** The node flags `dist/cli.js` sets in its shebang, so the bench runs what `npx mediacache` runs. */
function shebangFlags(): string[] {
  const first = readFileSync(path.join(ROOT, 'dist/cli.js'), 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\/usr\/bin\/env\s+(?:-S\s+)?node\b(.*)$/.exec(first);
  if (!m) throw new Error(`dist/cli.js: unexpected shebang ${first}`);
  return (m[1] ?? '').split(/\s+/).filter(Boolean);
}

/**
 * The proxy under test as its own process (`node <shebang flags> dist/cli.js serve`), so its RSS can
 * be read from /proc and it never shares the bench client's event loop. BENCH_PROXY_NODE_ARGS adds
 * node flags (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") for profiling.
 */
export async function startProxyChild(dataDir: string, extra: string[] = []): Promise<ProxyChild> {
  const nodeArgs = (process.env.BENCH_PROXY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const args = [
    ...shebangFlags(),
    ...nodeArgs,
    path.join(ROOT, 'dist/cli.js'),
    'serve',
    '--host',
    HOST,
    '--port',
    '0',
    '--data-dir',
    dataDir,
    '--log-level',
    'warn',
    ...extra,
  ];
  const server = await spawnServer(process.execPath, args, 'proxy');
  const api = async (method: string, p: string, body?: unknown): Promise<{ status: number; json: unknown }> => {
    const res = await fetch(server.url + p, {
      method,
      // The API takes state changes only as JSON (its CSRF guard), body or not.
      headers: method === 'GET' ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: text ? (JSON.parse(text) as unknown) : null };
  };
  return {
    ...server,
    dataDir,
    async add(url) {
      const { status, json } = await api('POST', '/api/entries', { url });
      if (status !== 201 && status !== 200) throw new Error(`add failed: ${status} ${JSON.stringify(json)}`);
      return json as { id: string; streamUrl: string };
    },
    async remove(id) {
      await api('DELETE', `/api/entries/${id}`);
    },
    async entry(id) {
      return (await api('GET', `/api/entries/${id}`)).json as { state: string; downloadedBytes: number; totalBytes: number | null };
    },
    async prefetch(id) {
      const { status } = await api('POST', `/api/entries/${id}/prefetch`);
      if (status !== 202) throw new Error(`prefetch failed: ${status}`);
    },
  };
}

/** Baseline (a): node:http + fs.createReadStream with 1 MiB reads, in its own process. */
export function startStaticNode(file: string): Promise<ChildServer> {
  return spawnServer(process.execPath, [path.join(ROOT, 'bench/static-server.mjs'), file], 'static node server');
}

/** Installs nginx when missing (root only); returns its binary or null when it cannot be had. */
export function ensureNginx(log: (s: string) => void): string | null {
  const find = (): string | null => {
    for (const p of ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx']) if (existsSync(p)) return p;
    return null;
  };
  const found = find();
  if (found) return found;
  // BENCH_NO_INSTALL=1 (the test suite's smoke run) reports n/a rather than installing.
  if (process.getuid?.() !== 0 || process.env.BENCH_NO_INSTALL) return null;
  log('nginx not found: apt-get install -y nginx ...');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = (): boolean => spawnSync('apt-get', ['install', '-y', '-qq', 'nginx'], { stdio: 'ignore', env }).status === 0;
  if (!install()) {
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env });
    install();
  }
  return find();
}

/** Baseline (b): nginx serving the file statically (sendfile), one worker, bound to loopback. */
export async function startNginx(bin: string, file: string, workDir: string): Promise<ChildServer> {
  const port = await freePort();
  mkdirSync(path.join(workDir, 'logs'), { recursive: true });
  const conf = path.join(workDir, 'nginx.conf');
  const dir = path.dirname(file);
  const { writeFileSync } = await import('node:fs');
  writeFileSync(
    conf,
    `${process.getuid?.() === 0 ? 'user root;\n' : ''}worker_processes 1;
daemon off;
pid ${workDir}/nginx.pid;
error_log ${workDir}/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path ${workDir}/body; proxy_temp_path ${workDir}/proxy;
  fastcgi_temp_path ${workDir}/fcgi; uwsgi_temp_path ${workDir}/uwsgi; scgi_temp_path ${workDir}/scgi;
  types { application/octet-stream bin; }
  server {
    listen ${HOST}:${port};
    root ${dir};
  }
}
`,
  );
  const proc = spawn(bin, ['-p', workDir, '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  const url = `http://${HOST}:${port}`;
  for (let i = 0; i < 100; i++) {
    if (proc.exitCode !== null) break;
    try {
      const res = await fetch(`${url}/${path.basename(file)}`, { method: 'HEAD' });
      if (res.ok) break;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  if (proc.exitCode !== null) throw new Error('nginx exited at start');
  return childServer(proc, url, 'SIGQUIT', 5_000);
}

async function freePort(): Promise<number> {
  const srv = http.createServer();
  srv.listen(0, HOST);
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

// ---- memory ---------------------------------------------------------------------------------------

/** VmRSS and VmHWM (peak) of a process, in bytes, from /proc. */
export function memoryOf(pid: number): { rss: number; hwm: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return null;
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc (clock ticks of 1/100 s). */
export function cpuSecondsOf(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
      .replace(/^.*\) /, '')
      .split(' ');
    // After the command name: state is field 3, so utime (14) and stime (15) sit at 11 and 12.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

// ---- clients --------------------------------------------------------------------------------------

const agentless = new http.Agent({ keepAlive: false });

export interface Timed {
  status: number;
  /** ms from request start until `wantBytes` of body arrived (or the body ended). */
  ms: number;
  bytes: number;
}

/**
 * GETs `url` and measures the time until `wantBytes` of body have arrived (the whole body when
 * undefined), then closes the connection (a player that got what it wanted, or went elsewhere).
 */
export function timeBody(url: string, opts: { range?: string; wantBytes?: number } = {}): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const headers: Record<string, string> = opts.range ? { range: opts.range } : {};
    const req = http.get(url, { headers, agent: agentless }, (res) => {
      let bytes = 0;
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0, bytes });
      };
      res.on('data', (d: Buffer) => {
        bytes += d.length;
        if (opts.wantBytes !== undefined && bytes >= opts.wantBytes) {
          finish();
          req.destroy();
        }
      });
      res.on('end', finish);
      res.on('error', () => finish());
      res.on('close', finish);
    });
    req.on('error', (err) => reject(err));
  });
}

/** Reads a whole body with curl (a lean native client, so the client is rarely the bottleneck). */
export function curlThroughput(url: string): { bytes: number; seconds: number } | null {
  const r = spawnSync('curl', ['-s', '-o', '/dev/null', '-w', '%{size_download} %{time_total} %{http_code}', url], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  const [bytes, seconds, code] = r.stdout.trim().split(' ').map(Number);
  if (code !== 200 || !bytes || !seconds) return null;
  return { bytes, seconds };
}

export function hasCurl(): boolean {
  return spawnSync('curl', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Full read in node when curl is missing. */
export async function nodeThroughput(url: string): Promise<{ bytes: number; seconds: number }> {
  const t = await timeBody(url);
  return { bytes: t.bytes, seconds: t.ms / 1000 };
}

/**
 * Reads a whole body at `rate` bytes/s (by pausing the socket) for `slowMs`, then as fast as it
 * can; calls `tick` often so the caller can sample the server meanwhile.
 */
export function slowRead(url: string, rate: number, slowMs: number): Promise<{ bytes: number; status: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    http
      .get(url, { agent: agentless }, (res) => {
        let bytes = 0;
        res.on('data', (d: Buffer) => {
          bytes += d.length;
          const now = performance.now();
          if (now - t0 > slowMs) return;
          const due = t0 + (bytes / rate) * 1000;
          if (due > now + 1) {
            res.pause();
            setTimeout(() => res.resume(), Math.min(due - now, t0 + slowMs - now));
          }
        });
        res.on('end', () => resolve({ bytes, status: res.statusCode ?? 0 }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** Deterministic PRNG for positions (LCG), so every run seeks the same places. */
export function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.floor((s / 2 ** 32) * n);
  };
}

/** A listening child process that stop() ends with `signal`, then SIGKILL after `graceMs`. */
function childServer(proc: ChildProcess, url: string, signal: NodeJS.Signals, graceMs: number): ChildServer {
  const exited = once(proc, 'exit');
  return {
    url,
    pid: proc.pid ?? 0,
    proc,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
