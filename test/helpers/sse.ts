import http from 'node:http';

export interface SseMessage {
  id: string;
  event: string;
  data: unknown;
  /** The sequence number from the id (`<epoch>:<seq>`). */
  seq: number;
  /** When the client parsed it (performance.now()). */
  at: number;
}

/** A real event-stream client over a socket: parses frames as they arrive and keeps every message. */
export interface SseClient {
  readonly status: number;
  readonly messages: SseMessage[];
  /** Resolves when the stream ended (closed by either side). */
  readonly ended: Promise<void>;
  /** Resolves with the first message (from now on or already received) that matches. */
  waitFor(match: (m: SseMessage) => boolean, timeoutMs?: number): Promise<SseMessage>;
  /** With `paused`: starts reading (until then the socket's buffers fill and the server's queue grows). */
  resume(): void;
  close(): void;
}

/** Connects; with `paused` nothing is read until resume(): a client that stalls. */
export function connectSse(url: string, headers: Record<string, string> = {}, options: { paused?: boolean } = {}): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      const messages: SseMessage[] = [];
      const waiters = new Set<() => void>();
      let buffer = '';
      let resolveEnded: () => void = () => undefined;
      const ended = new Promise<void>((r) => (resolveEnded = r));
      res.setEncoding('utf8');
      const onData = (text: string): void => {
        buffer += text;
        for (let cut = buffer.indexOf('\n\n'); cut >= 0; cut = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const fields: Record<string, string> = {};
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const colon = line.indexOf(':');
            fields[line.slice(0, colon)] = line.slice(colon + 1).replace(/^ /, '');
          }
          if (fields.event === undefined) continue;
          const id = fields.id ?? '';
          messages.push({
            id,
            event: fields.event,
            data: JSON.parse(fields.data ?? 'null'),
            seq: Number(id.split(':')[1]),
            at: performance.now(),
          });
        }
        for (const wake of [...waiters]) wake();
      };
      if (options.paused) res.pause();
      else res.on('data', onData);
      const finish = (): void => {
        resolveEnded();
        for (const wake of [...waiters]) wake();
      };
      res.on('end', finish);
      res.on('close', finish);
      res.on('error', finish);
      let closed = false;
      res.on('close', () => (closed = true));
      resolve({
        status: res.statusCode ?? 0,
        messages,
        ended,
        waitFor(match, timeoutMs = 30_000) {
          return new Promise((ok, fail) => {
            let seen = 0;
            const check = (): void => {
              for (; seen < messages.length; seen++) {
                const m = messages[seen] as SseMessage;
                if (match(m)) return done(() => ok(m));
              }
              if (closed) done(() => fail(new Error('stream ended before the message arrived')));
            };
            const timer = setTimeout(() => done(() => fail(new Error('timed out waiting for a message'))), timeoutMs);
            const done = (then: () => void): void => {
              clearTimeout(timer);
              waiters.delete(check);
              then();
            };
            waiters.add(check);
            check();
          });
        },
        resume() {
          res.on('data', onData);
          res.resume();
        },
        close() {
          req.destroy();
        },
      });
    });
    req.on('error', reject);
  });
}
