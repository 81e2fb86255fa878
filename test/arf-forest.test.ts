/**
 * The forest as the engine's single writer runs it: the same seed and rows give the same forest
 * and the same probabilities; a checkpoint (encoded and decoded as the engine writes it) plus the
 * rows after it give the forest of an uninterrupted run, bit for bit; a drift in the stream gets
 * trees replaced by their background trees; and the workers' view in shared memory answers what
 * the learner's own arrays answer.
 */
import { describe, expect, it } from 'vitest';
import { AdaptiveRandomForest, DEFAULT_ARF_OPTIONS, sharedBytes, validateArfOptions, type ArfOptions, type ForestSnapshot } from '../src/learning/arf/forest';
import { SharedForest } from '../src/learning/arf/shared-forest';
import { Mulberry32 } from '../src/learning/arf/rng';
import { decodeCheckpoint, encodeCheckpoint } from '../src/learning/checkpoint';

const F = 6;
const opts = (o: Partial<ArfOptions> = {}): ArfOptions => ({ ...DEFAULT_ARF_OPTIONS, features: F, ...o });

/** A stream whose concept flips at `flip`: y = x0 + x1 > 1 before, the opposite after. */
function stream(n: number, flip: number, seed = 3): { x: Float32Array; y: Uint8Array } {
  const r = new Mulberry32(seed);
  const x = new Float32Array(n * F);
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < F; j++) x[i * F + j] = r.random();
    const up = x[i * F]! + x[i * F + 1]! > 1;
    y[i] = (i < flip ? up : !up) ? 1 : 0;
  }
  return { x, y };
}

function learnAll(f: AdaptiveRandomForest, s: { x: Float32Array; y: Uint8Array }, from: number, to: number): number[] {
  const ps: number[] = [];
  for (let i = from; i < to; i++) ps.push(f.learn(s.x, i * F, s.y[i] as 0 | 1));
  return ps;
}

describe('adaptive random forest', () => {
  it('refuses, at start, options whose shared forest would pass 1 GiB', () => {
    expect(sharedBytes(opts())).toBe(10 * 2047 * (5 + 7 * 4) * 8);
    expect(validateArfOptions(opts())).toEqual(opts());
    const big = opts({ features: 65536, maxFeatures: 0, trees: 100 });
    expect(() => validateArfOptions(big)).toThrow(/CONFIG_INVALID|shared memory.*ARF_TREES 100 × ARF_MAX_NODES 2047 × 256 features per leaf/);
  });

  it('a cold forest answers 0.5, also through shared memory', () => {
    const f = new AdaptiveRandomForest(opts());
    expect(f.predict(new Float32Array(F), 0)).toBe(0.5);
    const shared = SharedForest.forForest(f);
    shared.publish(f);
    const probs = new Float32Array(2);
    const labels = new Int32Array(1);
    expect(SharedForest.attach(shared.buffer).score(new Float32Array(F), 1, probs, labels)).toBe(0);
    expect(Array.from(probs)).toEqual([0.5, 0.5]);
    expect(labels[0]).toBe(0);
  });

  it('same seed and rows: the same forest and probabilities; another seed: another forest', () => {
    const s = stream(4000, 4000);
    const a = new AdaptiveRandomForest(opts({ seed: 9 }));
    const b = new AdaptiveRandomForest(opts({ seed: 9 }));
    const c = new AdaptiveRandomForest(opts({ seed: 10 }));
    const pa = learnAll(a, s, 0, 4000);
    expect(learnAll(b, s, 0, 4000)).toEqual(pa);
    expect(b.snapshot()).toEqual(a.snapshot());
    expect(learnAll(c, s, 0, 4000)).not.toEqual(pa);
    const right = pa.slice(2000).filter((p, i) => (p > 0.5 ? 1 : 0) === s.y[2000 + i]).length;
    expect(right / 2000).toBeGreaterThan(0.9);
  });

  it('checkpoint then the rest of the stream gives the uninterrupted forest, bit for bit', () => {
    const s = stream(6000, 3000);
    const whole = new AdaptiveRandomForest(opts());
    const pw = learnAll(whole, s, 0, 6000);
    const first = new AdaptiveRandomForest(opts());
    const p1 = learnAll(first, s, 0, 3500);
    const bytes = encodeCheckpoint({ arf: first.snapshot() });
    const restored = AdaptiveRandomForest.restore(decodeCheckpoint<{ arf: ForestSnapshot }>(bytes, 'test').arf);
    const p2 = learnAll(restored, s, 3500, 6000);
    expect([...p1, ...p2]).toEqual(pw);
    expect(restored.snapshot()).toEqual(whole.snapshot());
  });

  it('a drift in the stream: warnings start background trees and drifts replace trees', () => {
    const s = stream(12000, 6000);
    const f = new AdaptiveRandomForest(opts());
    const ps = learnAll(f, s, 0, 12000);
    expect(f.warnings).toBeGreaterThan(0);
    expect(f.replaced).toBeGreaterThan(0);
    // Recovered from the flip: the last 1,000 rows are mostly right again.
    const right = ps.slice(11000).filter((p, i) => (p > 0.5 ? 1 : 0) === s.y[11000 + i]).length;
    expect(right / 1000).toBeGreaterThan(0.9);
    // Before the flip no tree needed replacing often: the replacements follow the drift.
    const before = new AdaptiveRandomForest(opts());
    learnAll(before, s, 0, 6000);
    expect(f.replaced).toBeGreaterThan(before.replaced);
  });

  it('the workers read from shared memory what the learner answers, after splits and replacements', () => {
    const s = stream(8000, 4000);
    const f = new AdaptiveRandomForest(opts({ maxNodes: 31 }));
    const shared = SharedForest.forForest(f);
    const reader = SharedForest.attach(shared.buffer);
    const probe = stream(16, 0, 77).x;
    const probs = new Float32Array(32);
    const labels = new Int32Array(16);
    for (let i = 0; i < 8000; i++) {
      f.learn(s.x, i * F, s.y[i] as 0 | 1);
      shared.publish(f);
      if (i % 97 !== 0) continue;
      expect(reader.score(probe, 16, probs, labels)).toBe(i + 1);
      for (let r = 0; r < 16; r++) {
        const p1 = Math.fround(f.predict(probe, r * F));
        expect(probs[2 * r + 1]).toBe(p1);
        expect(probs[2 * r]).toBe(Math.fround(1 - p1));
      }
    }
    expect(f.replaced).toBeGreaterThan(0);
    for (const m of f.members) expect(m.tree.size).toBeLessThanOrEqual(31);
  });
});
