/**
 * The Redis side of feedback by id and of the training lease, against a real redis-server: the
 * local store's rules (capacity, oldest first; expired vs unknown; one claim per id; a refused
 * feedback puts the id back) and the lease's (one holder, renewal, expiry, release).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../bench/lib/procs';
import type { StoredPrediction } from '../src/learning/prediction-store';
import { decodePrediction, encodePrediction, RedisPredictionIds } from '../src/replication/prediction-ids';
import { RedisConnections } from '../src/replication/redis-client';
import { redisOps, type RedisOps } from '../src/replication/redis-ops';
import { TrainingLease } from '../src/replication/training-lease';
import { createLogger } from '../src/telemetry/logger';
import { requireRedis, startRedis, type RedisServer } from './helpers/redis';

const redisServer = requireRedis();
const logger = createLogger('silent');

function prediction(seed: number, rows = 1): Omit<StoredPrediction, 'at'> {
  return {
    model: 'ensemble',
    version: 'v' + seed,
    rows,
    features: Float32Array.from({ length: rows * 4 }, (_, i) => seed + i / 8),
    p1: Float32Array.from({ length: rows }, (_, i) => (seed % 10) / 10 + i / 100),
    classes: Uint8Array.from({ length: rows }, (_, i) => (seed + i) % 2),
  };
}

describe.skipIf(redisServer.skip)('Redis prediction ids and training lease', () => {
  let redis: RedisServer;
  let connections: RedisConnections;
  let ops: RedisOps;

  beforeAll(async () => {
    redis = await startRedis(redisServer.get());
    connections = new RedisConnections(redis.url, logger);
    const conn = connections.open('test');
    await conn.ready();
    ops = redisOps(conn);
  }, 30_000);

  afterAll(async () => {
    await connections?.closeAll();
    await redis?.destroy();
  });

  it('encodes a prediction losslessly', () => {
    const p = prediction(7, 3);
    expect(decodePrediction(encodePrediction(p))).toEqual(p);
  });

  it('gives each id to one claim, and back after a refusal', async () => {
    const ids = new RedisPredictionIds(ops, 'ids-once', 100, 60_000);
    await ids.put('a', prediction(1, 2));
    const claims = await Promise.all([ids.claim('a'), ids.claim('a'), ids.claim('a')]);
    expect(claims.filter((c) => typeof c !== 'string')).toHaveLength(1);
    expect(claims.filter((c) => c === 'unknown')).toHaveLength(2);
    const got = claims.find((c) => typeof c !== 'string') as StoredPrediction;
    expect({ ...got, at: undefined }).toEqual({ ...prediction(1, 2), at: undefined });
    await ids.restore('a', got);
    expect(typeof (await ids.claim('a'))).toBe('object');
    expect(await ids.claim('never')).toBe('unknown');
  });

  it('keeps at most the capacity, evicting the oldest', async () => {
    const ids = new RedisPredictionIds(ops, 'ids-cap', 3, 60_000);
    for (let i = 0; i < 5; i++) await ids.put('p' + i, prediction(i));
    expect(Number(await redis.command(['ZCARD', 'ids-cap:predictions']))).toBe(3);
    expect(Number(await redis.command(['EXISTS', 'ids-cap:prediction:p0', 'ids-cap:prediction:p1']))).toBe(0);
    expect(await ids.claim('p0')).toBe('unknown');
    expect(await ids.claim('p1')).toBe('unknown');
    for (const id of ['p2', 'p3', 'p4']) expect(typeof (await ids.claim(id))).toBe('object');
    expect(Number(await redis.command(['ZCARD', 'ids-cap:predictions']))).toBe(0);
    // Predictions of one event-loop pass go in one call; the bound holds for them too.
    await Promise.all(Array.from({ length: 5 }, (_, i) => ids.put('q' + i, prediction(10 + i))));
    expect(Number(await redis.command(['ZCARD', 'ids-cap:predictions']))).toBe(3);
    const claimed = await Promise.all(Array.from({ length: 5 }, (_, i) => ids.claim('q' + i)));
    expect(claimed.filter((c) => typeof c === 'object')).toHaveLength(3);
  });

  it('tells an expired id from an unknown one, by Redis clock', async () => {
    const ids = new RedisPredictionIds(ops, 'ids-ttl', 10, 100);
    await ids.put('old', prediction(3));
    // The key is gone once Redis expired it; the index still remembers the id (as the local store's stale entry).
    await waitFor(async () => Number(await redis.command(['EXISTS', 'ids-ttl:prediction:old'])) === 0, 'the prediction key to expire', 10_000, 10);
    expect(await ids.claim('old')).toBe('expired');
    expect(await ids.claim('old')).toBe('unknown');
  });

  it('keeps nothing with capacity 0', async () => {
    const ids = new RedisPredictionIds(ops, 'ids-zero', 0, 60_000);
    await ids.put('x', prediction(1));
    expect(await ids.claim('x')).toBe('unknown');
    expect(Number(await redis.command(['EXISTS', 'ids-zero:prediction:x']))).toBe(0);
  });

  it('refuses feedback by id with FEEDBACK_STREAM_UNAVAILABLE while Redis is unreachable', async () => {
    const other = await startRedis(redisServer.get());
    const conns = new RedisConnections(other.url, logger);
    try {
      const conn = conns.open('down');
      await conn.ready();
      const ids = new RedisPredictionIds(redisOps(conn), 'ids-down', 10, 60_000);
      await ids.put('a', prediction(1));
      await other.stop(true);
      await waitFor(() => !conn.isReady, 'the connection to notice Redis is gone', 10_000, 10);
      await expect(ids.claim('a')).rejects.toMatchObject({ code: 'FEEDBACK_STREAM_UNAVAILABLE', status: 503 });
      await expect(ids.put('b', prediction(2))).rejects.toThrow();
      // Back: the prediction kept before the outage is there (appendfsync always), once.
      await other.restart();
      await conn.ready();
      expect(typeof (await ids.claim('a'))).toBe('object');
      expect(await ids.claim('a')).toBe('unknown');
    } finally {
      await conns.closeAll();
      await other.destroy();
    }
  }, 30_000);

  it('grants the lease to one holder, renews it, and lets it expire or go', async () => {
    const a = new TrainingLease(ops, 'lease-test', 1000, logger, 'a');
    const b = new TrainingLease(ops, 'lease-test', 1000, logger, 'b');
    const [sa, sb] = await Promise.all([a.tick(), b.tick()]);
    expect([sa.held, sb.held].filter(Boolean)).toHaveLength(1);
    const [holder, other] = sa.held ? [a, b] : [b, a];
    expect((await other.tick()).holder).toBe(holder.holder);
    expect(await redis.command(['GET', 'lease-test'])).toBe(holder.holder);
    // A renewal restarts the key's TTL (shortened here by hand, as if time had passed).
    await redis.command(['PEXPIRE', 'lease-test', '100']);
    expect((await holder.tick()).held).toBe(true);
    expect(Number(await redis.command(['PTTL', 'lease-test']))).toBeGreaterThan(100);
    expect((await other.tick()).held).toBe(false);
    // A holder that stops renewing (dies): the key expires and the other takes it.
    await waitFor(async () => (await other.tick()).held, 'the lease to expire and move', 5000, 20);
    expect(holder.held).toBe(false);
    expect((await holder.tick()).holder).toBe(other.holder);
    // Released at a clean stop: free at once.
    await other.stop();
    expect((await holder.tick()).held).toBe(true);
    await holder.stop();
    expect(await redis.command(['EXISTS', 'lease-test'])).toBe(0);
  });
});
