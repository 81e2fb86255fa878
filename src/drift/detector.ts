/**
 * The contract every drift detector keeps. Detectors mirror River's `river.drift` classes: same
 * parameter names and defaults, same warm-up, same comparisons, and the same reset at the start
 * of the update that follows a drift. They know nothing about HTTP or metrics.
 */

export type DriftState = 'stable' | 'warning' | 'drift';

export type DetectorType = 'ddm' | 'eddm' | 'hddm_a' | 'hddm_w' | 'adwin' | 'page_hinkley' | 'kswin';

/** What a detector expects: a stream of error bits (1 = error) or any real value. */
export type InputKind = 'binary' | 'real';

export type ParamValue = number | boolean | string;

/** A detector's full state as plain JSON (no Infinity or NaN: see snapshot-json.ts). */
export interface DetectorSnapshot {
  type: DetectorType;
  version: 1;
  params: Record<string, ParamValue>;
  state: Record<string, unknown>;
}

export interface DriftDetector {
  readonly type: DetectorType;
  readonly input: InputKind;
  /** Feeds one value; answers the state after it. Throws DRIFT_INPUT_INVALID on a non-finite value. */
  update(x: number): DriftState;
  readonly state: DriftState;
  /** River's two flags. EDDM can report both at once; `state` then says 'drift'. */
  readonly driftDetected: boolean;
  readonly warningDetected: boolean;
  /** Samples seen since the last reset, counted where River counts them. */
  readonly n: number;
  /** The quantity the detector thresholds (per detector, see README.md). */
  statistic(): number;
  /**
   * Normalised evidence of change: 0 = none, 1.0 = exactly at the drift threshold, above 1 past
   * it (capped at SCORE_CAP so it stays finite). Formula per detector in README.md.
   */
  score(): number;
  params(): Record<string, ParamValue>;
  snapshot(): DetectorSnapshot;
  /** Replaces the state with a snapshot taken from a detector of the same type and parameters. */
  restore(s: unknown): void;
  /** Back to the state of a new detector (River's `_reset`). */
  reset(): void;
}

/** Scores are ratios that can divide by a zero-width threshold: keep them finite for JSON. */
export const SCORE_CAP = 10;

/** `excess / width` clamped to [0, SCORE_CAP]; a zero width with positive excess is past it. */
export function ratioScore(excess: number, width: number): number {
  if (!(excess > 0)) return 0;
  if (!(width > 0)) return SCORE_CAP;
  const r = excess / width;
  return r > SCORE_CAP ? SCORE_CAP : r;
}

export function stateOf(drift: boolean, warning: boolean): DriftState {
  return drift ? 'drift' : warning ? 'warning' : 'stable';
}
