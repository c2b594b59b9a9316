/**
 * The test upstream (test/helpers/upstream.ts) in a process of its own, for the rows that time a
 * request to the millisecond (1 and 2). In the bench's own process the direct baseline had an
 * advantage no real deployment has: the client and the server shared one event loop, so the
 * reply reached the client without a process waking up, while through the proxy every hop
 * crossed processes. A real upstream is another machine; here it is at least another process, for
 * the direct request and for the proxy's alike.
 *
 * Run as a child (`node --import tsx bench/upstream-child.ts <latencyMs> <bytesPerSecond>`): it
 * prints its origin and answers IPC messages from the parent.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { startUpstream, type RequestLog, type UpstreamFileOptions } from '../test/helpers/upstream.js';

type Request = { op: 'setFileFromDisk'; path: string; file: string; opts: UpstreamFileOptions } | { op: 'requests'; path: string };
type Message = Request & { seq: number };

/** A request the child upstream saw, `receivedAt` as `performance.timeOrigin + performance.now()` there. */
export type RemoteRequestLog = RequestLog;

export interface RemoteUpstream {
  readonly origin: string;
  url(path: string): string;
  setFileFromDisk(path: string, file: string, opts?: UpstreamFileOptions): Promise<void>;
  requests(path: string): Promise<RemoteRequestLog[]>;
  close(): Promise<void>;
}

export async function startUpstreamChild(options: { latencyMs: number; bytesPerSecond: number }): Promise<RemoteUpstream> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [String(options.latencyMs), String(options.bytesPerSecond)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  const [first] = (await once(child, 'message')) as [{ origin: string }];
  const origin = first.origin;
  let seq = 0;
  const pending = new Map<number, (value: unknown) => void>();
  child.on('message', (m: { seq: number; result: unknown }) => {
    pending.get(m.seq)?.(m.result);
    pending.delete(m.seq);
  });
  const call = <T>(message: Request): Promise<T> =>
    new Promise<T>((resolve) => {
      const id = ++seq;
      pending.set(id, resolve as (value: unknown) => void);
      child.send({ ...message, seq: id });
    });
  return {
    origin,
    url: (path) => origin + path,
    setFileFromDisk: (path, file, opts = {}) => call<void>({ op: 'setFileFromDisk', path, file, opts }),
    requests: (path) => call<RemoteRequestLog[]>({ op: 'requests', path }),
    async close() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

async function main(): Promise<void> {
  const [latencyMs, bytesPerSecond] = process.argv.slice(2).map(Number);
  const up = await startUpstream({ latencyMs, bytesPerSecond });
  process.on('message', (m: Message) => {
    let result: unknown = null;
    if (m.op === 'setFileFromDisk') up.setFileFromDisk(m.path, m.file, m.opts);
    else result = up.requests.filter((r) => r.path === m.path).map((r) => ({ ...r, receivedAt: performance.timeOrigin + r.receivedAt }));
    process.send?.({ seq: m.seq, result });
  });
  const stop = (): void => void up.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('disconnect', stop); // the bench ended without closing it
  process.send?.({ origin: up.origin });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
