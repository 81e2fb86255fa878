/** Concept-drift detection: detectors after River, their registry and the engine's monitor. */
export type { DetectorSnapshot, DetectorType, DriftDetector, DriftState, InputKind, ParamValue } from './detector';
export { SCORE_CAP } from './detector';
export {
  BINARY_DETECTORS,
  createDetector,
  DEFAULT_MONITOR_DETECTORS,
  DETECTOR_TYPES,
  DETECTORS,
  detectorType,
  isDetectorType,
  REAL_DETECTORS,
  restoreDetector,
} from './registry';
export { DriftMonitor } from './monitor';
export type {
  DetectorConfig,
  DetectorStatus,
  DriftEvent,
  DriftMonitorOptions,
  MonitorSnapshot,
  MonitorStatus,
  MonitorUpdate,
  Outcome,
  RealInput,
  RestoreReport,
} from './monitor';
export { ADWIN } from './adwin';
export { DDM } from './ddm';
export { EDDM } from './eddm';
export { HDDMA } from './hddm-a';
export { HDDMW } from './hddm-w';
export { KSWIN, PythonSampler, type KswinSampler } from './kswin';
export { PageHinkley } from './page-hinkley';
