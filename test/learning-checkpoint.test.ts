/**
 * Checkpoints of the online learner (src/learning/online.ts with checkpoint-writer.ts): what the
 * main thread does during one (issue 12, defect 8: the replay buffer's JSON on the main thread
 * stalled /learn), state directories written by an older engine (format 1), and failures that must
 * leave the previous checkpoint and the feedback log as they were.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DriftMonitor } from '../src/drift/monitor';
import { crc32 } from '../src/io/crc32';
import { DISK_FAULTS_ENV } from '../src/io/disk-faults';
import { decodeCheckpoint } from '../src/learning/checkpoint';
import { CHECKPOINT_NAME, OnlineLearning } from '../src/learning/online';
import { QualityWindow } from '../src/learning/quality-window';
import { DEFAULT_SGD_OPTIONS, validateSgdOptions } from '../src/learning/sgd';
import { makeRows } from './helpers/engine';
import { requireBuilt } from './helpers/requirements';

const F = 16;
const dirs: string[] = [];
const open: OnlineLearning[] = [];
const worker = requireBuilt('workers/checkpoint.js');

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tradeflow-learning-cp-'));
  dirs.push(d);
  return d;
}

afterEach(async () => {
  vi.restoreAllMocks();
  delete process.env[DISK_FAULTS_ENV];
  for (const l of open.splice(0)) await l.close().catch(() => undefined);
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

async function learner(stateDir: string, replayCapacity = 50_000): Promise<OnlineLearning> {
  worker.get();
  const l = await OnlineLearning.open({
    stateDir,
    sgd: validateSgdOptions({ features: F, ...DEFAULT_SGD_OPTIONS }),
    primaryModel: 'sgd',
    quality: new Map([['sgd', new QualityWindow(1000, 100)]]),
    drift: new DriftMonitor({ detectors: ['ddm', 'adwin', 'kswin'], realInput: 'error' }),
    replayCapacity,
    commitIntervalMs: 0,
    durable: true,
    maxPendingBytes: 32 * 1024 * 1024,
    checkpointIntervalMs: 0,
  });
  open.push(l);
  return l;
}

/** `n` rows of feedback in requests of `per` rows, seeded. */
async function feed(l: OnlineLearning, n: number, per = 2048, seed = 5): Promise<void> {
  const x = makeRows(n, F, seed);
  for (let at = 0; at < n; at += per) {
    const rows = Math.min(per, n - at);
    const labels = Uint8Array.from({ length: rows }, (_, i) => ((at + i) * 2654435761) % 7 < 3 ? 1 : 0);
    await l.submit({ kind: 'feedback', rows, features: x.slice(at * F, (at + rows) * F), labels, served: null });
  }
}

/** The weights the workers score with, and their version. */
function served(l: OnlineLearning): { weights: number[]; bias: number; version: number } {
  const w = new Float64Array(F);
  const { bias, version } = l.weights.read(w);
  return { weights: Array.from(w), bias, version };
}

function segments(stateDir: string): string[] {
  return fs.readdirSync(path.join(stateDir, 'feedback')).filter((f) => f.endsWith('.log')).sort();
}

describe('learning checkpoints', () => {
  it('keep the replay buffer out of the main thread\'s JSON: it is written as raw float32 by the writer thread', async () => {
    const dir = tempDir();
    const l = await learner(dir);
    await feed(l, 50_000);
    expect(l.replay.size).toBe(50_000);
    const held = l.replay.toArrays();

    // Everything JSON.stringify makes on this thread while the checkpoint runs. Before the fix it
    // was the whole state, over 4 MB of it the buffer's base64.
    let stringified = 0;
    const real = JSON.stringify;
    vi.spyOn(JSON, 'stringify').mockImplementation(function (this: unknown, ...args: Parameters<typeof JSON.stringify>) {
      const out = real.apply(JSON, args);
      stringified += out?.length ?? 0;
      return out;
    });
    await l.checkpoint();
    vi.restoreAllMocks();
    const rowBytes = held.x.byteLength;
    expect(rowBytes).toBe(50_000 * F * 4);
    expect(stringified).toBeLessThan(64 * 1024);
    expect(l.stats().checkpoints).toMatchObject({ written: 1, failed: 0, last_error: null });

    // On disk: format 2, the rows as the buffer holds them, oldest first.
    const bytes = fs.readFileSync(path.join(dir, CHECKPOINT_NAME));
    expect(JSON.parse(bytes.subarray(0, bytes.indexOf(0x0a)).toString()).version).toBe(2);
    expect(bytes.length).toBeLessThan(rowBytes + 50_000 + 64 * 1024);
    const state = decodeCheckpoint<{ replay: { rows: Float32Array; labels: Uint8Array; size: number } }>(bytes, 'cp');
    expect(state.replay.size).toBe(50_000);
    expect(Buffer.from(state.replay.rows.buffer).equals(Buffer.from(held.x.buffer))).toBe(true);
    expect(Buffer.from(state.replay.labels).equals(Buffer.from(held.y))).toBe(true);

    // The buffer the checkpoint took was a copy: the learner goes on, and a restart restores it.
    await feed(l, 100, 100, 9);
    const after = l.replay.toArrays();
    const weights = served(l);
    await l.close();
    const again = await learner(dir);
    expect(Buffer.from(again.replay.toArrays().x.buffer).equals(Buffer.from(after.x.buffer))).toBe(true);
    expect(served(again)).toEqual(weights);
  });

  it('starts from a format 1 checkpoint (replay buffer as base64 JSON) and writes format 2 after', async () => {
    const dir = tempDir();
    const first = await learner(dir, 1000);
    await feed(first, 1500, 500);
    const held = first.replay.toArrays();
    const weights = served(first);
    const updates = first.learner.updates;
    await first.close();

    // The same state as an older engine wrote it: one JSON document, the arrays base64.
    const file = path.join(dir, CHECKPOINT_NAME);
    const v2 = decodeCheckpoint<Record<string, any>>(fs.readFileSync(file), file);
    v2.replay = { ...v2.replay, rows: Buffer.from(v2.replay.rows.buffer).toString('base64'), labels: Buffer.from(v2.replay.labels).toString('base64') };
    const body = Buffer.from(JSON.stringify(v2));
    const header = { format: 'tradeflow-checkpoint', version: 1, bytes: body.length, crc32: crc32(body).toString(16).padStart(8, '0') };
    fs.writeFileSync(file, Buffer.concat([Buffer.from(JSON.stringify(header) + '\n'), body]));

    const l = await learner(dir, 1000);
    expect(l.learner.updates).toBe(updates);
    expect(served(l)).toEqual(weights);
    expect(Buffer.from(l.replay.toArrays().x.buffer).equals(Buffer.from(held.x.buffer))).toBe(true);
    expect(Buffer.from(l.replay.toArrays().y).equals(Buffer.from(held.y))).toBe(true);
    await l.checkpoint();
    const bytes = fs.readFileSync(file);
    expect(JSON.parse(bytes.subarray(0, bytes.indexOf(0x0a)).toString()).version).toBe(2);
  });

  it('a checkpoint whose writer thread dies fails alone; the next one starts a new thread', async () => {
    const dir = tempDir();
    const l = await learner(dir, 1000);
    await feed(l, 200, 100);
    await l.checkpoint();
    const before = fs.readFileSync(path.join(dir, CHECKPOINT_NAME));
    await feed(l, 200, 100, 7);
    // The thread dies with the write in flight: it ends instead of receiving the request.
    const writer = (l as unknown as { writer: { worker: { postMessage: unknown; terminate(): Promise<number> } | null } }).writer;
    const thread = writer.worker!;
    thread.postMessage = () => void thread.terminate();
    const pending = l.checkpoint();
    await expect(pending).rejects.toMatchObject({ code: 'CHECKPOINT_FAILED' });
    expect(fs.readFileSync(path.join(dir, CHECKPOINT_NAME)).equals(before)).toBe(true);
    await l.checkpoint();
    expect(l.stats().checkpoints).toMatchObject({ written: 2, failed: 1, last_error: null });
  });

  it('a checkpoint that cannot be written (ENOSPC, EIO on its fsync or rename) keeps the previous one and every log segment', async () => {
    const dir = tempDir();
    const control = path.join(tempDir(), 'faults.json');
    process.env[DISK_FAULTS_ENV] = control;
    const l = await learner(dir, 1000);
    await feed(l, 300, 100);
    await l.checkpoint();
    const before = fs.readFileSync(path.join(dir, CHECKPOINT_NAME));
    const faults = [
      { op: 'write', errno: 'ENOSPC' },
      { op: 'fsync', errno: 'EIO' },
      { op: 'rename', errno: 'EIO' },
      { op: 'open', errno: 'ENOSPC' },
    ];
    for (const [i, f] of faults.entries()) {
      await feed(l, 100, 100, 20 + i);
      fs.writeFileSync(control, JSON.stringify({ faults: [{ ...f, path: CHECKPOINT_NAME }] }));
      const segs = segments(dir);
      await expect(l.checkpoint()).rejects.toMatchObject({ code: 'CHECKPOINT_FAILED', message: expect.stringContaining(f.errno) });
      expect(fs.readFileSync(path.join(dir, CHECKPOINT_NAME)).equals(before)).toBe(true);
      // The rotation before the write added a segment; none was deleted.
      expect(segments(dir).slice(0, segs.length)).toEqual(segs);
      expect(fs.readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
      fs.rmSync(control);
    }
    expect(fs.readFileSync(control + '.hits', 'utf8').trim().split('\n')).toHaveLength(faults.length);
    const state = { updates: l.learner.updates, weights: served(l) };
    // The final checkpoint fails too: a restart then replays the whole log after the first one.
    fs.writeFileSync(control, JSON.stringify({ faults: [{ op: 'rename', errno: 'EIO', path: CHECKPOINT_NAME }] }));
    await expect(l.close()).rejects.toMatchObject({ code: 'CHECKPOINT_FAILED' });
    fs.rmSync(control);
    const again = await learner(dir, 1000);
    expect({ updates: again.learner.updates, weights: served(again) }).toEqual(state);
    expect(again.recovery).toMatchObject({ checkpointSeq: 3, replayed: faults.length });
  });
});
