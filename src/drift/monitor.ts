/**
 * The engine's drift monitor: a configured set of detectors fed one labelled outcome at a time,
 * with the bookkeeping the status endpoint and the metrics need (warning episodes, drifts, last
 * times). It knows nothing about HTTP: the server calls update/status/reset/snapshot and turns
 * `onEvent` into `ml_drift_detected_total{detector_type,severity}` and `scores()` into
 * `ml_drift_score{detector_type}`.
 */
import { tfError } from '../errors';
import type { DetectorSnapshot, DetectorType, DriftDetector, DriftState, ParamValue } from './detector';
import { createDetector, DEFAULT_MONITOR_DETECTORS, DETECTORS, detectorType, restoreDetector } from './registry';

/** What real-valued detectors (adwin, page_hinkley, kswin) are fed. */
export type RealInput = 'error' | 'proba';

export interface DetectorConfig {
  type: DetectorType | string;
  params?: Record<string, ParamValue>;
}

export interface DriftEvent {
  detector: DetectorType;
  severity: 'warning' | 'drift';
  /** ISO time of the outcome that caused it. */
  at: string;
  score: number;
  /** The detector's sample count at that moment (before the reset a drift causes). */
  samples: number;
}

export interface DriftMonitorOptions {
  /** Detector names or {type, params}; default DEFAULT_MONITOR_DETECTORS with River's defaults. */
  detectors?: ReadonlyArray<DetectorType | string | DetectorConfig>;
  /** 'error' (default): real-valued detectors get the error bit too; 'proba': 1 - P(actual). */
  realInput?: RealInput;
  onEvent?: (e: DriftEvent) => void;
  /** Clock, for tests. */
  now?: () => Date;
}

export interface Outcome {
  /** Predicted class, 0 or 1. */
  prediction: number;
  /** True class, 0 or 1. */
  actual: number;
  /** The model's probability of class 1 (UP), when known. */
  proba?: number | null;
}

export interface DetectorStatus {
  type: DetectorType;
  input: 'binary' | 'real';
  /** What this detector is being fed: 'error' bits or '1-proba' of the actual class. */
  feed: 'error' | '1-proba';
  state: DriftState;
  samples: number;
  statistic: number;
  score: number;
  warnings: number;
  drifts: number;
  lastWarningAt: string | null;
  lastDriftAt: string | null;
  /** When the state last changed (to or from stable, warning or drift). */
  lastChangeAt: string | null;
  params: Record<string, ParamValue>;
}

export interface MonitorStatus {
  realInput: RealInput;
  /** Outcomes fed since the last reset. */
  outcomes: number;
  detectors: Record<string, DetectorStatus>;
}

export interface MonitorUpdate {
  outcomes: number;
  detectors: Record<string, { state: DriftState; score: number }>;
  events: DriftEvent[];
}

export interface MonitorSnapshot {
  version: 1;
  realInput: RealInput;
  outcomes: number;
  detectors: Record<string, TrackedSnapshot>;
}

interface TrackedSnapshot {
  detector: DetectorSnapshot;
  warnings: number;
  drifts: number;
  lastWarningAt: string | null;
  lastDriftAt: string | null;
  lastChangeAt: string | null;
}

export interface RestoreReport {
  restored: DetectorType[];
  /** Detectors left fresh: absent from the checkpoint, or configured differently now. */
  skipped: Array<{ type: DetectorType; reason: string }>;
}

/** One detector plus the counts kept for it. */
class Tracked {
  warnings = 0;
  drifts = 0;
  lastWarningAt: string | null = null;
  lastDriftAt: string | null = null;
  lastChangeAt: string | null = null;
  prev: DriftState = 'stable';

  constructor(public detector: DriftDetector) {}

  clearCounts(): void {
    this.warnings = 0;
    this.drifts = 0;
    this.lastWarningAt = null;
    this.lastDriftAt = null;
    this.lastChangeAt = null;
    this.prev = 'stable';
  }
}

function invalid(msg: string): never {
  throw tfError('DRIFT_INPUT_INVALID', msg);
}

function checkClass(name: string, v: unknown): number {
  if (v !== 0 && v !== 1) invalid(`${name} must be 0 or 1, got ${JSON.stringify(v)}`);
  return v;
}

export class DriftMonitor {
  readonly realInput: RealInput;
  private readonly tracked: Tracked[];
  private outcomes = 0;
  private readonly onEvent: ((e: DriftEvent) => void) | undefined;
  private readonly now: () => Date;

  constructor(options: DriftMonitorOptions = {}) {
    const realInput = options.realInput ?? 'error';
    if (realInput !== 'error' && realInput !== 'proba') {
      throw tfError('CONFIG_INVALID', `drift monitor: realInput must be "error" or "proba", got ${JSON.stringify(realInput)}`);
    }
    this.realInput = realInput;
    const configs = (options.detectors ?? DEFAULT_MONITOR_DETECTORS).map((c) => (typeof c === 'string' ? { type: c } : c));
    if (configs.length === 0) throw tfError('CONFIG_INVALID', 'drift monitor: no detectors configured');
    const seen = new Set<DetectorType>();
    this.tracked = configs.map((c) => {
      const type = detectorType(c.type);
      // Metrics are labelled by detector_type alone, so each type may appear once.
      if (seen.has(type)) throw tfError('CONFIG_INVALID', `drift monitor: detector ${type} is configured twice`);
      seen.add(type);
      return new Tracked(createDetector(type, c.params ?? {}));
    });
    this.onEvent = options.onEvent;
    this.now = options.now ?? (() => new Date());
  }

  get types(): DetectorType[] {
    return this.tracked.map((t) => t.detector.type);
  }

  /**
   * Feeds one outcome to every detector. Validates it first (DRIFT_INPUT_INVALID naming the field),
   * so a bad outcome changes nothing.
   */
  update(outcome: Outcome): MonitorUpdate {
    const prediction = checkClass('prediction', outcome.prediction);
    const actual = checkClass('actual', outcome.actual);
    const proba = outcome.proba;
    if (proba !== undefined && proba !== null && !(typeof proba === 'number' && proba >= 0 && proba <= 1)) {
      invalid(`proba must be a number from 0 to 1, got ${JSON.stringify(proba)}`);
    }
    const error = prediction === actual ? 0 : 1;
    const known = typeof proba === 'number';
    const real = this.realInput === 'proba' && known ? 1 - (actual === 1 ? proba : 1 - proba) : error;

    this.outcomes++;
    let at: string | null = null;
    const stamp = (): string => (at ??= this.now().toISOString());
    const events: DriftEvent[] = [];
    const detectors: MonitorUpdate['detectors'] = {};
    for (const t of this.tracked) {
      const d = t.detector;
      const state = d.update(d.input === 'binary' ? error : real);
      const score = d.score();
      detectors[d.type] = { state, score };
      if (state !== t.prev) t.lastChangeAt = stamp();
      if (state === 'warning' && t.prev !== 'warning') {
        t.warnings++;
        t.lastWarningAt = stamp();
        events.push({ detector: d.type, severity: 'warning', at: t.lastWarningAt, score, samples: d.n });
      } else if (state === 'drift') {
        t.drifts++;
        t.lastDriftAt = stamp();
        events.push({ detector: d.type, severity: 'drift', at: t.lastDriftAt, score, samples: d.n });
      }
      t.prev = state;
    }
    if (this.onEvent) for (const e of events) this.onEvent(e);
    return { outcomes: this.outcomes, detectors, events };
  }

  /** The last score of every detector, for `ml_drift_score{detector_type}`. */
  scores(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const t of this.tracked) out[t.detector.type] = t.detector.score();
    return out;
  }

  /** What `GET /monitoring/drift/status` answers. */
  status(): MonitorStatus {
    const detectors: Record<string, DetectorStatus> = {};
    for (const t of this.tracked) {
      const d = t.detector;
      detectors[d.type] = {
        type: d.type,
        input: d.input,
        feed: d.input === 'binary' || this.realInput === 'error' ? 'error' : '1-proba',
        state: d.state,
        samples: d.n,
        statistic: d.statistic(),
        score: d.score(),
        warnings: t.warnings,
        drifts: t.drifts,
        lastWarningAt: t.lastWarningAt,
        lastDriftAt: t.lastDriftAt,
        lastChangeAt: t.lastChangeAt,
        params: d.params(),
      };
    }
    return { realInput: this.realInput, outcomes: this.outcomes, detectors };
  }

  /** Every detector back to new, and the counts to zero. */
  reset(): void {
    this.outcomes = 0;
    for (const t of this.tracked) {
      t.detector.reset();
      t.clearCounts();
    }
  }

  snapshot(): MonitorSnapshot {
    const detectors: Record<string, TrackedSnapshot> = {};
    for (const t of this.tracked) {
      detectors[t.detector.type] = {
        detector: t.detector.snapshot(),
        warnings: t.warnings,
        drifts: t.drifts,
        lastWarningAt: t.lastWarningAt,
        lastDriftAt: t.lastDriftAt,
        lastChangeAt: t.lastChangeAt,
      };
    }
    return { version: 1, realInput: this.realInput, outcomes: this.outcomes, detectors };
  }

  /**
   * Restores what a checkpoint holds for the detectors configured now. A detector the
   * checkpoint lacks, or holds with other parameters, starts fresh and is listed in `skipped`
   * (the configuration may have changed between runs). A malformed checkpoint throws
   * CHECKPOINT_CORRUPT and changes nothing.
   */
  restore(s: unknown): RestoreReport {
    const snap = s as Partial<MonitorSnapshot> | null;
    if (typeof snap !== 'object' || snap === null || snap.version !== 1 || typeof snap.detectors !== 'object' || snap.detectors === null) {
      throw tfError('CHECKPOINT_CORRUPT', 'drift snapshot: not a drift monitor checkpoint (version 1)');
    }
    if (!Number.isSafeInteger(snap.outcomes) || (snap.outcomes as number) < 0) {
      throw tfError('CHECKPOINT_CORRUPT', 'drift snapshot: outcomes is not a whole number');
    }
    const report: RestoreReport = { restored: [], skipped: [] };
    const staged: Array<{ t: Tracked; d: DriftDetector; ts: TrackedSnapshot }> = [];
    for (const t of this.tracked) {
      const type = t.detector.type;
      const ts = (snap.detectors as Record<string, TrackedSnapshot | undefined>)[type];
      if (!ts) {
        report.skipped.push({ type, reason: 'not in the checkpoint' });
        continue;
      }
      if (snap.realInput !== this.realInput && DETECTORS[type].input === 'real') {
        report.skipped.push({ type, reason: `checkpoint fed it realInput "${String(snap.realInput)}", now "${this.realInput}"` });
        continue;
      }
      checkCounts(type, ts);
      const d = restoreDetector(ts.detector);
      const now = JSON.stringify(t.detector.params());
      if (JSON.stringify(d.params()) !== now) {
        report.skipped.push({ type, reason: `checkpoint parameters ${JSON.stringify(d.params())} differ from ${now}` });
        continue;
      }
      staged.push({ t, d, ts });
    }
    this.outcomes = snap.outcomes as number;
    for (const { t, d, ts } of staged) {
      t.detector = d;
      t.warnings = ts.warnings;
      t.drifts = ts.drifts;
      t.lastWarningAt = ts.lastWarningAt;
      t.lastDriftAt = ts.lastDriftAt;
      t.lastChangeAt = ts.lastChangeAt;
      t.prev = d.state;
      report.restored.push(d.type);
    }
    for (const { type } of report.skipped) {
      const t = this.tracked.find((x) => x.detector.type === type)!;
      t.detector.reset();
      t.clearCounts();
    }
    return report;
  }
}

function checkCounts(type: DetectorType, ts: TrackedSnapshot): void {
  const bad = (what: string): never => {
    throw tfError('CHECKPOINT_CORRUPT', `drift snapshot: ${type}.${what}`);
  };
  if (typeof ts !== 'object' || ts === null) bad('is not an object');
  if (!Number.isSafeInteger(ts.warnings) || ts.warnings < 0) bad('warnings is not a whole number');
  if (!Number.isSafeInteger(ts.drifts) || ts.drifts < 0) bad('drifts is not a whole number');
  for (const k of ['lastWarningAt', 'lastDriftAt', 'lastChangeAt'] as const) {
    const v = ts[k];
    if (v !== null && (typeof v !== 'string' || Number.isNaN(Date.parse(v)))) bad(`${k} is not an ISO time or null`);
  }
}
