/**
 * DDM, the Drift Detection Method (Gama et al. 2004), as River's `drift.binary.DDM`.
 *
 * Watches the error rate p_i of a stream of error bits and its binomial standard deviation
 * s_i = sqrt(p_i (1 - p_i) / i). After the warm-up it remembers (p_min, s_min) where p + s was
 * lowest (ties move the minimum: `<=`), and signals when p_i + s_i rises strictly above
 * p_min + warning_threshold * s_min (warning) or p_min + drift_threshold * s_min (drift; the
 * warning flag is then cleared). Like River it resets at the start of the update after a drift.
 */
import { BaseDetector, rejectInput } from './base';
import { ratioScore, type DriftState } from './detector';
import type { DetectorSpec } from './params';
import { resolveParams } from './params';
import { encodeNumber, type StateReader } from './snapshot-json';

export interface DDMParams {
  warm_start: number;
  warning_threshold: number;
  drift_threshold: number;
}

export const DDM_SPEC: DetectorSpec<DDMParams> = {
  params: {
    warm_start: { kind: 'int', default: 30, min: 0, doc: 'samples before change can be detected (tests start at sample warm_start + 1)' },
    warning_threshold: { kind: 'float', default: 2.0, min: 0, doc: 'warning when p + s > p_min + warning_threshold * s_min' },
    drift_threshold: { kind: 'float', default: 3.0, min: 0, doc: 'drift when p + s > p_min + drift_threshold * s_min' },
  },
};

export class DDM extends BaseDetector<DDMParams> {
  readonly type = 'ddm' as const;
  readonly input = 'binary' as const;
  private count = 0;
  private p = 0;
  private ps = 0;
  private pMin = Infinity;
  private sMin = Infinity;
  private psMin = Infinity;
  // Copies of the parameters: the update loop reads plain own fields.
  private readonly warmStart: number;
  private readonly warnK: number;
  private readonly driftK: number;

  constructor(params: Partial<DDMParams> = {}) {
    super(resolveParams('ddm', DDM_SPEC, params));
    this.warmStart = this.cfg.warm_start;
    this.warnK = this.cfg.warning_threshold;
    this.driftK = this.cfg.drift_threshold;
  }

  update(x: number): DriftState {
    if (!Number.isFinite(x)) rejectInput(this.type, x);
    if (this.drift) this.reset();
    const n = ++this.count;
    this.p += (x - this.p) / n;
    const p = this.p;
    const s = Math.sqrt((p * (1 - p)) / n);
    const ps = p + s;
    this.ps = ps;
    if (n > this.warmStart) {
      if (ps <= this.psMin) {
        this.pMin = p;
        this.sMin = s;
        this.psMin = p + s;
      }
      this.warning = ps > this.pMin + this.warnK * this.sMin;
      if (ps > this.pMin + this.driftK * this.sMin) {
        this.drift = true;
        this.warning = false;
      }
    }
    return this.drift ? 'drift' : this.warning ? 'warning' : 'stable';
  }

  get n(): number {
    return this.count;
  }

  /** p_i + s_i after the last update. */
  statistic(): number {
    return this.ps;
  }

  /** (p_i + s_i - p_min) / (drift_threshold * s_min), once past the warm-up. */
  score(): number {
    if (this.count <= this.cfg.warm_start) return 0;
    return ratioScore(this.ps - this.pMin, this.cfg.drift_threshold * this.sMin);
  }

  protected clearState(): void {
    this.count = 0;
    this.p = 0;
    this.ps = 0;
    this.pMin = Infinity;
    this.sMin = Infinity;
    this.psMin = Infinity;
  }

  protected saveState(): Record<string, unknown> {
    return {
      n: this.count,
      p: this.p,
      ps: this.ps,
      p_min: encodeNumber(this.pMin),
      s_min: encodeNumber(this.sMin),
      ps_min: encodeNumber(this.psMin),
    };
  }

  protected loadState(r: StateReader): void {
    const v = { n: r.int('n'), p: r.num('p'), ps: r.num('ps'), pMin: r.num('p_min'), sMin: r.num('s_min'), psMin: r.num('ps_min') };
    this.count = v.n;
    this.p = v.p;
    this.ps = v.ps;
    this.pMin = v.pMin;
    this.sMin = v.sMin;
    this.psMin = v.psMin;
  }
}
