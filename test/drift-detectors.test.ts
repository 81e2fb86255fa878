/**
 * Detector behaviour beyond River's examples: degenerate streams, warm-up, reset, snapshots
 * that survive JSON and give the same future, parameter validation, scores.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SCORE_CAP, type DetectorType, type DriftDetector, type DriftState } from '../src/drift/detector';
import { KSWIN } from '../src/drift/kswin';
import { createDetector, DETECTOR_TYPES, DETECTORS, restoreDetector } from '../src/drift/registry';
import { TradeflowError } from '../src/errors';

const streams = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'drift', 'river_streams.json'), 'utf8')) as {
  binary_seed42: number[];
  real_seed12345: number[];
};

/** KSWIN needs a seed to be reproducible; the others take River's defaults. */
function make(type: DetectorType, params: Record<string, number | string | boolean> = {}): DriftDetector {
  return createDetector(type, type === 'kswin' ? { seed: 7, ...params } : params);
}

function streamFor(type: DetectorType): number[] {
  return DETECTORS[type].input === 'binary' ? streams.binary_seed42 : streams.real_seed12345;
}

function run(d: DriftDetector, xs: number[]): DriftState[] {
  return xs.map((x) => d.update(x));
}

function flagged(states: DriftState[], offset = 0): string[] {
  return states.flatMap((s, i) => (s === 'stable' ? [] : [`${i + offset}:${s}`]));
}

function thrown(f: () => unknown): TradeflowError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(TradeflowError);
    return err as TradeflowError;
  }
  throw new Error('expected a TradeflowError');
}

describe('drift detectors: degenerate streams', () => {
  it.each(DETECTOR_TYPES)('%s stays stable on a constant stream of 0s and of 1s', (type) => {
    for (const v of [0, 1]) {
      const d = make(type);
      const states = run(d, new Array(3000).fill(v));
      expect(flagged(states), `constant ${v}`).toEqual([]);
      expect(d.n).toBe(3000);
      expect(d.score()).toBe(0);
    }
  });

  it('DDM fires on the first error after an error-free warm-up, as River does (s_min is 0)', () => {
    const d = make('ddm');
    const states = run(d, [...new Array(40).fill(0), 1, 0]);
    expect(flagged(states)).toEqual(['40:drift']);
    expect(d.n).toBe(1); // reset at the update after the drift
  });

  it('a stream shorter than the warm-up never leaves stable, whatever it holds', () => {
    const ddm = make('ddm');
    expect(flagged(run(ddm, [...new Array(20).fill(0), ...new Array(10).fill(1)]))).toEqual([]);
    expect(ddm.score()).toBe(0);

    const eddm = make('eddm'); // needs more than 30 samples and more than 30 errors
    expect(flagged(run(eddm, new Array(30).fill(1)))).toEqual([]);

    const ph = make('page_hinkley'); // min_instances = 30
    const jump = [...new Array(10).fill(0), ...new Array(19).fill(1000)];
    expect(flagged(run(ph, jump))).toEqual([]);
    expect(ph.score()).toBe(0);
    expect(ph.update(1000)).toBe('drift'); // the 30th sample may fire

    const kswin = make('kswin'); // window_size = 100
    expect(flagged(run(kswin, [...new Array(50).fill(0), ...new Array(49).fill(9)]))).toEqual([]);
    expect([kswin.statistic(), kswin.score()]).toEqual([0, 0]);

    const adwin = make('adwin'); // tests every 32 samples once longer than 10
    expect(flagged(run(adwin, [...new Array(16).fill(0), ...new Array(15).fill(100)]))).toEqual([]);
    expect(adwin.update(100)).toBe('drift'); // sample 32: the first test
  });

  it.each(DETECTOR_TYPES)('%s refuses a non-finite value (DRIFT_INPUT_INVALID) and keeps its state', (type) => {
    const d = make(type);
    run(d, streamFor(type).slice(0, 50));
    const before = JSON.stringify(d.snapshot());
    for (const bad of [NaN, Infinity, -Infinity]) {
      const err = thrown(() => d.update(bad));
      expect(err.code).toBe('DRIFT_INPUT_INVALID');
      expect(err.message).toContain(type);
    }
    expect(JSON.stringify(d.snapshot())).toBe(before);
  });

  it('EDDM keeps its warning flag when it drifts, as River does; the state says drift', () => {
    const d = make('eddm', { alpha: 0.8, beta: 0.75 });
    streams.binary_seed42.slice(0, 1279).forEach((x) => d.update(x));
    expect([d.driftDetected, d.warningDetected, d.state]).toEqual([true, true, 'drift']);
  });

  it("HDDM_W keeps River's EWMA quirk: an average of exactly 0 is replaced by the next value", () => {
    const d = make('hddm_w');
    run(d, [0, 0, 0, 1]);
    const state = d.snapshot().state as { total: { ewma: number } };
    expect(state.total.ewma).toBe(1); // a textbook EWMA would say 0.05
    run(d, [0]);
    expect((d.snapshot().state as { total: { ewma: number } }).total.ewma).toBe(0.95);
  });

  it('after a drift the next update starts from a fresh state (River resets lazily)', () => {
    for (const type of DETECTOR_TYPES) {
      const d = make(type);
      const xs = streamFor(type);
      let i = 0;
      while (d.update(xs[i]) !== 'drift') i++;
      expect(d.n, type).toBeGreaterThan(0);
      d.update(xs[i + 1]);
      expect(d.n, type).toBe(1);
    }
  });
});

describe('drift detectors: reset and snapshots', () => {
  it.each(DETECTOR_TYPES)('%s: reset() gives the state of a new detector', (type) => {
    const d = make(type);
    run(d, streamFor(type).slice(0, 1500));
    d.reset();
    expect(d.snapshot()).toEqual(make(type).snapshot());
    expect([d.state, d.n, d.score()]).toEqual(['stable', 0, 0]);
  });

  it.each(DETECTOR_TYPES)('%s: a snapshot through JSON, restored mid-stream, gives the same future', (type) => {
    const xs = streamFor(type);
    for (const cut of [17, 700, 1060, 1500]) {
      const original = make(type);
      const before = run(original, xs.slice(0, cut));
      const json = JSON.stringify(original.snapshot());
      expect(json).not.toMatch(/null/); // no Infinity or NaN lost on the way
      const copy = restoreDetector(JSON.parse(json));
      expect(copy.state).toBe(before[before.length - 1]);
      expect([copy.n, copy.statistic(), copy.score()]).toEqual([original.n, original.statistic(), original.score()]);
      const rest = xs.slice(cut);
      const a = run(original, rest);
      const b = run(copy, rest);
      expect(flagged(b, cut), `${type} cut at ${cut}`).toEqual(flagged(a, cut));
      expect(copy.snapshot()).toEqual(original.snapshot());
    }
  });

  it.each(['hddm_a', 'hddm_w'] as const)('%s two-sided: a restored snapshot gives the same future', (type) => {
    const xs = [...streams.binary_seed42, ...streams.binary_seed42.slice(0, 1000)];
    const whole = flagged(run(make(type, { two_sided_test: true }), xs));
    expect(whole.length).toBeGreaterThan(0);
    const first = make(type, { two_sided_test: true });
    const head = run(first, xs.slice(0, 1500));
    const second = restoreDetector(JSON.parse(JSON.stringify(first.snapshot())));
    expect([...flagged(head), ...flagged(run(second, xs.slice(1500)), 1500)]).toEqual(whole);
  });

  it('the uninterrupted run and the checkpointed one flag the same steps (DDM, with warnings)', () => {
    const whole = flagged(run(make('ddm'), streams.binary_seed42));
    const first = make('ddm');
    const head = run(first, streams.binary_seed42.slice(0, 1100)); // inside a warning episode
    expect(head[1099]).toBe('warning');
    const second = restoreDetector(JSON.parse(JSON.stringify(first.snapshot())));
    const tail = run(second, streams.binary_seed42.slice(1100));
    expect([...flagged(head), ...flagged(tail, 1100)]).toEqual(whole);
  });

  it('restore checks type, parameters and fields, and changes nothing when it refuses', () => {
    const d = make('ddm');
    run(d, streams.binary_seed42.slice(0, 100));
    const good = d.snapshot();
    const before = JSON.stringify(good);
    const cases: Array<[unknown, RegExp]> = [
      [null, /not an object/],
      [make('eddm').snapshot(), /for detector "eddm"/],
      [createDetector('ddm', { warm_start: 10 }).snapshot(), /params\.warm_start is 10, this detector has 30/],
      [{ ...good, version: 2 }, /unsupported version/],
      [{ ...good, state: { ...good.state, p: 'x' } }, /ddm\.state\.p is not a number/],
      [{ ...good, state: { ...good.state, n: -1 } }, /ddm\.state\.n is not a whole number/],
      [{ ...good, state: { ...good.state, drift: 1 } }, /ddm\.state\.drift is not a boolean/],
    ];
    for (const [snap, msg] of cases) {
      const err = thrown(() => d.restore(snap));
      expect(err.code).toBe('CHECKPOINT_CORRUPT');
      expect(err.message).toMatch(msg);
      expect(JSON.stringify(d.snapshot())).toBe(before);
    }
    const bad = JSON.parse(JSON.stringify(make('adwin').snapshot())) as { state: { rows: unknown } };
    bad.state.rows = [{ totals: [1, 2], variances: [0] }];
    expect(() => make('adwin').restore(bad)).toThrow(/rows\[0\]/);
  });

  it('KSWIN without a seed draws at random, and its snapshot still replays exactly', () => {
    const a = createDetector('kswin');
    expect(a.params()).not.toHaveProperty('seed');
    run(a, streams.real_seed12345.slice(0, 500));
    const b = restoreDetector(JSON.parse(JSON.stringify(a.snapshot())));
    const rest = streams.real_seed12345.slice(500);
    const fromA = flagged(run(a, rest), 500);
    expect(fromA.length).toBeGreaterThan(0); // a drift, so the re-seeding on reset is covered
    expect(flagged(run(b, rest), 500)).toEqual(fromA);
  });

  it('KSWIN with a seed re-creates its generator on reset, as River does', () => {
    const k = new KSWIN({ seed: 3, alpha: 0.0001 });
    const first = flagged(run(k, streams.real_seed12345));
    k.reset();
    expect(flagged(run(k, streams.real_seed12345))).toEqual(first);
  });
});

describe('drift detectors: scores', () => {
  it.each(DETECTOR_TYPES)('%s: score is 0 when new, >= 1 at every drift, <= 1 when stable or warning', (type) => {
    const d = make(type);
    expect(d.score()).toBe(0);
    let drifts = 0;
    for (const x of streamFor(type)) {
      const state = d.update(x);
      const score = d.score();
      expect(score).toBeGreaterThanOrEqual(0);
      expect(score).toBeLessThanOrEqual(SCORE_CAP);
      if (state === 'drift') {
        drifts++;
        expect(score).toBeGreaterThanOrEqual(1);
      } else {
        expect(score).toBeLessThanOrEqual(1 + 1e-12);
      }
    }
    expect(drifts).toBeGreaterThan(0);
  });

  it('scores are capped and finite when the drift threshold has zero width', () => {
    const d = make('ddm');
    run(d, [...new Array(40).fill(0), 1]); // s_min = 0
    expect(d.score()).toBe(SCORE_CAP);
    const ph = make('page_hinkley', { threshold: 0, min_instances: 1 });
    run(ph, [0, 0, 5]);
    expect(ph.score()).toBe(SCORE_CAP);
    expect(JSON.parse(JSON.stringify({ s: ph.score() })).s).toBe(SCORE_CAP);
  });

  it('Page-Hinkley score is exactly statistic / threshold', () => {
    const ph = make('page_hinkley', { threshold: 20 });
    run(ph, streams.real_seed12345.slice(0, 1003));
    expect(ph.score()).toBe(ph.statistic() / 20);
  });
});

describe('drift detectors: directions', () => {
  /** Error bits: 1000 at a 70% error rate, then 1000 at 10% (deterministic, evenly spread). */
  const improving = Array.from({ length: 2000 }, (_, i) => (i < 1000 ? (i * 7) % 10 < 7 : (i * 3) % 10 < 1) ? 1 : 0);

  it.each(['hddm_a', 'hddm_w'] as const)('%s sees a falling error rate only with two_sided_test', (type) => {
    expect(flagged(run(make(type), improving)).filter((f) => f.endsWith('drift'))).toEqual([]);
    const drifts = flagged(run(make(type, { two_sided_test: true }), improving)).filter((f) => f.endsWith('drift'));
    expect(drifts.length).toBeGreaterThan(0);
    expect(Number(drifts[0].split(':')[0])).toBeGreaterThanOrEqual(1000);
  });

  it('page_hinkley: mode up sees rises, down sees falls, both sees either', () => {
    const rise = [...new Array(500).fill(0), ...new Array(500).fill(1)];
    const fall = [...new Array(500).fill(1), ...new Array(500).fill(0)];
    const first = (mode: string, xs: number[]) => flagged(run(make('page_hinkley', { mode }), xs))[0] ?? 'none';
    expect([first('up', rise), first('down', rise), first('both', rise)]).toEqual(['553:drift', 'none', '553:drift']);
    expect([first('up', fall), first('down', fall), first('both', fall)]).toEqual(['none', '553:drift', '553:drift']); // as River's algorithm, run in Python, says
  });
});

describe('drift detectors: parameters', () => {
  it.each(DETECTOR_TYPES)("%s has River's defaults and reports them", (type) => {
    const d = createDetector(type);
    const expected: Record<DetectorType, Record<string, unknown>> = {
      ddm: { warm_start: 30, warning_threshold: 2.0, drift_threshold: 3.0 },
      eddm: { warm_start: 30, alpha: 0.95, beta: 0.9 },
      hddm_a: { drift_confidence: 0.001, warning_confidence: 0.005, two_sided_test: false },
      hddm_w: { drift_confidence: 0.001, warning_confidence: 0.005, lambda_val: 0.05, two_sided_test: false },
      adwin: { delta: 0.002, clock: 32, max_buckets: 5, min_window_length: 5, grace_period: 10 },
      page_hinkley: { min_instances: 30, delta: 0.005, threshold: 50.0, alpha: 1 - 0.0001, mode: 'both' },
      kswin: { alpha: 0.005, window_size: 100, stat_size: 30 },
    };
    expect(d.params()).toEqual(expected[type]);
    expect(d.type).toBe(type);
  });

  it('takes values as strings from a command line', () => {
    const d = createDetector('hddm_w', { lambda_val: '0.1', two_sided_test: 'true', drift_confidence: '1e-4' });
    expect(d.params()).toMatchObject({ lambda_val: 0.1, two_sided_test: true, drift_confidence: 0.0001 });
    expect(createDetector('page_hinkley', { mode: 'up', min_instances: '5' }).params()).toMatchObject({ mode: 'up', min_instances: 5 });
    expect(createDetector('kswin', { seed: '-3' }).params()).toMatchObject({ seed: -3 });
  });

  it('refuses unknown detectors, unknown parameters and bad values with CONFIG_INVALID and a clear message', () => {
    const cases: Array<[() => unknown, RegExp]> = [
      [() => createDetector('cusum'), /unknown drift detector "cusum" \(known: ddm, eddm, hddm_a, hddm_w, adwin, page_hinkley, kswin\)/],
      [() => createDetector('ddm', { warmstart: 3 }), /ddm: unknown parameter "warmstart" \(known: warm_start, warning_threshold, drift_threshold\)/],
      [() => createDetector('ddm', { warm_start: 1.5 }), /warm_start must be a whole number >= 0, got 1.5/],
      [() => createDetector('ddm', { warm_start: 'ten' }), /warm_start must be a whole number >= 0, got "ten"/],
      [() => createDetector('ddm', { drift_threshold: -1 }), /drift_threshold must be a number >= 0/],
      [() => createDetector('eddm', { alpha: 0.8, beta: 0.9 }), /'alpha' must be greater or equal to 'beta'/],
      [() => createDetector('hddm_a', { drift_confidence: 0 }), /drift_confidence must be a number > 0 and < 1, got 0/],
      [() => createDetector('hddm_a', { two_sided_test: 'yes' }), /two_sided_test must be true or false, got "yes"/],
      [() => createDetector('hddm_w', { lambda_val: 2 }), /lambda_val must be a number >= 0 and <= 1/],
      [() => createDetector('adwin', { clock: 0 }), /clock must be a whole number >= 1/],
      [() => createDetector('adwin', { delta: 'NaN' }), /delta must be a number/],
      [() => createDetector('adwin', { max_buckets: 1 }), /max_buckets must be a whole number >= 2/],
      [() => createDetector('page_hinkley', { mode: 'sideways' }), /mode must be one of "up", "down", "both"/],
      [() => createDetector('kswin', { window_size: 50, stat_size: 30 }), /window_size \(50\) must be at least twice stat_size \(30\)/],
      [() => createDetector('kswin', { alpha: 1.5 }), /alpha must be a number >= 0 and <= 1/],
      [() => createDetector('kswin', { stat_size: 20000, window_size: 50000 }), /stat_size must be a whole number from 1 to 10000/],
    ];
    for (const [f, msg] of cases) {
      const err = thrown(f);
      expect(err.code).toBe('CONFIG_INVALID');
      expect(err.message).toMatch(msg);
    }
  });

  it('src/drift/README.md lists every parameter with its default', () => {
    const readme = fs.readFileSync(path.join(__dirname, '..', 'src', 'drift', 'README.md'), 'utf8');
    for (const t of DETECTOR_TYPES) {
      const section = readme.slice(readme.indexOf(`### \`${t}\``));
      for (const [name, spec] of Object.entries(DETECTORS[t].spec.params as Record<string, { default: unknown }>)) {
        const shown = spec.default === null ? 'unset' : typeof spec.default === 'string' ? `\`${spec.default}\`` : String(spec.default);
        const row = new RegExp(`\\| \`${name}\` \\| ${shown.replace('.', '\\.')}(\\.0)? \\|`);
        expect(section, `${t}.${name}`).toMatch(row);
      }
    }
  });

  it('describes every detector: input kind, warnings, River class', () => {
    expect(DETECTORS.ddm).toMatchObject({ input: 'binary', warnings: true, river: 'river.drift.binary.DDM' });
    expect(DETECTORS.kswin).toMatchObject({ input: 'real', warnings: false, river: 'river.drift.KSWIN' });
    for (const t of DETECTOR_TYPES) expect(createDetector(t).input).toBe(DETECTORS[t].input);
  });
});
