/**
 * The drift monitor the engine embeds: what it feeds each detector, what it counts, what status
 * and events it gives, and its checkpoints.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DriftMonitor, type DriftEvent, type Outcome } from '../src/drift/monitor';
import { createDetector, DEFAULT_MONITOR_DETECTORS } from '../src/drift/registry';
import { TradeflowError } from '../src/errors';

const streams = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'drift', 'river_streams.json'), 'utf8')) as {
  binary_seed42: number[];
};
const errors = streams.binary_seed42;

/** An outcome whose error bit is `e`; the predicted class alternates so both classes occur. */
function outcome(e: number, i: number, proba?: number): Outcome {
  const prediction = i % 2;
  return { prediction, actual: e ? 1 - prediction : prediction, proba };
}

function clock(start = Date.parse('2025-01-01T00:00:00Z')): () => Date {
  let t = start;
  return () => new Date((t += 1000));
}

describe('drift monitor', () => {
  it('runs the binary detectors plus adwin and page_hinkley by default, with River defaults', () => {
    const m = new DriftMonitor();
    expect(m.types).toEqual(['ddm', 'eddm', 'hddm_a', 'hddm_w', 'adwin', 'page_hinkley']);
    expect(m.types).toEqual([...DEFAULT_MONITOR_DETECTORS]);
    const s = m.status();
    expect(s.realInput).toBe('error');
    expect(s.outcomes).toBe(0);
    expect(Object.keys(s.detectors)).toEqual(m.types);
    expect(s.detectors.ddm).toEqual({
      type: 'ddm',
      input: 'binary',
      feed: 'error',
      state: 'stable',
      samples: 0,
      statistic: 0,
      score: 0,
      warnings: 0,
      drifts: 0,
      lastWarningAt: null,
      lastDriftAt: null,
      lastChangeAt: null,
      params: { warm_start: 30, warning_threshold: 2, drift_threshold: 3 },
    });
    expect(JSON.parse(JSON.stringify(s))).toEqual(s);
  });

  it('feeds every detector the error bit by default: same answers as detectors fed directly', () => {
    const m = new DriftMonitor();
    const direct = m.types.map((t) => createDetector(t));
    errors.forEach((e, i) => {
      const u = m.update(outcome(e, i, 0.9));
      direct.forEach((d) => expect(u.detectors[d.type].state).toBe(d.update(e)));
    });
    for (const d of direct) expect(m.status().detectors[d.type].statistic).toBe(d.statistic());
  });

  it("in proba mode feeds real-valued detectors 1 - P(actual class), binary ones the error bit", () => {
    const m = new DriftMonitor({ detectors: ['ddm', 'page_hinkley', 'adwin'], realInput: 'proba' });
    const ph = createDetector('page_hinkley');
    const adwin = createDetector('adwin');
    const ddm = createDetector('ddm');
    errors.forEach((e, i) => {
      const o = outcome(e, i, ((i * 37) % 101) / 100);
      const pActual = o.actual === 1 ? o.proba! : 1 - o.proba!;
      m.update(o);
      ph.update(1 - pActual);
      adwin.update(1 - pActual);
      ddm.update(e);
    });
    const s = m.status();
    expect(s.detectors.page_hinkley.statistic).toBe(ph.statistic());
    expect(s.detectors.adwin.statistic).toBe(adwin.statistic());
    expect(s.detectors.ddm.statistic).toBe(ddm.statistic());
    expect(s.detectors.page_hinkley.feed).toBe('1-proba');
    expect(s.detectors.ddm.feed).toBe('error');
  });

  it('in proba mode falls back to the error bit when proba is unknown', () => {
    const m = new DriftMonitor({ detectors: ['page_hinkley'], realInput: 'proba' });
    const ph = createDetector('page_hinkley');
    errors.slice(0, 300).forEach((e, i) => {
      m.update(outcome(e, i));
      ph.update(e);
    });
    expect(m.status().detectors.page_hinkley.statistic).toBe(ph.statistic());
  });

  it('counts warning episodes (entries into warning), drifts, and stamps their times', () => {
    const events: DriftEvent[] = [];
    const m = new DriftMonitor({ detectors: ['ddm'], now: clock(), onEvent: (e) => events.push(e) });
    const ddm = createDetector('ddm');
    let episodes = 0;
    let warningSteps = 0;
    let drifts = 0;
    let prev = 'stable';
    errors.forEach((e, i) => {
      const state = ddm.update(e);
      if (state === 'warning' && prev !== 'warning') episodes++;
      if (state === 'warning') warningSteps++;
      if (state === 'drift') drifts++;
      prev = state;
      m.update(outcome(e, i));
    });
    const s = m.status().detectors.ddm;
    expect(episodes).toBeGreaterThan(1);
    expect(warningSteps).toBeGreaterThan(episodes * 10);
    expect([s.warnings, s.drifts]).toEqual([episodes, drifts]);
    expect(events.filter((e) => e.severity === 'warning')).toHaveLength(episodes);
    expect(events.filter((e) => e.severity === 'drift')).toHaveLength(drifts);
    const drift = events.find((e) => e.severity === 'drift')!;
    expect(drift).toMatchObject({ detector: 'ddm', samples: 1335 }); // DDM drifts at index 1334
    expect(drift.score).toBeGreaterThan(1);
    // The clock ticks once per outcome that changes something: ISO strings, increasing.
    expect(s.lastWarningAt).toMatch(/^2025-01-01T\d\d:\d\d:\d\d\.000Z$/);
    expect(Date.parse(s.lastWarningAt!)).toBeGreaterThan(Date.parse(s.lastDriftAt!));
    expect(s.lastChangeAt! >= s.lastWarningAt!).toBe(true);
  });

  it('answers every detector state and score per update, and scores() for the gauge', () => {
    const m = new DriftMonitor();
    const u = m.update({ prediction: 1, actual: 0 });
    expect(u.outcomes).toBe(1);
    expect(Object.keys(u.detectors)).toEqual(m.types);
    expect(u.detectors.ddm).toEqual({ state: 'stable', score: 0 });
    expect(u.events).toEqual([]);
    expect(Object.keys(m.scores())).toEqual(m.types);
  });

  it('refuses a bad outcome with DRIFT_INPUT_INVALID naming the field, and changes nothing', () => {
    const m = new DriftMonitor();
    m.update({ prediction: 0, actual: 0 });
    const before = JSON.stringify(m.snapshot());
    const cases: Array<[unknown, RegExp]> = [
      [{ prediction: 2, actual: 0 }, /prediction must be 0 or 1, got 2/],
      [{ prediction: 0, actual: '1' }, /actual must be 0 or 1, got "1"/],
      [{ prediction: 0 }, /actual must be 0 or 1/],
      [{ prediction: 0, actual: 1, proba: 1.5 }, /proba must be a number from 0 to 1, got 1.5/],
      [{ prediction: 0, actual: 1, proba: NaN }, /proba must be a number from 0 to 1/],
      [{ prediction: 0, actual: 1, proba: '0.5' }, /proba must be a number/],
    ];
    for (const [o, msg] of cases) {
      expect(() => m.update(o as Outcome)).toThrow(msg);
      try {
        m.update(o as Outcome);
      } catch (err) {
        expect((err as TradeflowError).code).toBe('DRIFT_INPUT_INVALID');
      }
    }
    expect(JSON.stringify(m.snapshot())).toBe(before);
  });

  it('reset() zeroes detectors and counts', () => {
    const m = new DriftMonitor({ now: clock() });
    errors.forEach((e, i) => m.update(outcome(e, i)));
    expect(m.status().detectors.ddm.drifts).toBeGreaterThan(0);
    m.reset();
    expect(m.status()).toEqual(new DriftMonitor().status());
  });

  it('refuses a bad configuration with CONFIG_INVALID', () => {
    expect(() => new DriftMonitor({ detectors: ['ddm', 'ddm'] })).toThrow(/ddm is configured twice/);
    expect(() => new DriftMonitor({ detectors: ['nope'] })).toThrow(/unknown drift detector "nope"/);
    expect(() => new DriftMonitor({ detectors: [{ type: 'ddm', params: { bogus: 1 } }] })).toThrow(/unknown parameter "bogus"/);
    expect(() => new DriftMonitor({ detectors: [] })).toThrow(/no detectors/);
    expect(() => new DriftMonitor({ realInput: 'logit' as never })).toThrow(/realInput/);
  });

  it('checkpoints through JSON: the restored monitor continues exactly like the original', () => {
    const a = new DriftMonitor({ detectors: [...DEFAULT_MONITOR_DETECTORS, { type: 'kswin', params: { seed: 1 } }], now: clock() });
    errors.slice(0, 1100).forEach((e, i) => a.update(outcome(e, i, 0.7)));
    const b = new DriftMonitor({ detectors: [...DEFAULT_MONITOR_DETECTORS, { type: 'kswin', params: { seed: 1 } }], now: clock() });
    const report = b.restore(JSON.parse(JSON.stringify(a.snapshot())));
    expect(report).toEqual({ restored: a.types, skipped: [] });
    expect(b.status()).toEqual(a.status());
    errors.slice(1100).forEach((e, i) => {
      const ua = a.update(outcome(e, i + 1100, 0.7));
      const ub = b.update(outcome(e, i + 1100, 0.7));
      expect(ub.detectors).toEqual(ua.detectors);
    });
  });

  it('restores only what matches the configuration now, and says what it skipped', () => {
    const a = new DriftMonitor({ detectors: ['ddm', 'adwin'] });
    errors.slice(0, 200).forEach((e, i) => a.update(outcome(e, i)));
    const snap = JSON.parse(JSON.stringify(a.snapshot()));
    const b = new DriftMonitor({ detectors: ['ddm', { type: 'adwin', params: { delta: 0.01 } }, 'eddm'] });
    const report = b.restore(snap);
    expect(report.restored).toEqual(['ddm']);
    expect(report.skipped.map((s) => s.type)).toEqual(['adwin', 'eddm']);
    expect(report.skipped[0].reason).toMatch(/parameters/);
    expect(report.skipped[1].reason).toMatch(/not in the checkpoint/);
    expect(b.status().detectors.ddm.samples).toBe(200);
    expect(b.status().detectors.adwin.samples).toBe(0);

    const c = new DriftMonitor({ detectors: ['ddm', 'adwin'], realInput: 'proba' });
    expect(c.restore(snap).skipped).toEqual([{ type: 'adwin', reason: 'checkpoint fed it realInput "error", now "proba"' }]);
  });

  it('refuses a malformed checkpoint whole', () => {
    const a = new DriftMonitor({ detectors: ['ddm', 'eddm'] });
    errors.slice(0, 100).forEach((e, i) => a.update(outcome(e, i)));
    const before = JSON.stringify(a.snapshot());
    const snap = JSON.parse(before);
    snap.detectors.eddm.detector.state.level = 'high';
    const b = new DriftMonitor({ detectors: ['ddm', 'eddm'] });
    const fresh = JSON.stringify(b.snapshot());
    expect(() => b.restore(snap)).toThrow(/eddm\.state\.level is not a number/);
    expect(JSON.stringify(b.snapshot())).toBe(fresh); // ddm was not half-restored
    expect(() => b.restore({ version: 9 })).toThrow(/not a drift monitor checkpoint/);
    snap.detectors.eddm.detector.state.level = 1;
    snap.detectors.ddm.warnings = -1;
    expect(() => b.restore(snap)).toThrow(/ddm\.warnings/);
  });
});
