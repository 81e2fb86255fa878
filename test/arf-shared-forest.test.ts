/**
 * Readers in worker threads never see a torn forest: while the main thread learns a drifting
 * stream (leaves updated, splits, whole trees replaced) and publishes after every row, workers
 * score a probe batch from shared memory, and every answer must equal, bit for bit, what the
 * writer's forest answered at the version the read names. (The same hammer with readers that
 * score straight from the buffer without the seqlock's check sees thousands of answers that match
 * no version: tried by hand, not asserted, as whether a race shows is up to the scheduler.)
 */
import * as path from 'node:path';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { AdaptiveRandomForest, DEFAULT_ARF_OPTIONS } from '../src/learning/arf/forest';
import { Mulberry32 } from '../src/learning/arf/rng';
import { SharedForest } from '../src/learning/arf/shared-forest';

const MODULE = path.join(__dirname, '..', 'dist', 'src', 'learning', 'arf', 'shared-forest.js');
const READER = path.join(__dirname, 'fixtures', 'shared-forest-reader.js');
const F = 8;
const PROBE_ROWS = 8;

interface ReaderReport {
  reads: number;
  mixed: number;
  firstMixed: unknown;
  decreases: number;
  changes: number;
  bad: number;
  lastVersion: number;
}

describe('SharedForest', () => {
  it('refuses buffers it did not make', () => {
    expect(() => SharedForest.attach(new SharedArrayBuffer(8))).toThrow(/SharedForest.create/);
    const s = SharedForest.create(2, F, 10, 7);
    expect(() => SharedForest.attach(s.buffer.slice(0, s.buffer.byteLength - 8) as unknown as SharedArrayBuffer)).toThrow();
  });

  it('hammer: workers scoring during continuous learning and publishes never see a torn forest', async () => {
    const READERS = 2;
    const MIN_READS = 3000;
    const MIN_ROWS = 20_000;
    const MAX_ROWS = 400_000; // starved readers end the test with a clear failure, not a hang
    const forest = new AdaptiveRandomForest({ ...DEFAULT_ARF_OPTIONS, features: F, maxNodes: 255 });
    const shared = SharedForest.forForest(forest);
    const rng = new Mulberry32(11);
    const probeBuf = new SharedArrayBuffer(PROBE_ROWS * F * 4);
    const probe = new Float32Array(probeBuf);
    for (let i = 0; i < probe.length; i++) probe[i] = rng.random();
    const expectedBuf = new SharedArrayBuffer((MAX_ROWS + 1) * PROBE_ROWS * 4);
    const expected = new Float32Array(expectedBuf);
    const record = (version: number) => {
      for (let r = 0; r < PROBE_ROWS; r++) expected[version * PROBE_ROWS + r] = Math.fround(forest.predict(probe, r * F));
    };
    record(0);
    shared.publish(forest);
    const control = new SharedArrayBuffer(4 * (1 + READERS));
    const ctl = new Int32Array(control);
    const workers = Array.from(
      { length: READERS },
      (_, id) =>
        new Worker(READER, {
          workerData: { buffer: shared.buffer, probe: probeBuf, rows: PROBE_ROWS, expected: expectedBuf, control, id, minReads: MIN_READS, modulePath: MODULE },
        }),
    );
    try {
      const reports = workers.map((w) => once(w, 'message') as Promise<[ReaderReport]>);
      const errors = workers.map((w) => once(w, 'error').then(([e]) => Promise.reject(e as Error)));
      await Promise.all(workers.map((w) => once(w, 'online')));
      const enough = () => {
        for (let r = 0; r < READERS; r++) if (Atomics.load(ctl, 1 + r) < MIN_READS) return false;
        return true;
      };
      const x = new Float32Array(F);
      const pause = new Int32Array(new SharedArrayBuffer(4));
      let rows = 0;
      while (rows < MAX_ROWS && (rows < MIN_ROWS || rows & 255 || !enough())) {
        for (let j = 0; j < F; j++) x[j] = rng.random();
        // The concept flips every 4,000 rows, so trees are replaced (whole-tree publishes).
        const up = x[0]! + x[1]! > 1;
        forest.learn(x, 0, (Math.floor(rows / 4000) % 2 === 0 ? up : !up) ? 1 : 0);
        rows++;
        record(rows);
        shared.publish(forest);
        if ((rows & 255) === 0) Atomics.wait(pause, 0, 0, 0.05);
      }
      Atomics.store(ctl, 0, 1);
      const results = (await Promise.race([Promise.all(reports), Promise.all(errors)])).map(([r]) => r);
      for (const r of results) {
        expect(r.mixed, `torn forest seen: ${JSON.stringify(r.firstMixed)}`).toBe(0);
        expect(r.bad).toBe(0);
        expect(r.decreases).toBe(0);
        expect(r.reads).toBeGreaterThanOrEqual(MIN_READS);
        expect(r.changes).toBeGreaterThan(1);
        expect(r.lastVersion).toBe(rows);
      }
      expect(rows).toBeLessThan(MAX_ROWS);
      expect(forest.replaced).toBeGreaterThan(0);
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
    }
  }, 120_000);
});
