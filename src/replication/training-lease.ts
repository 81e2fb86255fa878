/**
 * The training lease (issue 13, part 3): one replica at a time runs training runs (API, schedule,
 * drift trigger), so the cluster retrains once, on the replay buffer every replica holds alike.
 *
 * The lease is one Redis key, `SET <key> <holder> NX PX <ttl>`. Every replica tries to take it
 * every ttl/3; its holder renews it (PEXPIRE, only while the key still names it) at the same
 * pace. A holder that dies stops renewing and the key expires after at most `ttl`, when another
 * replica takes it; a holder that stops cleanly deletes it at once. Replicas are equal: whoever
 * finds the key free first holds it.
 *
 * The holder counts itself the holder only until `ttl` after it last sent a take or renewal that
 * succeeded, measured on its own monotonic clock from before the command was sent, so it stops
 * believing it holds the lease no later than Redis lets the key go (a holder cut off from Redis
 * does not train on while another replica has taken over).
 */
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../telemetry/logger';
import { replyText, type RedisOps } from './redis-ops';

/** KEYS: lease. ARGV: holder, ttl ms. Reply: the holder after the attempt ('' when none). */
const TAKE_OR_RENEW = `local h = redis.call('GET', KEYS[1])
if h == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return h end
if h then return h end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]`;

/** KEYS: lease. ARGV: holder. */
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** KEYS: lease. */
const HOLDER = `return redis.call('GET', KEYS[1]) or ''`;

export interface LeaseState {
  held: boolean;
  /** Who holds it, as last seen; null when nobody did or Redis could not be asked. */
  holder: string | null;
}

export class TrainingLease {
  /** performance.now() until which this replica may act as the holder. */
  private validUntil = 0;
  private lastHolder: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private listeners: Array<(held: boolean) => void> = [];
  /** What listeners were last told: the lease can also run out between two ticks. */
  private told = false;

  constructor(
    private readonly redis: RedisOps,
    private readonly key: string,
    readonly ttlMs: number,
    private readonly logger: Logger,
    /** Names this replica in the lease and in refusals: host name (the pod's, on Kubernetes), pid and a nonce. */
    readonly holder: string = `${hostname()}/${process.pid}/${randomBytes(3).toString('hex')}`,
  ) {}

  get held(): boolean {
    return performance.now() < this.validUntil;
  }

  /** Called with true when this replica takes the lease, false when it loses it. */
  onChange(listener: (held: boolean) => void): void {
    this.listeners.push(listener);
  }

  /** Takes or renews the lease at once, then every ttl/3. */
  start(): void {
    void this.tick();
    this.timer = setInterval(() => void this.tick(), Math.max(50, Math.floor(this.ttlMs / 3)));
    this.timer.unref();
  }

  /** One take-or-renew; what it found. Never rejects: Redis unreachable reads as "not held". */
  async tick(): Promise<LeaseState> {
    if (this.stopped) return { held: false, holder: null };
    const wasHeld = this.held;
    const sentAt = performance.now();
    let holder: string | null;
    try {
      holder = replyText(await this.redis.script(TAKE_OR_RENEW, [this.key], [this.holder, String(this.ttlMs)])) || null;
    } catch (err) {
      if (wasHeld) this.logger.warn({ err: (err as Error).message }, 'training lease: cannot renew it; training stops here when it runs out');
      holder = null;
    }
    if (holder === this.holder && !this.stopped) this.validUntil = sentAt + this.ttlMs;
    else if (holder !== null) this.validUntil = 0;
    this.lastHolder = holder;
    const held = this.held;
    if (held !== this.told) {
      this.told = held;
      this.logger.info({ holder: this.holder, held }, held ? 'training lease taken: training runs on this replica' : 'training lease lost');
      for (const l of this.listeners) l(held);
    }
    return { held, holder };
  }

  /** Who holds the lease now (asks Redis), for refusals that name the holder. */
  async current(): Promise<LeaseState> {
    if (this.held) return { held: true, holder: this.holder };
    try {
      const h = replyText(await this.redis.script(HOLDER, [this.key], []));
      this.lastHolder = h || null;
    } catch {
      return { held: false, holder: this.lastHolder };
    }
    return { held: false, holder: this.lastHolder };
  }

  /** Gives the lease up (at shutdown), so another replica takes it at its next attempt. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.validUntil = 0;
    if (this.told) for (const l of this.listeners) l(false);
    this.told = false;
    try {
      await this.redis.script(RELEASE, [this.key], [this.holder]);
    } catch {
      // Unreachable: the key expires by itself.
    }
  }
}
