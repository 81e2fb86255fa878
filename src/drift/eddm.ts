/**
 * EDDM, the Early Drift Detection Method (Baena-García et al. 2006), as River's
 * `drift.binary.EDDM`.
 *
 * Watches the distance (in samples) between consecutive errors: its running mean p' and
 * standard deviation s' (Welford, ddof = 1), and the largest p' + 2s' seen. Only errors (x == 1)
 * move it. After warm_start samples it tracks the maximum; once more than warm_start errors
 * were seen, an error that does not raise the maximum computes
 * level = (p' + 2s') / max(p' + 2s') and signals drift when level < beta, warning when
 * level < alpha, and clears the warning otherwise.
 *
 * River quirks kept on purpose: the warning flag is left as it was on an error that sets a new
 * maximum and on correct predictions, and it is not cleared when a drift fires (River then
 * reports both; our `state` says 'drift').
 */
import { BaseDetector, rejectInput } from './base';
import { ratioScore, type DriftState } from './detector';
import { resolveParams, type DetectorSpec } from './params';
import type { StateReader } from './snapshot-json';

export interface EDDMParams {
  warm_start: number;
  alpha: number;
  beta: number;
}

export const EDDM_SPEC: DetectorSpec<EDDMParams> = {
  params: {
    warm_start: { kind: 'int', default: 30, min: 0, doc: 'samples, and errors, needed before change can be detected' },
    alpha: { kind: 'float', default: 0.95, min: 0, max: 1, doc: 'warning when level < alpha' },
    beta: { kind: 'float', default: 0.9, min: 0, max: 1, doc: 'drift when level < beta' },
  },
  check: (p) => (p.alpha < p.beta ? `'alpha' must be greater or equal to 'beta' (alpha ${p.alpha}, beta ${p.beta})` : undefined),
};

export class EDDM extends BaseDetector<EDDMParams> {
  readonly type = 'eddm' as const;
  readonly input = 'binary' as const;
  private count = 0;
  private lastError = 0;
  private nErrors = 0;
  // Welford over the distances between errors (River's stats.Var, ddof = 1).
  private dN = 0;
  private dMean = 0;
  private dVar = 0;
  private p2sMax = -1;
  private level = 1;
  private readonly warmStart: number;
  private readonly alpha: number;
  private readonly beta: number;

  constructor(params: Partial<EDDMParams> = {}) {
    super(resolveParams('eddm', EDDM_SPEC, params));
    this.warmStart = this.cfg.warm_start;
    this.alpha = this.cfg.alpha;
    this.beta = this.cfg.beta;
  }

  update(x: number): DriftState {
    if (!Number.isFinite(x)) rejectInput(this.type, x);
    if (this.drift) this.reset();
    const n = ++this.count;
    if (x === 1) {
      this.nErrors++;
      const dist = n - this.lastError;
      const oldMean = this.dMean;
      const dn = ++this.dN;
      this.dMean += (dist - oldMean) / dn;
      if (dn > 1) this.dVar += ((dist - oldMean) * (dist - this.dMean) - this.dVar) / (dn - 1);
      if (n > this.warmStart) {
        const p2s = this.dMean + 2 * Math.sqrt(this.dVar);
        if (p2s > this.p2sMax) {
          this.p2sMax = p2s;
          this.level = 1;
        } else if (this.nErrors > this.warmStart) {
          const level = p2s / this.p2sMax;
          this.level = level;
          if (level < this.beta) this.drift = true;
          else if (level < this.alpha) this.warning = true;
          else this.warning = false;
        }
      }
      this.lastError = n;
    }
    return this.drift ? 'drift' : this.warning ? 'warning' : 'stable';
  }

  get n(): number {
    return this.count;
  }

  /** The last level (p' + 2s') / max(p' + 2s'); 1 until one is computed or after a new maximum. */
  statistic(): number {
    return this.level;
  }

  /** (1 - level) / (1 - beta). */
  score(): number {
    return ratioScore(1 - this.level, 1 - this.cfg.beta);
  }

  protected clearState(): void {
    this.count = 0;
    this.lastError = 0;
    this.nErrors = 0;
    this.dN = 0;
    this.dMean = 0;
    this.dVar = 0;
    this.p2sMax = -1;
    this.level = 1;
  }

  protected saveState(): Record<string, unknown> {
    return {
      n: this.count,
      last_error: this.lastError,
      n_errors: this.nErrors,
      distances: { n: this.dN, mean: this.dMean, var: this.dVar },
      p2s_max: this.p2sMax,
      level: this.level,
    };
  }

  protected loadState(r: StateReader): void {
    const d = r.obj('distances');
    const v = {
      n: r.int('n'),
      lastError: r.int('last_error'),
      nErrors: r.int('n_errors'),
      dN: d.int('n'),
      dMean: d.num('mean'),
      dVar: d.num('var'),
      p2sMax: r.num('p2s_max'),
      level: r.num('level'),
    };
    this.count = v.n;
    this.lastError = v.lastError;
    this.nErrors = v.nErrors;
    this.dN = v.dN;
    this.dMean = v.dMean;
    this.dVar = v.dVar;
    this.p2sMax = v.p2sMax;
    this.level = v.level;
  }
}
