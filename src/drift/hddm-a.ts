/**
 * HDDM_A, drift detection from Hoeffding's bound on moving averages (Frías-Blanco et al. 2015),
 * as River's `drift.binary.HDDMA` (itself after MOA).
 *
 * Keeps the mean of all samples since the last reset (z) and a cut point: the prefix whose
 * mean plus Hoeffding bound was lowest (x_min; x_max for decreases). An increase is signalled
 * when mean(z) - mean(x_min) >= sqrt(m/2 * ln(2/confidence)) with
 * m = (n_z - n_xmin) / n_xmin / n_z, at drift_confidence (drift) or warning_confidence
 * (warning). Note the comparison is `>=`. With two_sided_test, decreases are tested the same
 * way and can only raise the flags.
 */
import { BaseDetector, rejectInput } from './base';
import { ratioScore, type DriftState } from './detector';
import { resolveParams, type DetectorSpec } from './params';
import type { StateReader } from './snapshot-json';

export interface HDDMAParams {
  drift_confidence: number;
  warning_confidence: number;
  two_sided_test: boolean;
}

export const HDDM_A_SPEC: DetectorSpec<HDDMAParams> = {
  params: {
    drift_confidence: { kind: 'float', default: 0.001, min: 0, max: 1, minExclusive: true, maxExclusive: true, doc: 'confidence of the drift test' },
    warning_confidence: { kind: 'float', default: 0.005, min: 0, max: 1, minExclusive: true, maxExclusive: true, doc: 'confidence of the warning test' },
    two_sided_test: { kind: 'bool', default: false, doc: 'also detect decreases of the error rate' },
  },
};

export class HDDMA extends BaseDetector<HDDMAParams> {
  readonly type = 'hddm_a' as const;
  readonly input = 'binary' as const;
  private zN = 0;
  private zMean = 0;
  private minN = 0;
  private minMean = 0;
  private maxN = 0;
  private maxMean = 0;
  private minBound = Infinity;
  private maxBound = Infinity;
  // Score inputs from the last drift-level tests.
  private incr = 0;
  private incrBound = 0;
  private decr = 0;
  private decrBound = 0;
  // ln(1/drift_confidence) and ln(2/confidence) never change: computed once, same values.
  private readonly lnCut: number;
  private readonly lnDrift: number;
  private readonly lnWarn: number;

  private readonly twoSided: boolean;

  constructor(params: Partial<HDDMAParams> = {}) {
    super(resolveParams('hddm_a', HDDM_A_SPEC, params));
    this.twoSided = this.cfg.two_sided_test;
    this.lnCut = Math.log(1 / this.cfg.drift_confidence);
    this.lnDrift = Math.log(2 / this.cfg.drift_confidence);
    this.lnWarn = Math.log(2 / this.cfg.warning_confidence);
  }

  private bound(n: number): number {
    return Math.sqrt((1 / (2 * n)) * this.lnCut);
  }

  update(x: number): DriftState {
    if (!Number.isFinite(x)) rejectInput(this.type, x);
    if (this.drift) this.reset();
    const zn = ++this.zN;
    this.zMean += (x - this.zMean) / zn;
    const z = this.zMean;
    const epsZ = this.bound(zn);
    // The bounds at the cut points only change when the cut points move: kept, not recomputed.
    if (this.minN === 0 || this.minMean + this.minBound >= z + epsZ) {
      this.minN = zn;
      this.minMean = z;
      this.minBound = epsZ;
    }
    // x_max only feeds the decrease test; River keeps it one-sided too, unread.
    if (this.twoSided && (this.maxN === 0 || this.maxMean - this.maxBound <= z - epsZ)) {
      this.maxN = zn;
      this.maxMean = z;
      this.maxBound = epsZ;
    }

    this.incr = 0;
    this.incrBound = 0;
    if (this.minN !== zn) {
      const m = ((zn - this.minN) / this.minN) * (1 / zn);
      const diff = z - this.minMean;
      const driftEps = Math.sqrt((m / 2) * this.lnDrift);
      this.incr = diff;
      this.incrBound = driftEps;
      if (diff >= driftEps) {
        this.warning = false;
        this.drift = true;
      } else {
        this.warning = diff >= Math.sqrt((m / 2) * this.lnWarn);
        this.drift = false;
      }
    } else {
      this.warning = false;
      this.drift = false;
    }

    if (this.twoSided) {
      this.decr = 0;
      this.decrBound = 0;
      if (this.maxN !== zn) {
        const m = ((zn - this.maxN) / this.maxN) * (1 / zn);
        const diff = this.maxMean - z;
        const driftEps = Math.sqrt((m / 2) * this.lnDrift);
        this.decr = diff;
        this.decrBound = driftEps;
        if (diff >= driftEps) this.drift = true;
        else if (diff >= Math.sqrt((m / 2) * this.lnWarn)) this.warning = true;
      }
    }
    return this.drift ? 'drift' : this.warning ? 'warning' : 'stable';
  }

  get n(): number {
    return this.zN;
  }

  /** mean(z) - mean(x_min); two-sided: the larger of that and mean(x_max) - mean(z). */
  statistic(): number {
    return this.cfg.two_sided_test ? Math.max(this.incr, this.decr) : this.incr;
  }

  /** statistic / its Hoeffding bound at drift_confidence (two-sided: the larger ratio). */
  score(): number {
    const up = ratioScore(this.incr, this.incrBound);
    return this.cfg.two_sided_test ? Math.max(up, ratioScore(this.decr, this.decrBound)) : up;
  }

  protected clearState(): void {
    this.zN = 0;
    this.zMean = 0;
    this.minN = 0;
    this.minMean = 0;
    this.maxN = 0;
    this.maxMean = 0;
    this.minBound = Infinity;
    this.maxBound = Infinity;
    this.incr = 0;
    this.incrBound = 0;
    this.decr = 0;
    this.decrBound = 0;
  }

  protected saveState(): Record<string, unknown> {
    return {
      z: { n: this.zN, mean: this.zMean },
      x_min: { n: this.minN, mean: this.minMean },
      x_max: { n: this.maxN, mean: this.maxMean },
      incr: this.incr,
      incr_bound: this.incrBound,
      decr: this.decr,
      decr_bound: this.decrBound,
    };
  }

  protected loadState(r: StateReader): void {
    const z = r.obj('z');
    const lo = r.obj('x_min');
    const hi = r.obj('x_max');
    const v = [z.int('n'), z.num('mean'), lo.int('n'), lo.num('mean'), hi.int('n'), hi.num('mean')];
    const s = [r.num('incr'), r.num('incr_bound'), r.num('decr'), r.num('decr_bound')];
    [this.zN, this.zMean, this.minN, this.minMean, this.maxN, this.maxMean] = v;
    [this.incr, this.incrBound, this.decr, this.decrBound] = s;
    this.minBound = this.minN === 0 ? Infinity : this.bound(this.minN);
    this.maxBound = this.maxN === 0 ? Infinity : this.bound(this.maxN);
  }
}
