/**
 * Detectors by name: what exists, what each one expects, and construction from parameters given
 * as strings (command line, environment) or typed values (configuration objects).
 */
import { tfError } from '../errors';
import { ADWIN, ADWIN_SPEC } from './adwin';
import { DDM, DDM_SPEC } from './ddm';
import type { DetectorType, DriftDetector, InputKind, ParamValue } from './detector';
import { EDDM, EDDM_SPEC } from './eddm';
import { HDDMA, HDDM_A_SPEC } from './hddm-a';
import { HDDMW, HDDM_W_SPEC } from './hddm-w';
import { KSWIN, KSWIN_SPEC, type KSWINOptions } from './kswin';
import { PAGE_HINKLEY_SPEC, PageHinkley } from './page-hinkley';
import type { DetectorSpec } from './params';

export const DETECTOR_TYPES: readonly DetectorType[] = ['ddm', 'eddm', 'hddm_a', 'hddm_w', 'adwin', 'page_hinkley', 'kswin'];

/** Detectors of error bits (1 = the prediction was wrong). */
export const BINARY_DETECTORS: readonly DetectorType[] = ['ddm', 'eddm', 'hddm_a', 'hddm_w'];

/** Detectors of any real value. */
export const REAL_DETECTORS: readonly DetectorType[] = ['adwin', 'page_hinkley', 'kswin'];

/** What the engine's drift monitor runs unless configured otherwise (SPEC §4). */
export const DEFAULT_MONITOR_DETECTORS: readonly DetectorType[] = [...BINARY_DETECTORS, 'adwin', 'page_hinkley'];

export interface DetectorInfo {
  type: DetectorType;
  input: InputKind;
  /** Whether the detector can be in 'warning' (River's *AndWarningDetector classes). */
  warnings: boolean;
  /** River's class, for users comparing the two. */
  river: string;
  spec: DetectorSpec<unknown>;
}

function info<P>(type: DetectorType, input: InputKind, warnings: boolean, river: string, spec: DetectorSpec<P>): DetectorInfo {
  return { type, input, warnings, river, spec: spec as unknown as DetectorSpec<unknown> };
}

export const DETECTORS: Readonly<Record<DetectorType, DetectorInfo>> = {
  ddm: info('ddm', 'binary', true, 'river.drift.binary.DDM', DDM_SPEC),
  eddm: info('eddm', 'binary', true, 'river.drift.binary.EDDM', EDDM_SPEC),
  hddm_a: info('hddm_a', 'binary', true, 'river.drift.binary.HDDMA', HDDM_A_SPEC),
  hddm_w: info('hddm_w', 'binary', true, 'river.drift.binary.HDDMW', HDDM_W_SPEC),
  adwin: info('adwin', 'real', false, 'river.drift.ADWIN', ADWIN_SPEC),
  page_hinkley: info('page_hinkley', 'real', false, 'river.drift.PageHinkley', PAGE_HINKLEY_SPEC),
  kswin: info('kswin', 'real', false, 'river.drift.KSWIN', KSWIN_SPEC),
};

export function isDetectorType(name: string): name is DetectorType {
  return (DETECTOR_TYPES as readonly string[]).includes(name);
}

/** The type, or CONFIG_INVALID listing the known ones. */
export function detectorType(name: string): DetectorType {
  if (!isDetectorType(name)) {
    throw tfError('CONFIG_INVALID', `unknown drift detector "${name}" (known: ${DETECTOR_TYPES.join(', ')})`);
  }
  return name;
}

export interface CreateOptions {
  /** KSWIN only: the sampler of reference positions. */
  kswin?: KSWINOptions;
}

/**
 * A detector with River's defaults overridden by `params`. Values may be strings ("0.01",
 * "true") or typed. Unknown detector, unknown parameter or bad value: CONFIG_INVALID.
 */
export function createDetector(type: string, params: Record<string, ParamValue> = {}, options: CreateOptions = {}): DriftDetector {
  const t = detectorType(type);
  switch (t) {
    case 'ddm':
      return new DDM(params as never);
    case 'eddm':
      return new EDDM(params as never);
    case 'hddm_a':
      return new HDDMA(params as never);
    case 'hddm_w':
      return new HDDMW(params as never);
    case 'adwin':
      return new ADWIN(params as never);
    case 'page_hinkley':
      return new PageHinkley(params as never);
    case 'kswin':
      return new KSWIN(params as never, options.kswin);
  }
}

/** A detector rebuilt from a snapshot: its type and parameters, then its state. */
export function restoreDetector(snapshot: unknown, options: CreateOptions = {}): DriftDetector {
  const s = snapshot as { type?: unknown; params?: unknown } | null;
  if (typeof s !== 'object' || s === null || typeof s.type !== 'string') {
    throw tfError('CHECKPOINT_CORRUPT', 'drift snapshot: not a detector snapshot');
  }
  const params = typeof s.params === 'object' && s.params !== null ? (s.params as Record<string, ParamValue>) : {};
  const d = createDetector(s.type, params, options);
  d.restore(snapshot);
  return d;
}
