/**
 * The one place a Redis connection is made (REDIS_URL). Every connection the engine opens comes
 * from `RedisConnections.open(role)`: one for commands that must answer at once (XADD, scripts,
 * checkpoints, XINFO) and one per blocking reader (a blocking XREAD holds its connection until it
 * returns, so nothing else may share it).
 *
 * Reconnection is node-redis's own, with our backoff: 50 ms doubling to 2 s, for ever. The offline
 * queue is off: a command sent while the connection is down fails at once instead of waiting for
 * a reconnection, so a /learn never waits on a dead Redis and nothing is acknowledged that Redis
 * did not take. Each connection's state (up, down since when, why) is kept for the health report.
 */
import { createClient, RESP_TYPES } from 'redis';
import type { Logger } from '../telemetry/logger';

/** The first retry waits this long, each next one twice as long, up to RECONNECT_MAX_MS. */
export const RECONNECT_MIN_MS = 50;
export const RECONNECT_MAX_MS = 2000;

export function reconnectDelay(attempt: number): number {
  return Math.min(RECONNECT_MIN_MS * 2 ** Math.min(attempt, 16), RECONNECT_MAX_MS);
}

type NodeRedisClient = ReturnType<typeof createClient>;

/** One connection: raw commands (bulk strings as Buffers) and its state. */
export interface RedisConnection {
  readonly role: string;
  /** Whether commands can be sent now. */
  readonly isReady: boolean;
  /** Sends one command; bulk strings in the reply are Buffers, maps are objects (RESP2 arrays of pairs as node-redis maps them). */
  send(args: Array<string | Buffer>): Promise<unknown>;
  /** Commands sent together in MULTI/EXEC: atomic on the server. Resolves with each reply (an Error for one that failed). */
  multi(commands: Array<Array<string | Buffer>>): Promise<unknown[]>;
  /** The underlying node-redis client, for modules that adapt it (e.g. redis-ops.ts). */
  readonly client: NodeRedisClient;
  /** Resolves once connected (at once if it is); never rejects while the connection retries. */
  ready(): Promise<void>;
  close(): Promise<void>;
}

export interface ConnectionState {
  role: string;
  connected: boolean;
  /** When it was last lost (ms since the epoch), null if never or up since. */
  down_since_ms: number | null;
  reconnects: number;
  last_error: string | null;
}

export class RedisConnections {
  private readonly all: Connection[] = [];

  constructor(
    readonly url: string,
    private readonly logger: Logger,
  ) {}

  /** Opens a connection and starts connecting; commands fail fast until it is up. */
  open(role: string): RedisConnection {
    const c = new Connection(role, this.url, this.logger);
    this.all.push(c);
    return c;
  }

  /** Every connection's state, for health and system info. */
  states(): ConnectionState[] {
    return this.all.map((c) => c.state());
  }

  /** Whether every connection is up: what the redis health component reports first. */
  get allConnected(): boolean {
    return this.all.every((c) => c.isReady);
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.all.map((c) => c.close()));
  }
}

class Connection implements RedisConnection {
  readonly client: NodeRedisClient;
  private readonly binary: ReturnType<NodeRedisClient['withTypeMapping']>;
  private downSince: number | null = Date.now();
  private reconnects = 0;
  private lastError: string | null = null;
  private closed = false;
  private readonly connecting: Promise<void>;
  private waiters: Array<() => void> = [];

  constructor(
    readonly role: string,
    url: string,
    private readonly logger: Logger,
  ) {
    this.client = createClient({
      url,
      disableOfflineQueue: true,
      socket: { connectTimeout: 2000, reconnectStrategy: (attempt) => (this.closed ? false : reconnectDelay(attempt)) },
    });
    this.binary = this.client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
    this.client.on('error', (err: Error) => {
      // node-redis reports every failed attempt; one line per outage is enough.
      if (this.lastError !== err.message) logger.warn({ role, err: err.message }, 'redis connection error; reconnecting');
      this.lastError = err.message;
    });
    this.client.on('ready', () => {
      if (this.downSince !== null && this.reconnects > 0) logger.info({ role, downMs: Date.now() - this.downSince }, 'redis connection restored');
      this.downSince = null;
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
    this.client.on('end', () => this.markDown());
    this.client.on('reconnecting', () => {
      this.reconnects++;
      this.markDown();
    });
    // connect() rejects only if the first attempt fails and retries are off; ours are on.
    this.connecting = this.client.connect().then(
      () => undefined,
      (err: Error) => {
        this.lastError = err.message;
      },
    );
  }

  private markDown(): void {
    if (this.downSince === null) this.downSince = Date.now();
  }

  get isReady(): boolean {
    return this.client.isReady;
  }

  send(args: Array<string | Buffer>): Promise<unknown> {
    return this.binary.sendCommand(args);
  }

  async multi(commands: Array<Array<string | Buffer>>): Promise<unknown[]> {
    const m = this.binary.multi();
    for (const c of commands) m.addCommand(c);
    return (await m.exec()) as unknown[];
  }

  ready(): Promise<void> {
    if (this.client.isReady) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  state(): ConnectionState {
    return { role: this.role, connected: this.client.isReady, down_since_ms: this.downSince, reconnects: this.reconnects, last_error: this.lastError };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const f of this.waiters) f();
    this.waiters = [];
    await this.connecting;
    try {
      if (this.client.isOpen) this.client.destroy();
    } catch (err) {
      this.logger.debug({ role: this.role, err: (err as Error).message }, 'redis close');
    }
  }
}
