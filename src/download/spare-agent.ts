import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';

/**
 * How long after its last request an origin still gets a spare connection, and how long a spare
 * waits unused before it is closed. A player's next request after a seek comes within this.
 */
const SPARE_WITHIN_MS = 5_000;
const SPARE_IDLE_MS = 5_000;

type ConnectOptions = http.ClientRequestArgs & { signal?: AbortSignal };
type Connect = (options: ConnectOptions, callback?: (err: Error | null, socket: Duplex) => void) => Duplex | null | undefined;

interface Spare {
  socket: Duplex;
  timer: NodeJS.Timeout;
}

/**
 * Keep-alive pooling gives a request an idle connection, but a transfer stopped mid-body (at every
 * seek, every cancel) must destroy its socket: the rest of the reply would otherwise have to be
 * read. The next request to that origin then waited for a new TCP (and TLS) handshake on the
 * player's path — about half a millisecond of bench rows 1–2 on loopback, a round trip or three on
 * a real link. So when a connection that carried a reply closes while its origin is in use, this
 * agent opens one spare connection to the same origin (same options: the checked lookup, TLS
 * name), hands it to the next request that would have connected, and closes it unused after
 * SPARE_IDLE_MS. At most one spare per origin; a spare that closes unused is not replaced.
 */
class SpareConnections {
  private readonly spares = new Map<string, Spare>();
  private readonly lastUse = new Map<string, number>();
  private readonly names = new WeakMap<Duplex, string>();
  private closed = false;

  constructor(
    private readonly agent: http.Agent,
    private readonly connect: Connect,
  ) {}

  /** The agent's createConnection: the origin's spare when it has one, else a new connection. */
  createConnection(options: ConnectOptions, callback?: (err: Error | null, socket: Duplex) => void): Duplex | null | undefined {
    const name = this.agent.getName(options);
    this.noteUse(name);
    const socket = this.take(name) ?? this.connect(options, callback);
    if (socket) {
      this.names.set(socket, name);
      this.replaceWhenClosed(socket, name, options);
    }
    return socket;
  }

  /** A pooled connection was reused: its origin is in use. */
  noteReuse(socket: Duplex): void {
    const name = this.names.get(socket);
    if (name !== undefined) this.noteUse(name);
  }

  /** Origins used within SPARE_WITHIN_MS; older ones are forgotten so the map stays small. */
  private noteUse(name: string): void {
    const now = performance.now();
    if (this.lastUse.size >= 256) for (const [n, at] of this.lastUse) if (now - at > SPARE_WITHIN_MS) this.lastUse.delete(n);
    this.lastUse.delete(name); // most recent last
    this.lastUse.set(name, now);
  }

  close(): void {
    this.closed = true;
    for (const name of [...this.spares.keys()]) this.take(name)?.destroy();
  }

  /** The origin's spare if it is still open. */
  private take(name: string): Duplex | undefined {
    const spare = this.spares.get(name);
    if (!spare) return undefined;
    this.spares.delete(name);
    clearTimeout(spare.timer);
    const { socket } = spare;
    if (socket.destroyed || !socket.writable || socket.readableEnded) return undefined;
    (socket as Socket).ref?.();
    return socket;
  }

  /**
   * When a connection that carried a reply closes while its origin is in use and has no idle
   * connection, open a spare. One that never carried a reply (a spare that expired, a failed
   * connect) is not replaced: nothing loops on an origin that is down.
   */
  private replaceWhenClosed(socket: Duplex, name: string, options: ConnectOptions): void {
    socket.once('close', () => {
      if (this.closed || (socket as Socket).bytesRead === 0 || this.spares.has(name)) return;
      if (performance.now() - (this.lastUse.get(name) ?? -Infinity) > SPARE_WITHIN_MS) return;
      if ((this.agent.freeSockets[name]?.length ?? 0) > 0) return;
      this.open(name, options);
    });
  }

  private open(name: string, options: ConnectOptions): void {
    // The request's own signal may be the one that just aborted: a spare belongs to no request.
    const { signal: _signal, ...rest } = options;
    const socket = this.connect(rest);
    if (!socket) return;
    socket.on('error', () => undefined); // a spare that fails is just not there
    (socket as Socket).unref?.(); // an idle spare does not keep the process alive
    const timer = setTimeout(() => socket.destroy(), SPARE_IDLE_MS).unref();
    socket.once('close', () => {
      if (this.spares.get(name)?.socket !== socket) return;
      clearTimeout(timer);
      this.spares.delete(name);
    });
    this.spares.set(name, { socket, timer });
  }
}

/**
 * Gives `agent` (an http.Agent or https.Agent) a spare connection per origin in use (see
 * SpareConnections): its createConnection, reuseSocket and destroy are wrapped on the instance.
 */
export function withSpares<A extends http.Agent>(agent: A): A {
  const spares = new SpareConnections(agent, agent.createConnection.bind(agent));
  const reuseSocket = agent.reuseSocket.bind(agent);
  const destroy = agent.destroy.bind(agent);
  agent.createConnection = (options: ConnectOptions, callback?: (err: Error | null, socket: Duplex) => void) =>
    spares.createConnection(options, callback);
  agent.reuseSocket = (socket: Duplex, request: http.ClientRequest): void => {
    spares.noteReuse(socket);
    reuseSocket(socket, request);
  };
  agent.destroy = (): void => {
    spares.close();
    destroy();
  };
  return agent;
}
