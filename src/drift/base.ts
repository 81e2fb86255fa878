/**
 * What every detector shares: River's two flags, the state derived from them, parameters, and
 * the snapshot envelope. Subclasses keep their own numbers and the update loop, which is the
 * hot path, free of anything else.
 */
import { tfError } from '../errors';
import {
  stateOf,
  type DetectorSnapshot,
  type DetectorType,
  type DriftDetector,
  type DriftState,
  type InputKind,
  type ParamValue,
} from './detector';
import { publicParams } from './params';
import { openSnapshot, StateReader } from './snapshot-json';

export function rejectInput(type: DetectorType, x: unknown): never {
  throw tfError('DRIFT_INPUT_INVALID', `drift detector ${type}: input must be a finite number, got ${String(x)}`);
}

export abstract class BaseDetector<P> implements DriftDetector {
  abstract readonly type: DetectorType;
  abstract readonly input: InputKind;
  protected drift = false;
  protected warning = false;

  constructor(protected readonly cfg: Readonly<P>) {}

  abstract update(x: number): DriftState;
  abstract get n(): number;
  abstract statistic(): number;
  abstract score(): number;
  /** Detector-specific state, JSON-safe (see snapshot-json.ts). */
  protected abstract saveState(): Record<string, unknown>;
  /** Reads every field first and assigns only when all are valid. */
  protected abstract loadState(r: StateReader): void;
  protected abstract clearState(): void;

  get state(): DriftState {
    return stateOf(this.drift, this.warning);
  }

  get driftDetected(): boolean {
    return this.drift;
  }

  get warningDetected(): boolean {
    return this.warning;
  }

  params(): Record<string, ParamValue> {
    return publicParams(this.cfg);
  }

  reset(): void {
    this.drift = false;
    this.warning = false;
    this.clearState();
  }

  snapshot(): DetectorSnapshot {
    return {
      type: this.type,
      version: 1,
      params: this.params(),
      state: { drift: this.drift, warning: this.warning, ...this.saveState() },
    };
  }

  restore(s: unknown): void {
    const r = new StateReader(openSnapshot(s, this.type, this.params()), `${this.type}.state`);
    const drift = r.bool('drift');
    const warning = r.bool('warning');
    this.loadState(r);
    this.drift = drift;
    this.warning = warning;
  }
}
