/**
 * Issue 13, parts 2 and 3, on real parts: a real redis-server (appendfsync always) and three
 * engine replicas as child processes (the built CLI), all on the same feedback stream.
 *
 * - Feedback by id through another replica than the prediction's; a second feedback for the id,
 *   on a third replica, is refused; of two sent at once to two replicas, exactly one is learned.
 * - A model uploaded to a replica that does not hold the training lease serves on all three (the
 *   same version named in their answers); a rollback sent to another goes back on all three.
 * - POST /train: the lease holder starts the run, the others answer 409 NOT_TRAINING_LEADER
 *   naming it; the promoted version serves on all three.
 * - The holder killed with kill -9: its lease expires (TRAIN_LEASE_S) and another replica trains;
 *   a fourth replica started afterwards serves the version that run promoted.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEngine, stopEngine, type EngineProc } from '../bench/lib/engine-proc';
import { waitFor } from '../bench/lib/procs';
import { FEATURE_NAMES } from '../src/training/features';
import { writeEnsembleOnnx } from '../src/training/onnx-writer';
import { request, type Reply } from './helpers/engine';
import { requireRedis, startRedis, type RedisServer } from './helpers/redis';
import { requireBuilt } from './helpers/requirements';

const F = 16;
const redisServer = requireRedis();
const built = requireBuilt('src/cli/main.js');
const STREAM = 'test:replica-models';

let redis: RedisServer;
let workDir: string;
const replicas: EngineProc[] = [];

/** A small valid ensemble; the seed makes it a distinct version. */
function variant(seed: number): Uint8Array {
  let s = seed;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  return writeEnsembleOnnx({
    featureNames: FEATURE_NAMES,
    standardizer: { mean: new Float64Array(F), std: new Float64Array(F).fill(1) },
    logreg: { weights: Float64Array.from({ length: F }, rnd), bias: rnd() },
  });
}

function row(i: number): number[] {
  return Array.from({ length: F }, (_, j) => Math.sin(i * 12.9898 + j * 78.233) * 0.5);
}

const JSON_HEADERS = { 'content-type': 'application/json' };

function post(e: EngineProc, p: string, body: unknown): Promise<Reply> {
  return request(e.port, 'POST', p, JSON.stringify(body), JSON_HEADERS);
}

async function servingVersion(e: EngineProc): Promise<string> {
  const r = await request(e.port, 'GET', '/models/ensemble');
  return (r.json() as { version: string }).version;
}

async function answeredVersion(e: EngineProc, i: number): Promise<string> {
  const r = await post(e, '/predict', { features: row(i), model: 'ensemble' });
  expect(r.status).toBe(200);
  return (r.json() as { version: string }).version;
}

async function allServe(version: string): Promise<void> {
  await waitFor(async () => (await Promise.all(replicas.filter((e) => !e.child.exited).map(servingVersion))).every((v) => v === version), `every replica serving ${version}`, 60_000, 50);
  for (const [k, e] of replicas.entries()) if (!e.child.exited) expect(await answeredVersion(e, k)).toBe(version);
}

/** The feedback stream entry at which a replica swapped to its serving version (its card says). */
async function servingEntry(e: EngineProc): Promise<string | undefined> {
  const versions = (await request(e.port, 'GET', '/models/ensemble')).json().versions as Array<{ serving: boolean; card: { stream_entry?: string } | null }>;
  return versions.find((v) => v.serving)?.card?.stream_entry;
}

async function leaseHolder(): Promise<string | null> {
  const v = await redis.command(['GET', `${STREAM}:train-lease`]);
  return v === null ? null : String(v);
}

/** The replica whose pid the lease names (holder = host/pid/nonce). */
function replicaOf(holder: string): EngineProc {
  const pid = Number(holder.split('/')[1]);
  const e = replicas.find((r) => r.child.proc.pid === pid);
  if (!e) throw new Error(`no replica has pid ${pid} (holder ${holder})`);
  return e;
}

function startReplica(name: string): Promise<EngineProc> {
  return startEngine(
    name,
    { REDIS_URL: redis.url, FEEDBACK_STREAM: STREAM, WORKERS: '1', TRAIN_LEASE_S: '4', TRAIN_MIN_ROWS: '50', TRAIN_INTERVAL: '0', CHECKPOINT_INTERVAL_S: '0' },
    workDir,
  );
}

describe.skipIf(redisServer.skip || built.skip)('replicas: feedback by id, one trainer, one model history', () => {
  beforeAll(async () => {
    redisServer.get();
    built.get();
    workDir = mkdtempSync(path.join(tmpdir(), 'tradeflow-replica-models-'));
    redis = await startRedis(redisServer.value!);
    replicas.push(...(await Promise.all(['replica-a', 'replica-b', 'replica-c'].map(startReplica))));
    await waitFor(async () => (await leaseHolder()) !== null, 'a replica to take the training lease', 20_000, 20);
  }, 180_000);

  afterAll(async () => {
    await Promise.all(replicas.map((e) => stopEngine(e)));
    await redis?.destroy();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  }, 60_000);

  it('takes feedback by id on any replica, once across the cluster', async () => {
    const [a, b, c] = replicas as [EngineProc, EngineProc, EngineProc];
    const p = await post(a, '/predict', { features: row(1), id: 'order-1' });
    expect(p.status).toBe(200);
    const first = await post(b, '/learn', { id: 'order-1', label: 1 });
    expect(first.status).toBe(202);
    const again = await post(c, '/learn', { id: 'order-1', label: 0 });
    expect(again.status).toBe(404);
    expect(again.json().error.code).toBe('PREDICTION_ID_NOT_FOUND');
    const unknown = await post(a, '/learn', { id: 'never-predicted', label: 1 });
    expect(unknown.json().error.code).toBe('PREDICTION_ID_NOT_FOUND');
    // Two feedbacks for one id at once, on two replicas: exactly one is learned.
    const multi = await post(c, '/predict', { instances: [row(2), row(3)], id: 'order-2' });
    expect(multi.status).toBe(200);
    const racing = await Promise.all([post(a, '/learn', { id: 'order-2', labels: [0, 1] }), post(b, '/learn', { id: 'order-2', labels: [1, 0] })]);
    expect(racing.map((r) => r.status).sort()).toEqual([202, 404]);
    // A malformed feedback leaves the id for a correct one.
    await post(b, '/predict', { features: row(4), id: 'order-3' });
    const wrong = await post(c, '/learn', { id: 'order-3', labels: [0, 1] });
    expect(wrong.status).toBe(400);
    expect((await post(a, '/learn', { id: 'order-3', label: 0 })).status).toBe(202);
    // Every replica applied the same feedback: the same sgd state.
    await waitFor(async () => new Set(await Promise.all(replicas.map(async (e) => JSON.stringify((await request(e.port, 'GET', '/models/sgd')).json().weights)))).size === 1, 'identical sgd weights', 20_000, 20);
  }, 60_000);

  it('serves a model uploaded to a replica that does not train on all three, and rolls back everywhere', async () => {
    const holder = replicaOf((await leaseHolder())!);
    const other = replicas.find((e) => e !== holder)!;
    const before = await servingVersion(other);
    const up = await request(other.port, 'POST', '/models/ensemble/load', Buffer.from(variant(11)), { 'content-type': 'application/octet-stream' });
    expect(up.status, up.body.toString()).toBe(200);
    const version = (up.json() as { version: string }).version;
    expect(version).not.toBe(before);
    // Published once: the bytes in Redis, listed among the versions kept there.
    expect(await redis.command(['EXISTS', `${STREAM}:model:ensemble:${version}`])).toBe(1);
    expect(((await redis.command(['LRANGE', `${STREAM}:model-versions:ensemble`, '0', '-1'])) as string[]).map(String)[0]).toBe(version);
    await allServe(version);
    // Every replica swapped when it applied the same entry of the stream.
    const entries = await Promise.all(replicas.map(servingEntry));
    expect(entries[0]).toMatch(/^\d+-\d+$/);
    expect(new Set(entries).size).toBe(1);
    for (const e of replicas) {
      const lease = (await request(e.port, 'GET', '/monitoring/system/info')).json().training_lease as { holder: string; held: boolean };
      expect(lease.held).toBe(e === holder);
    }
    // A file every replica would refuse is refused once, at the origin, and nothing changes.
    const bad = await request(other.port, 'POST', '/models/ensemble/load', Buffer.from('not onnx'), { 'content-type': 'application/octet-stream' });
    expect(bad.status).toBe(422);
    const third = replicas.find((e) => e !== holder && e !== other)!;
    const back = await request(third.port, 'POST', '/models/ensemble/rollback', '', JSON_HEADERS);
    expect(back.status, back.body.toString()).toBe(200);
    expect(back.json().version).toBe(before);
    await allServe(before);
  }, 120_000);

  it('trains on the lease holder only, and the promoted version serves on all three', async () => {
    const learn = await post(replicas[0]!, '/learn', { instances: Array.from({ length: 200 }, (_, i) => row(100 + i)), labels: Array.from({ length: 200 }, (_, i) => (row(100 + i)[0]! + row(100 + i)[1]! > 0 ? 1 : 0)) });
    expect(learn.status).toBe(202);
    const holder = replicaOf((await leaseHolder())!);
    // Every replica has applied the rows before the run starts (the holder trains on its own buffer).
    await waitFor(async () => ((await request(holder.port, 'GET', '/monitoring/system/info')).json().learning.replay_buffer_rows as number) >= 200, 'the rows applied on the holder', 20_000, 20);
    const answers = await Promise.all(replicas.map((e) => post(e, '/train', { force: true })));
    const started = answers.filter((r) => r.status === 202);
    expect(started).toHaveLength(1);
    expect(replicas[answers.indexOf(started[0]!)]).toBe(holder);
    for (const r of answers.filter((x) => x.status !== 202)) {
      expect(r.status).toBe(409);
      expect(r.json().error.code).toBe('NOT_TRAINING_LEADER');
      expect(r.headers['x-training-leader']).toBe(await leaseHolder());
    }
    const id = started[0]!.json().id as string;
    let run: { status: string; promoted_version: string | null; reason: string | null } = { status: 'running', promoted_version: null, reason: null };
    await waitFor(async () => (run = (await request(holder.port, 'GET', `/train/${id}`)).json()).status !== 'running', 'the training run to end', 90_000, 100);
    expect(run.status, run.reason ?? '').toBe('promoted');
    await allServe(run.promoted_version!);
    expect(new Set(await Promise.all(replicas.map(servingEntry))).size).toBe(1);
  }, 150_000);

  it('moves the lease when its holder is killed with kill -9', async () => {
    const holderName = (await leaseHolder())!;
    const holder = replicaOf(holderName);
    process.kill(holder.child.proc.pid!, 'SIGKILL');
    await holder.child.exitPromise;
    const alive = replicas.filter((e) => e !== holder);
    // Until the key expires, nobody else may train; then one replica takes it.
    await waitFor(async () => {
      const h = await leaseHolder();
      return h !== null && h !== holderName;
    }, 'the lease to expire and move', 30_000, 50);
    const next = replicaOf((await leaseHolder())!);
    expect(alive).toContain(next);
    const r = await post(next, '/train', { force: true });
    expect(r.status, r.body.toString()).toBe(202);
    const others = alive.filter((e) => e !== next);
    for (const o of others) expect((await post(o, '/train', {})).json().error.code).toBe('NOT_TRAINING_LEADER');
    const id = r.json().id as string;
    let run: { status: string; promoted_version: string | null; reason: string | null } = { status: 'running', promoted_version: null, reason: null };
    await waitFor(async () => (run = (await request(next.port, 'GET', `/train/${id}`)).json()).status !== 'running', 'the new holder\'s run to end', 90_000, 100);
    expect(run.status, run.reason ?? '').toBe('promoted');
    await allServe(run.promoted_version!);
    // A replica that joins now, with no state of its own, reads the model history and serves the same version.
    replicas.push(await startReplica('replica-d'));
    await allServe(run.promoted_version!);
  }, 150_000);
});

describe.skipIf(redisServer.skip || built.skip)('replicas: a replica starting from a shared checkpoint serves the version of that position', () => {
  const KEY = 'test:model-catch-up';
  const started: EngineProc[] = [];
  let server: RedisServer;
  let dir: string;

  const replica = (name: string): Promise<EngineProc> =>
    startEngine(name, { REDIS_URL: server.url, FEEDBACK_STREAM: KEY, WORKERS: '1', TRAIN_INTERVAL: '0', CHECKPOINT_INTERVAL_S: '1', SHARED_CHECKPOINT_INTERVAL_S: '1' }, dir).then((e) => {
      started.push(e);
      return e;
    });

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'tradeflow-model-catch-up-'));
    server = await startRedis(redisServer.get());
  }, 60_000);

  afterAll(async () => {
    await Promise.all(started.map((e) => stopEngine(e)));
    await server?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('catches up with a model change trimmed from the stream', async () => {
    const first = await replica('catch-up-a');
    const up = await request(first.port, 'POST', '/models/ensemble/load', Buffer.from(variant(21)), { 'content-type': 'application/octet-stream' });
    expect(up.status, up.body.toString()).toBe(200);
    const version = (up.json() as { version: string }).version;
    // The model entry is the stream's first: keep feedback coming until checkpoints were shared
    // and the stream trimmed past it, so a new replica never reads it.
    let i = 0;
    await waitFor(
      async () => {
        expect((await post(first, '/learn', { features: row(1000 + i), label: i % 2 })).status).toBe(202);
        i++;
        const head = (await server.command(['XRANGE', KEY, '-', '+', 'COUNT', '1'])) as Array<[string, string[]]>;
        const fields = head[0]![1].map(String);
        return fields[fields.indexOf('k') + 1] !== 'model';
      },
      'the stream trimmed past the model entry',
      60_000,
      100,
    );
    const late = await replica('catch-up-b');
    await waitFor(async () => (await servingVersion(late)) === version, `the late replica serving ${version}`, 60_000, 50);
    expect(await answeredVersion(late, 1)).toBe(version);
  }, 120_000);
});
