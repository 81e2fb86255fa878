/**
 * HDDM_W, drift detection from McDiarmid's bound on exponentially weighted moving averages
 * (Frías-Blanco et al. 2015), as River's `drift.binary.HDDMW` (itself after MOA).
 *
 * Keeps an EWMA of all samples (weight lambda_val on the newest) with its independent bound
 * condition ibc (ibc <- lambda^2 + (1 - lambda)^2 ibc), a cut point where EWMA + bound was
 * lowest, and a second EWMA of the samples after that cut. An increase is signalled when
 * ewma_after - ewma_cut > sqrt((ibc_cut + ibc_after) * ln(1/confidence) / 2) (strict), at
 * drift_confidence (drift) or warning_confidence (warning). two_sided_test adds the mirror test
 * for decreases.
 *
 * River's EWMA (its Rust `EWMean`) has a quirk we keep because it changes the answers: while
 * the average is exactly 0 the next sample replaces it instead of being weighted, so a run of
 * correct predictions followed by one error jumps the average to 1.
 */
import { BaseDetector, rejectInput } from './base';
import { ratioScore, type DriftState } from './detector';
import { resolveParams, type DetectorSpec } from './params';
import type { StateReader } from './snapshot-json';

export interface HDDMWParams {
  drift_confidence: number;
  warning_confidence: number;
  lambda_val: number;
  two_sided_test: boolean;
}

export const HDDM_W_SPEC: DetectorSpec<HDDMWParams> = {
  params: {
    drift_confidence: { kind: 'float', default: 0.001, min: 0, max: 1, minExclusive: true, maxExclusive: true, doc: 'confidence of the drift test' },
    warning_confidence: { kind: 'float', default: 0.005, min: 0, max: 1, minExclusive: true, maxExclusive: true, doc: 'confidence of the warning test' },
    lambda_val: { kind: 'float', default: 0.05, min: 0, max: 1, doc: 'weight of the newest sample in the moving averages' },
    two_sided_test: { kind: 'bool', default: false, doc: 'also detect decreases of the error rate' },
  },
};

/** River's SampleInfo: an EWMA, whether it saw a sample, and its bound condition. */
class Sample {
  ewma = 0;
  init = false;
  ibc = 1;

  update(x: number, lambda: number, oneMinus: number, lambdaSq: number, oneMinusSq: number): void {
    this.ewma = this.ewma === 0 ? x : lambda * x + oneMinus * this.ewma;
    this.init = true;
    this.ibc = lambdaSq + oneMinusSq * this.ibc;
  }

  copyFrom(o: Sample): void {
    this.ewma = o.ewma;
    this.init = o.init;
    this.ibc = o.ibc;
  }

  clear(): void {
    this.ewma = 0;
    this.init = false;
    this.ibc = 1;
  }

  save(): Record<string, unknown> {
    return { ewma: this.ewma, init: this.init, ibc: this.ibc };
  }
}

function readSample(r: StateReader, key: string): Sample {
  const o = r.obj(key);
  const s = new Sample();
  s.ewma = o.num('ewma');
  s.init = o.bool('init');
  s.ibc = o.num('ibc');
  return s;
}

export class HDDMW extends BaseDetector<HDDMWParams> {
  readonly type = 'hddm_w' as const;
  readonly input = 'binary' as const;
  private count = 0;
  private readonly total = new Sample();
  private readonly s1Incr = new Sample();
  private readonly s2Incr = new Sample();
  private readonly s1Decr = new Sample();
  private readonly s2Decr = new Sample();
  private incrCut = Infinity;
  private decrCut = -Infinity;
  private incr = 0;
  private incrBound = 0;
  private decr = 0;
  private decrBound = 0;
  private readonly lambda: number;
  private readonly oneMinus: number;
  private readonly lambdaSq: number;
  private readonly oneMinusSq: number;
  private readonly lnDrift: number;
  private readonly lnWarn: number;

  private readonly twoSided: boolean;

  constructor(params: Partial<HDDMWParams> = {}) {
    super(resolveParams('hddm_w', HDDM_W_SPEC, params));
    this.twoSided = this.cfg.two_sided_test;
    this.lambda = this.cfg.lambda_val;
    this.oneMinus = 1 - this.lambda;
    this.lambdaSq = this.lambda * this.lambda;
    this.oneMinusSq = this.oneMinus * this.oneMinus;
    this.lnDrift = Math.log(1 / this.cfg.drift_confidence);
    this.lnWarn = Math.log(1 / this.cfg.warning_confidence);
  }

  private feed(s: Sample, x: number): void {
    s.update(x, this.lambda, this.oneMinus, this.lambdaSq, this.oneMinusSq);
  }

  update(x: number): DriftState {
    if (!Number.isFinite(x)) rejectInput(this.type, x);
    if (this.drift) this.reset();
    this.count++;
    const total = this.total;
    this.feed(total, x);
    const eps = Math.sqrt((total.ibc * this.lnDrift) / 2);

    if (total.ewma + eps < this.incrCut) {
      this.incrCut = total.ewma + eps;
      this.s1Incr.copyFrom(total);
      this.s2Incr.clear();
    } else {
      this.feed(this.s2Incr, x);
    }
    this.incr = 0;
    this.incrBound = 0;
    if (this.s1Incr.init && this.s2Incr.init) {
      const ibc = this.s1Incr.ibc + this.s2Incr.ibc;
      const diff = this.s2Incr.ewma - this.s1Incr.ewma;
      const bound = Math.sqrt((ibc * this.lnDrift) / 2);
      this.incr = diff;
      this.incrBound = bound;
      if (diff > bound) {
        this.warning = false;
        this.drift = true;
      } else {
        this.warning = diff > Math.sqrt((ibc * this.lnWarn) / 2);
        this.drift = false;
      }
    } else {
      this.warning = false;
      this.drift = false;
    }

    // River also keeps the decrease statistics when one-sided; nothing reads them then.
    if (this.twoSided) {
      if (total.ewma - eps > this.decrCut) {
        this.decrCut = total.ewma - eps;
        this.s1Decr.copyFrom(total);
        this.s2Decr.clear();
      } else {
        this.feed(this.s2Decr, x);
      }
      this.decr = 0;
      this.decrBound = 0;
      if (this.s1Decr.init && this.s2Decr.init) {
        const ibc = this.s2Decr.ibc + this.s1Decr.ibc;
        const diff = this.s1Decr.ewma - this.s2Decr.ewma;
        const bound = Math.sqrt((ibc * this.lnDrift) / 2);
        this.decr = diff;
        this.decrBound = bound;
        if (diff > bound) this.drift = true;
        else if (diff > Math.sqrt((ibc * this.lnWarn) / 2)) this.warning = true;
      }
    }
    return this.drift ? 'drift' : this.warning ? 'warning' : 'stable';
  }

  get n(): number {
    return this.count;
  }

  /** ewma_after_cut - ewma_at_cut; two-sided: the larger of the increase and the decrease. */
  statistic(): number {
    return this.cfg.two_sided_test ? Math.max(this.incr, this.decr) : this.incr;
  }

  /** statistic / its McDiarmid bound at drift_confidence (two-sided: the larger ratio). */
  score(): number {
    const up = ratioScore(this.incr, this.incrBound);
    return this.cfg.two_sided_test ? Math.max(up, ratioScore(this.decr, this.decrBound)) : up;
  }

  protected clearState(): void {
    this.count = 0;
    this.total.clear();
    this.s1Incr.clear();
    this.s2Incr.clear();
    this.s1Decr.clear();
    this.s2Decr.clear();
    this.incrCut = Infinity;
    this.decrCut = -Infinity;
    this.incr = 0;
    this.incrBound = 0;
    this.decr = 0;
    this.decrBound = 0;
  }

  protected saveState(): Record<string, unknown> {
    return {
      n: this.count,
      total: this.total.save(),
      s1_incr: this.s1Incr.save(),
      s2_incr: this.s2Incr.save(),
      s1_decr: this.s1Decr.save(),
      s2_decr: this.s2Decr.save(),
      incr_cutpoint: this.incrCut === Infinity ? 'Infinity' : this.incrCut,
      decr_cutpoint: this.decrCut === -Infinity ? '-Infinity' : this.decrCut,
      incr: this.incr,
      incr_bound: this.incrBound,
      decr: this.decr,
      decr_bound: this.decrBound,
    };
  }

  protected loadState(r: StateReader): void {
    const samples = ['total', 's1_incr', 's2_incr', 's1_decr', 's2_decr'].map((k) => readSample(r, k));
    const v = [r.num('incr_cutpoint'), r.num('decr_cutpoint'), r.num('incr'), r.num('incr_bound'), r.num('decr'), r.num('decr_bound')];
    const n = r.int('n');
    [this.total, this.s1Incr, this.s2Incr, this.s1Decr, this.s2Decr].forEach((s, i) => s.copyFrom(samples[i]));
    [this.incrCut, this.decrCut, this.incr, this.incrBound, this.decr, this.decrBound] = v;
    this.count = n;
  }
}
