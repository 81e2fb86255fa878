/**
 * The feedback stream (src/replication/feedback-stream.ts) against a real redis-server: several
 * readers on one stream apply every entry in the same order, their own included; an append
 * resolves with its handler's result once applied here; the dispatch takes new kinds (an async
 * handler holds the next entry back; an unknown kind is skipped, counted); a replica without state
 * starts from the shared checkpoint, and one whose position was trimmed away rebuilds from it; a
 * publish trims only below the previous shared checkpoint; with Redis down an append is refused at
 * once and nothing is acknowledged, and the readers catch up after it returns.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../bench/lib/procs';
import { loadConfig, publicConfig } from '../src/config';
import { FeedbackStream, type StreamPosition } from '../src/replication/feedback-stream';
import { RedisConnections } from '../src/replication/redis-client';
import { fetchSharedCheckpoint, publishSharedCheckpoint } from '../src/replication/shared-checkpoint';
import { EntryDispatch, FIELD_DATA } from '../src/replication/stream-entry';
import { compareStreamIds } from '../src/replication/stream-id';
import { createLogger } from '../src/telemetry/logger';
import { requireRedis, startRedis, type RedisServer } from './helpers/redis';

const redisServer = requireRedis();
const logger = createLogger('silent');

let redis: RedisServer;
let gate = manualGate();

function manualGate(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
const opened: Array<{ stream: FeedbackStream; connections: RedisConnections }> = [];

interface Replica {
  stream: FeedbackStream;
  connections: RedisConnections;
  /** What this replica applied, in order: `<kind>:<payload>`. */
  seen: string[];
  bootstraps: string[];
}

/** A reader with a `note` kind (sync, returns the running count) and a `slow` kind (async). */
function replica(key: string, start: StreamPosition | null = null, shared?: () => Promise<StreamPosition | null>): Replica {
  const connections = new RedisConnections(redis.url, logger);
  const seen: string[] = [];
  const bootstraps: string[] = [];
  const dispatch = new EntryDispatch()
    .handle('note', (e) => {
      seen.push('note:' + e.fields.get(FIELD_DATA)!.toString());
      return seen.length;
    })
    .handle('slow', async (e) => {
      await new Promise((r) => setTimeout(r, 20));
      seen.push('slow:' + e.fields.get(FIELD_DATA)!.toString());
      return 'slow-done';
    })
    // Holds this replica's reader until the test opens the gate: a replica that falls behind.
    .handle('gate', async () => {
      await gate.promise;
      seen.push('gate');
      return 'gate-open';
    });
  const stream = new FeedbackStream({
    key,
    connections,
    dispatch,
    logger,
    start,
    bootstrap: async (reason) => {
      bootstraps.push(reason);
      return shared ? shared() : null;
    },
    blockMs: 200,
  });
  stream.start();
  opened.push({ stream, connections });
  return { stream, connections, seen, bootstraps };
}

async function closeAll(): Promise<void> {
  for (const o of opened.splice(0)) {
    await o.stream.close();
    await o.connections.closeAll();
  }
}

describe.skipIf(redisServer.skip)('the feedback stream on a real redis-server', () => {
  beforeAll(async () => {
    redis = await startRedis(redisServer.get());
  });
  afterAll(async () => {
    await closeAll();
    await redis?.destroy();
  });

  it('applies every entry on every replica in one order, and answers an append with its own entry', async () => {
    const key = 'fs:order';
    const reps = [replica(key), replica(key), replica(key)];
    await waitFor(() => reps.every((r) => r.stream.available), 'connected');
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) => reps[i % 3]!.stream.append(i % 10 === 0 ? 'slow' : 'note', { [FIELD_DATA]: String(i) })),
    );
    // Each append resolved with its own handler's result on the appending replica.
    for (const [i, r] of results.entries()) {
      if (i % 10 === 0) expect(r).toBe('slow-done');
      else expect(typeof r).toBe('number');
    }
    await waitFor(() => reps.every((r) => r.seen.length === 60), 'all replicas applied 60 entries', 20_000, 10);
    expect(reps[1]!.seen).toEqual(reps[0]!.seen);
    expect(reps[2]!.seen).toEqual(reps[0]!.seen);
    expect(new Set(reps[0]!.seen).size).toBe(60);
    for (const r of reps) {
      expect(r.stream.position.ordinal).toBe(60);
      expect(r.stream.lag).toBe(0);
    }
    // An entry of a kind nobody handles (a newer engine's) is skipped and counted; the position moves on.
    await redis.command(['XADD', key, '*', 'k', 'future-kind', 'd', 'x']);
    await reps[0]!.stream.append('note', { [FIELD_DATA]: 'after' });
    await waitFor(() => reps.every((r) => r.seen.at(-1) === 'note:after'), 'the entry after the unknown one');
    for (const r of reps) expect(r.stream.stats().unknown_kinds).toEqual({ 'future-kind': 1 });
    await closeAll();
  });

  it('starts a replica without state from the shared checkpoint, rebuilds one whose position was trimmed, and trims only below the previous checkpoint', async () => {
    const key = 'fs:trim';
    const a = replica(key);
    await waitFor(() => a.stream.available, 'connected');
    for (let i = 0; i < 10; i++) await a.stream.append('note', { [FIELD_DATA]: String(i) });
    const first = { ...a.stream.position };
    expect(await publishSharedCheckpoint(a.stream.commands, key, { ...first, bytes: Buffer.from('state-at-10'), replica: 'a' }, 0)).toBe('published');
    // Not newer: refused; a second publish soon after with min interval: refused as too soon.
    expect(await publishSharedCheckpoint(a.stream.commands, key, { ...first, bytes: Buffer.from('again'), replica: 'a' }, 0)).toBe('not-newer');
    for (let i = 10; i < 20; i++) await a.stream.append('note', { [FIELD_DATA]: String(i) });
    const second = { ...a.stream.position };
    expect(await publishSharedCheckpoint(a.stream.commands, key, { ...second, bytes: Buffer.from('state-at-20'), replica: 'a' }, 60_000)).toBe('too-soon');
    expect(await publishSharedCheckpoint(a.stream.commands, key, { ...second, bytes: Buffer.from('state-at-20'), replica: 'a' }, 0)).toBe('published');
    // Trimmed below the previous checkpoint (entry 10), not below the latest (entry 20).
    expect(Number(await redis.command(['XLEN', key]))).toBe(11);
    const shared = await fetchSharedCheckpoint(a.stream.commands, key);
    expect(shared?.id).toBe(second.id);
    expect(shared?.ordinal).toBe(20);
    expect(shared?.bytes.toString()).toBe('state-at-20');

    // A new replica starts from the shared checkpoint and reads only what follows it.
    const fresh = replica(key, null, async () => ({ id: shared!.id, ordinal: shared!.ordinal }));
    await a.stream.append('note', { [FIELD_DATA]: '20' });
    await waitFor(() => fresh.seen.length === 1, 'the new replica applied the entry after the checkpoint');
    expect(fresh.bootstraps).toEqual(['new']);
    expect(fresh.seen).toEqual(['note:20']);
    expect(fresh.stream.position).toEqual(a.stream.position);

    // A replica restarted from a position that was trimmed away (entry 5; the first 10 are gone) rebuilds.
    const all = (await redis.command(['XRANGE', key, '-', '+'])) as unknown[];
    expect(all.length).toBe(12);
    const stale = replica(key, { id: '1-0', ordinal: 5 }, async () => ({ id: shared!.id, ordinal: shared!.ordinal }));
    await waitFor(() => stale.seen.length === 1, 'the stale replica caught up after its rebuild');
    expect(stale.bootstraps).toEqual(['trimmed']);
    expect(stale.seen).toEqual(['note:20']);
    expect(stale.stream.position).toEqual(a.stream.position);

    // Trimmed away with no shared checkpoint to rebuild from: the reader stops and says why.
    const lost = replica(key, { id: '1-0', ordinal: 5 });
    await waitFor(() => lost.stream.stoppedReason !== null, 'the reader stopped on the gap');
    expect(lost.stream.available).toBe(false);
    await expect(lost.stream.append('note', { [FIELD_DATA]: 'x' })).rejects.toMatchObject({ code: 'FEEDBACK_STREAM_UNAVAILABLE' });
    await closeAll();
  });

  it('refuses appends while Redis is down, acknowledges nothing Redis did not take, and catches up after it returns', async () => {
    const key = 'fs:fault';
    const reps = [replica(key), replica(key)];
    await waitFor(() => reps.every((r) => r.stream.available), 'connected');
    let acked = 0;
    for (let i = 0; i < 5; i++) {
      await reps[i % 2]!.stream.append('note', { [FIELD_DATA]: 'before' + i });
      acked++;
    }
    await redis.stop(true);
    await waitFor(() => reps.every((r) => !r.stream.available), 'both replicas see Redis down');
    // Refused, not queued until Redis returns (the client's offline queue is off).
    await expect(reps[0]!.stream.append('note', { [FIELD_DATA]: 'while-down' })).rejects.toMatchObject({ code: 'FEEDBACK_STREAM_UNAVAILABLE', status: 503 });
    for (const c of reps[0]!.connections.states()) expect(c.connected).toBe(false);
    await redis.restart();
    await waitFor(() => reps.every((r) => r.stream.available), 'both replicas reconnected', 30_000, 20);
    for (let i = 0; i < 5; i++) {
      await reps[i % 2]!.stream.append('note', { [FIELD_DATA]: 'after' + i });
      acked++;
    }
    await waitFor(() => reps.every((r) => r.seen.length === acked), 'both replicas applied every acknowledged entry', 20_000, 10);
    expect(reps[1]!.seen).toEqual(reps[0]!.seen);
    expect(reps[0]!.seen).not.toContain('note:while-down');
    expect(Number(await redis.command(['XLEN', key]))).toBe(acked);
    await closeAll();
  });

  it('says how far behind a replica is (the lag), and catches up', async () => {
    const key = 'fs:lag';
    gate = manualGate();
    const [a, b] = [replica(key), replica(key)];
    await waitFor(() => a.stream.available && b.stream.available, 'connected');
    // Every replica applies the gate entry the same way: its reader stops there until the gate opens.
    const held = b.stream.append('gate', { [FIELD_DATA]: '' });
    const pending = Array.from({ length: 10 }, (_, i) => a.stream.append('note', { [FIELD_DATA]: String(i) }));
    // Both readers sit at the gate; the lag counts the gate and the ten behind it.
    await waitFor(() => a.stream.lag === 11 && b.stream.lag === 11, 'a lag of 11 entries on both replicas', 20_000, 20);
    gate.resolve();
    expect(await held).toBe('gate-open');
    await Promise.all(pending);
    await waitFor(() => a.stream.lag === 0 && b.stream.lag === 0, 'no lag once caught up', 20_000, 20);
    expect(b.seen).toEqual(a.seen);
    expect(a.stream.position.ordinal).toBe(11);
    await closeAll();
  });

  it('takes REDIS_URL only as a redis:// or rediss:// URL, without repeating it in the refusal', () => {
    expect(loadConfig([], { REDIS_URL: 'redis://:pw@127.0.0.1:6379/2' }).redisUrl).toBe('redis://:pw@127.0.0.1:6379/2');
    expect(loadConfig([], {}).redisUrl).toBeNull();
    expect(loadConfig([], {}).feedbackStream).toBe('tradeflow:feedback');
    expect(() => loadConfig([], { REDIS_URL: 'http://secret@host' })).toThrow(/REDIS_URL must look like redis:\/\/.*scheme "http:"/);
    expect(() => loadConfig([], { REDIS_URL: 'not a url secret' })).toThrow(/REDIS_URL.*not a URL/);
    expect(() => loadConfig([], { REDIS_URL: 'http://secret@host' })).not.toThrow(/secret/);
    expect(publicConfig(loadConfig([], { REDIS_URL: 'redis://:pw@h:1' })).REDIS_URL).toBe('<set>');
  });

  it('compares entry ids as numbers', () => {
    expect(compareStreamIds('9-0', '10-0')).toBeLessThan(0);
    expect(compareStreamIds('10-2', '10-10')).toBeLessThan(0);
    expect(compareStreamIds('10-0', '10-0')).toBe(0);
    expect(compareStreamIds('11-0', '10-99')).toBeGreaterThan(0);
  });
});
