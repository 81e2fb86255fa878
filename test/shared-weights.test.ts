import * as path from 'node:path';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { SharedWeights } from '../src/learning/shared-weights';

// The worker runs the compiled module, as the engine's workers do (npm test builds first).
const MODULE = path.join(__dirname, '..', 'dist', 'src', 'learning', 'shared-weights.js');
const READER = path.join(__dirname, 'fixtures', 'shared-weights-reader.js');

interface ReaderReport {
  reads: number;
  mixed: number;
  firstMixed: unknown;
  decreases: number;
  changes: number;
  lastVersion: number;
}

describe('SharedWeights', () => {
  it('starts at zero weights, bias 0, version 0', () => {
    const s = SharedWeights.create(3);
    const w = new Float64Array(3).fill(7);
    expect(s.read(w)).toEqual({ bias: 0, version: 0 });
    expect(Array.from(w)).toEqual([0, 0, 0]);
  });

  it('round-trips a published vector, through a second view attached to the same buffer', () => {
    const writer = SharedWeights.create(4);
    writer.publish(Float64Array.from([1.5, -2, 3e-300, Number.MAX_VALUE]), -0.25, 42);
    const reader = SharedWeights.attach(writer.buffer);
    expect(reader.features).toBe(4);
    const w = new Float64Array(4);
    expect(reader.read(w)).toEqual({ bias: -0.25, version: 42 });
    expect(Array.from(w)).toEqual([1.5, -2, 3e-300, Number.MAX_VALUE]);
    writer.publish(Float64Array.from([0, 0, 0, 1]), 1, 43);
    expect(reader.read(w)).toEqual({ bias: 1, version: 43 });
    expect(Array.from(w)).toEqual([0, 0, 0, 1]);
  });

  it('refuses buffers it did not make and vectors of the wrong size', () => {
    expect(() => SharedWeights.attach(new SharedArrayBuffer(4))).toThrow(/SharedWeights.create/);
    expect(() => SharedWeights.attach(new ArrayBuffer(64) as unknown as SharedArrayBuffer)).toThrow(/SharedWeights.create/);
    const s = SharedWeights.create(3);
    expect(() => SharedWeights.attach(s.buffer.slice(0, 40))).toThrow(/does not hold 3 weights/);
    expect(() => s.publish(new Float64Array(2), 0, 1)).toThrow(/2 weights, 3 expected/);
    expect(() => s.read(new Float64Array(2))).toThrow(/3 needed/);
    expect(() => SharedWeights.create(0)).toThrow(/features/);
  });

  it('hammer: worker threads reading during continuous publishes never see a mixed vector', async () => {
    const F = 64;
    const READERS = 2;
    const MIN_READS = 200_000;
    const MAX_PUBLISHES = 10_000_000; // starved readers end the test with a clear failure, not a hang (~500k suffice)
    const writer = SharedWeights.create(F);
    const control = new SharedArrayBuffer(4 * (1 + READERS));
    const ctl = new Int32Array(control);
    const workers = Array.from(
      { length: READERS },
      (_, id) => new Worker(READER, { workerData: { buffer: writer.buffer, control, id, minReads: MIN_READS, modulePath: MODULE } }),
    );
    try {
      const reports = workers.map((w) => once(w, 'message') as Promise<[ReaderReport]>);
      const errors = workers.map((w) => once(w, 'error').then(([e]) => Promise.reject(e as Error)));
      await Promise.all(workers.map((w) => once(w, 'online')));

      // Publish until every reader has made MIN_READS reads while publishes were going on.
      const w = new Float64Array(F);
      let version = 0;
      const enough = () => {
        for (let r = 0; r < READERS; r++) if (Atomics.load(ctl, 1 + r) < MIN_READS) return false;
        return true;
      };
      // Bursts of 256 publishes with a short pause between them: readers race the writer
      // inside a burst, and a busy machine (CI) cannot starve them for ever, as a writer that
      // never pauses can do to a seqlock's readers.
      const pause = new Int32Array(new SharedArrayBuffer(4));
      while (version < MAX_PUBLISHES && (version & 255 || !enough())) {
        version++;
        w.fill(version);
        writer.publish(w, -version, version);
        if ((version & 255) === 0) Atomics.wait(pause, 0, 0, 0.05);
      }
      Atomics.store(ctl, 0, 1);

      const results = (await Promise.race([Promise.all(reports), Promise.all(errors)])).map(([r]) => r);
      for (const r of results) {
        expect(r.mixed, `mixed vector seen: ${JSON.stringify(r.firstMixed)}`).toBe(0);
        expect(r.decreases).toBe(0); // versions only go up
        expect(r.reads).toBeGreaterThanOrEqual(MIN_READS);
        expect(r.changes).toBeGreaterThan(1); // it saw the versions move, not one frozen vector
        expect(r.lastVersion).toBe(version); // a read after the last publish sees it whole
      }
      expect(version).toBeLessThan(MAX_PUBLISHES);
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
    }
  });
});
