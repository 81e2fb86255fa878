/**
 * River's docstring examples, reproduced exactly. Each River detector's docstring builds a
 * stream with Python's `random.Random(seed).choices(...)` and prints where it warns and
 * detects; the streams are in test/fixtures/drift/river_streams.json, written by
 * make_river_streams.py (standard library only), and re-made here with python3 when present to
 * show the fixture is what Python produces. The expected lines are copied from River's current
 * docstrings (river/drift/binary/*.py, river/drift/{adwin,page_hinkley,kswin}.py).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DriftDetector } from '../src/drift/detector';
import { KSWIN, type KswinSampler } from '../src/drift/kswin';
import { PythonRandom } from '../src/drift/python-random';
import { createDetector } from '../src/drift/registry';
import { requireTool } from './helpers/requirements';

const FIXTURES = path.join(__dirname, 'fixtures', 'drift');
const STREAMS_FILE = path.join(FIXTURES, 'river_streams.json');

interface Streams {
  binary_seed42: number[];
  real_seed12345: number[];
  kswin_positions_seed42: number[][];
}

const streams = JSON.parse(fs.readFileSync(STREAMS_FILE, 'utf8')) as Streams;

// Any python3 (the scripts use the standard library only). Missing: fails under CI.
const python3 = requireTool('python3');

/** The docstring loop of River's binary detectors: first warning after each drift, and drifts. */
function warningExample(d: DriftDetector, stream: number[]): string[] {
  const printed: string[] = [];
  let printWarning = true;
  stream.forEach((x, i) => {
    d.update(x);
    if (d.warningDetected && printWarning) {
      printed.push(`Warning detected at index ${i}`);
      printWarning = false;
    }
    if (d.driftDetected) {
      printed.push(`Change detected at index ${i}`);
      printWarning = true;
    }
  });
  return printed;
}

/** The docstring loop of ADWIN, PageHinkley and KSWIN. */
function driftExample(d: DriftDetector, stream: number[]): string[] {
  const printed: string[] = [];
  stream.forEach((val, i) => {
    d.update(val);
    if (d.driftDetected) printed.push(`Change detected at index ${i}, input value: ${val}`);
  });
  return printed;
}

describe("River's docstring examples", () => {
  it.skipIf(python3.skip)('the fixture is what Python makes (random.Random choices and sample)', () => {
    const made = execFileSync(python3.get(), ['-c', `import json, sys; sys.path.insert(0, ${JSON.stringify(FIXTURES)}); import make_river_streams as m; print(json.dumps(m.build(), separators=(",", ":")))`], {
      encoding: 'utf8',
      maxBuffer: 1 << 26,
    });
    expect(JSON.parse(made)).toEqual(streams);
  });

  it('the streams look like the docstrings say (sanity)', () => {
    expect(streams.binary_seed42).toHaveLength(2000);
    expect(streams.real_seed12345).toHaveLength(2000);
    const mean = (a: number[]) => a.reduce((s, x) => s + x, 0) / a.length;
    expect(mean(streams.binary_seed42.slice(1000))).toBeGreaterThan(0.65);
    expect(Math.min(...streams.real_seed12345.slice(1000))).toBe(4);
  });

  it('DDM: drift.binary.DDM()', () => {
    expect(warningExample(createDetector('ddm'), streams.binary_seed42)).toEqual([
      'Warning detected at index 1084',
      'Change detected at index 1334',
      'Warning detected at index 1492',
    ]);
  });

  it('EDDM: drift.binary.EDDM(alpha=0.8, beta=0.75)', () => {
    expect(warningExample(createDetector('eddm', { alpha: 0.8, beta: 0.75 }), streams.binary_seed42)).toEqual([
      'Warning detected at index 1059',
      'Change detected at index 1278',
    ]);
  });

  it('HDDM_A: drift.binary.HDDMA()', () => {
    expect(warningExample(createDetector('hddm_a'), streams.binary_seed42)).toEqual([
      'Warning detected at index 451',
      'Change detected at index 1206',
    ]);
  });

  it('HDDM_W: drift.binary.HDDMW()', () => {
    expect(warningExample(createDetector('hddm_w'), streams.binary_seed42)).toEqual([
      'Warning detected at index 451',
      'Change detected at index 1077',
    ]);
  });

  it('ADWIN: drift.ADWIN()', () => {
    expect(driftExample(createDetector('adwin'), streams.real_seed12345)).toEqual(['Change detected at index 1023, input value: 4']);
  });

  it('Page-Hinkley: drift.PageHinkley()', () => {
    expect(driftExample(createDetector('page_hinkley'), streams.real_seed12345)).toEqual(['Change detected at index 1006, input value: 5']);
  });

  it('KSWIN: drift.KSWIN(alpha=0.0001, seed=42), with our Python-compatible generator', () => {
    expect(driftExample(createDetector('kswin', { alpha: 0.0001, seed: 42 }), streams.real_seed12345)).toEqual([
      'Change detected at index 1016, input value: 6',
    ]);
  });

  it("KSWIN: the same with River's sample positions injected (computed by Python)", () => {
    let next = 0;
    const draws: number[][] = [];
    const replay: KswinSampler = {
      sample(populationSize, k) {
        expect([populationSize, k]).toEqual([70, 30]);
        const pos = streams.kswin_positions_seed42[next++];
        draws.push(pos);
        return pos;
      },
      reset() {
        next = 0; // River re-creates random.Random(seed) on every reset
      },
      snapshot: () => next,
      restore(s) {
        next = s as number;
      },
    };
    const kswin = new KSWIN({ alpha: 0.0001, seed: 42 }, { sampler: replay });
    expect(driftExample(kswin, streams.real_seed12345)).toEqual(['Change detected at index 1016, input value: 6']);
    // One draw per update once the window is full: indices 99..1016 (918), then the reset at
    // 1017 restarts the generator and the refilled window is tested from 1116 to 1999 (884).
    expect(draws).toHaveLength(918 + 884);
    expect(draws[918]).toEqual(streams.kswin_positions_seed42[0]);
  });

  it("our generator draws River's positions: random.Random(42).sample(range(70), 30), repeatedly", () => {
    const rng = new PythonRandom(42);
    for (let i = 0; i < streams.kswin_positions_seed42.length; i++) {
      expect(rng.sample(70, 30)).toEqual(streams.kswin_positions_seed42[i]);
    }
  });

  it.skipIf(python3.skip)('our generator matches Python for other seeds and the set-based branch of sample', () => {
    const script = [
      'import random, json',
      'out = []',
      'for seed in [0, 1, 7, 123456789, 2**32 + 5, 2**52 + 3, -9]:',
      '    r = random.Random(seed)',
      '    out.append([r.getrandbits(32), r.random(), r.sample(range(70), 30), r.sample(range(5000), 40), r.sample(range(10), 10)])',
      'print(json.dumps(out))',
    ].join('\n');
    const expected = JSON.parse(execFileSync(python3.get(), ['-c', script], { encoding: 'utf8' })) as unknown[];
    const got = [0, 1, 7, 123456789, 2 ** 32 + 5, 2 ** 52 + 3, -9].map((seed) => {
      const r = new PythonRandom(seed);
      return [r.uint32(), r.random(), r.sample(70, 30), r.sample(5000, 40), r.sample(10, 10)];
    });
    expect(got).toEqual(expected);
  });
});
