/**
 * Page-Hinkley test (Page 1954), as River's `drift.PageHinkley`.
 *
 * Watches the cumulative deviation of each value from the running mean of all values since the
 * last reset, with a forgetting factor alpha:
 *   S⁺ = alpha S⁺ + (x - mean) - delta,   S⁻ = alpha S⁻ + (x - mean) + delta.
 * From min_instances samples on, it signals drift when S⁺ - min(S⁺) > threshold (mode "up"),
 * max(S⁻) - S⁻ > threshold ("down"), or either ("both", the default). Strict comparisons; no
 * warnings. River starts max(S⁻) at -1 rather than -Infinity; we do the same.
 */
import { BaseDetector, rejectInput } from './base';
import { ratioScore, type DriftState } from './detector';
import { resolveParams, type DetectorSpec } from './params';
import { encodeNumber, type StateReader } from './snapshot-json';

export interface PageHinkleyParams {
  min_instances: number;
  delta: number;
  threshold: number;
  alpha: number;
  mode: string;
}

export const PAGE_HINKLEY_SPEC: DetectorSpec<PageHinkleyParams> = {
  params: {
    min_instances: { kind: 'int', default: 30, min: 0, doc: 'samples before change can be detected' },
    delta: { kind: 'float', default: 0.005, min: 0, doc: 'magnitude of change tolerated' },
    threshold: { kind: 'float', default: 50.0, min: 0, doc: 'drift when the test statistic exceeds it (lambda)' },
    alpha: { kind: 'float', default: 1 - 0.0001, min: 0, max: 1, doc: 'forgetting factor of the cumulative sums' },
    mode: { kind: 'enum', default: 'both', values: ['up', 'down', 'both'], doc: 'detect increases, decreases or both' },
  },
};

const UP = 0;
const DOWN = 1;
const BOTH = 2;

export class PageHinkley extends BaseDetector<PageHinkleyParams> {
  readonly type = 'page_hinkley' as const;
  readonly input = 'real' as const;
  private count = 0;
  private mean = 0;
  private sumIncrease = 0;
  private sumDecrease = 0;
  private minIncrease = Infinity;
  private maxDecrease = -1;
  private readonly mode: number;
  private readonly alpha: number;
  private readonly delta: number;
  private readonly threshold: number;
  private readonly minInstances: number;

  constructor(params: Partial<PageHinkleyParams> = {}) {
    super(resolveParams('page_hinkley', PAGE_HINKLEY_SPEC, params));
    this.mode = this.cfg.mode === 'up' ? UP : this.cfg.mode === 'down' ? DOWN : BOTH;
    this.alpha = this.cfg.alpha;
    this.delta = this.cfg.delta;
    this.threshold = this.cfg.threshold;
    this.minInstances = this.cfg.min_instances;
  }

  update(x: number): DriftState {
    if (!Number.isFinite(x)) rejectInput(this.type, x);
    if (this.drift) this.reset();
    const n = ++this.count;
    this.mean += (x - this.mean) / n;
    const dev = x - this.mean;
    const alpha = this.alpha;
    this.sumIncrease = alpha * this.sumIncrease + dev - this.delta;
    this.sumDecrease = alpha * this.sumDecrease + dev + this.delta;
    if (this.sumIncrease < this.minIncrease) this.minIncrease = this.sumIncrease;
    if (this.sumDecrease > this.maxDecrease) this.maxDecrease = this.sumDecrease;
    if (n >= this.minInstances) {
      const t = this.threshold;
      const up = this.sumIncrease - this.minIncrease;
      const down = this.maxDecrease - this.sumDecrease;
      this.drift = this.mode === UP ? up > t : this.mode === DOWN ? down > t : up > t || down > t;
    }
    return this.drift ? 'drift' : 'stable';
  }

  get n(): number {
    return this.count;
  }

  /** The test value for the mode: S⁺ - min S⁺, max S⁻ - S⁻, or the larger of the two. */
  statistic(): number {
    if (this.count === 0) return 0;
    const up = this.sumIncrease - this.minIncrease;
    const down = this.maxDecrease - this.sumDecrease;
    return this.mode === UP ? up : this.mode === DOWN ? down : Math.max(up, down);
  }

  /** statistic / threshold, once min_instances samples were seen. */
  score(): number {
    if (this.count === 0 || this.count < this.cfg.min_instances) return 0;
    return ratioScore(this.statistic(), this.cfg.threshold);
  }

  protected clearState(): void {
    this.count = 0;
    this.mean = 0;
    this.sumIncrease = 0;
    this.sumDecrease = 0;
    this.minIncrease = Infinity;
    this.maxDecrease = -1;
  }

  protected saveState(): Record<string, unknown> {
    return {
      n: this.count,
      mean: this.mean,
      sum_increase: this.sumIncrease,
      sum_decrease: this.sumDecrease,
      min_increase: encodeNumber(this.minIncrease),
      max_decrease: encodeNumber(this.maxDecrease),
    };
  }

  protected loadState(r: StateReader): void {
    const v = [r.num('mean'), r.num('sum_increase'), r.num('sum_decrease'), r.num('min_increase'), r.num('max_decrease')];
    const n = r.int('n');
    [this.mean, this.sumIncrease, this.sumDecrease, this.minIncrease, this.maxDecrease] = v;
    this.count = n;
  }
}
