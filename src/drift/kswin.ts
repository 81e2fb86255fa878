/**
 * KSWIN, Kolmogorov-Smirnov windowing (Raab, Heusinger & Schleif 2020), as River's
 * `drift.KSWIN`.
 *
 * Keeps the last window_size values. Once the window is full, every update draws stat_size
 * distinct positions among the window_size - stat_size oldest values and compares those values
 * with the stat_size newest by a two-sample KS test (scipy's exact test, see ks-test.ts). Drift
 * when p-value <= alpha and statistic > 0.1. No warnings.
 *
 * The draw: River uses `random.Random(seed).sample(range(window_size - stat_size), stat_size)`;
 * our default sampler is the same generator (python-random.ts), so equal seeds give River's
 * positions. Another sampler can be injected (tests feed River's positions computed in Python).
 * Like River, a reset (and so the update after a drift) re-creates the generator from the seed,
 * and the window River keeps after a drift is discarded by that reset.
 */
import { randomInt } from 'node:crypto';
import { BaseDetector, rejectInput } from './base';
import { ratioScore, SCORE_CAP, type DriftState } from './detector';
import { KS_EXACT_MAX_N, ksTwoSampleEqualSize } from './ks-test';
import { resolveParams, type DetectorSpec } from './params';
import { PythonRandom, type PythonRandomState } from './python-random';
import type { StateReader } from './snapshot-json';

export interface KSWINParams {
  alpha: number;
  window_size: number;
  stat_size: number;
  /** null: a seed drawn from the OS (River's `seed=None`). */
  seed: number | null;
}

export const KSWIN_SPEC: DetectorSpec<KSWINParams> = {
  params: {
    alpha: { kind: 'float', default: 0.005, min: 0, max: 1, doc: 'drift when the KS p-value <= alpha (and the statistic > 0.1)' },
    window_size: { kind: 'int', default: 100, min: 2, doc: 'values kept' },
    stat_size: { kind: 'int', default: 30, min: 1, max: KS_EXACT_MAX_N, doc: 'newest values compared with as many drawn from the older ones' },
    seed: { kind: 'int', default: null, min: -Number.MAX_SAFE_INTEGER, doc: 'seed of the draw (unset: random)' },
  },
  // River checks window_size >= stat_size, then fails at the first full window unless the
  // older part can supply stat_size distinct positions; refuse that up front.
  check: (p) =>
    p.window_size - p.stat_size < p.stat_size
      ? `window_size (${p.window_size}) must be at least twice stat_size (${p.stat_size}): stat_size values are drawn from the window_size - stat_size oldest`
      : undefined,
};

/** Draws the reference positions. Must be restartable: River re-seeds on every reset. */
export interface KswinSampler {
  /** k distinct positions in [0, populationSize), in draw order. */
  sample(populationSize: number, k: number): ArrayLike<number>;
  reset(): void;
  snapshot(): unknown;
  restore(s: unknown): void;
}

/**
 * The default: Python's `random.Random(seed)`, re-seeded on reset. Without a seed it draws one
 * from the OS once and re-seeds with that same one, where River would draw a new one at each
 * reset: just as random, and a checkpoint then replays exactly.
 */
export class PythonSampler implements KswinSampler {
  private readonly rng: PythonRandom;
  private seed: number;

  constructor(seed: number | null) {
    this.seed = seed ?? randomInt(0, 2 ** 47);
    this.rng = new PythonRandom(this.seed);
  }

  sample(populationSize: number, k: number): number[] {
    return this.rng.sample(populationSize, k);
  }

  reset(): void {
    this.rng.seed(this.seed);
  }

  snapshot(): { seed: number } & PythonRandomState {
    return { seed: this.seed, ...this.rng.getState() };
  }

  restore(s: unknown): void {
    const o = s as (Partial<PythonRandomState> & { seed?: unknown }) | null;
    if (!o || !Number.isSafeInteger(o.seed) || !Array.isArray(o.mt) || typeof o.index !== 'number' || !o.mt.every((v) => Number.isInteger(v) && v >= 0 && v < 2 ** 32)) {
      throw new RangeError('not a Mersenne Twister state with its seed');
    }
    this.rng.setState(o as PythonRandomState);
    this.seed = o.seed as number;
  }
}

export interface KSWINOptions {
  sampler?: KswinSampler;
}

export class KSWIN extends BaseDetector<KSWINParams> {
  readonly type = 'kswin' as const;
  readonly input = 'real' as const;
  private count = 0;
  /** Ring buffer of the window; `head` is the oldest value. */
  private readonly buf: Float64Array;
  private head = 0;
  private len = 0;
  private pValue = 0;
  private stat = 0;
  private tested = false;
  private readonly sampler: KswinSampler;
  private readonly older: Float64Array;
  private readonly newer: Float64Array;
  private readonly scratchA: Float64Array;
  private readonly scratchB: Float64Array;

  constructor(params: Partial<KSWINParams> = {}, options: KSWINOptions = {}) {
    super(resolveParams('kswin', KSWIN_SPEC, params));
    this.buf = new Float64Array(this.cfg.window_size);
    this.sampler = options.sampler ?? new PythonSampler(this.cfg.seed);
    const r = this.cfg.stat_size;
    this.older = new Float64Array(r);
    this.newer = new Float64Array(r);
    this.scratchA = new Float64Array(r);
    this.scratchB = new Float64Array(r);
  }

  private at(i: number): number {
    return this.buf[(this.head + i) % this.buf.length];
  }

  update(x: number): DriftState {
    if (!Number.isFinite(x)) rejectInput(this.type, x);
    if (this.drift) this.reset();
    this.count++;
    const size = this.buf.length;
    if (this.len < size) {
      this.buf[(this.head + this.len) % size] = x;
      this.len++;
    } else {
      this.buf[this.head] = x;
      this.head = (this.head + 1) % size;
    }
    if (this.len < size) {
      this.drift = false;
      return 'stable';
    }
    const r = this.cfg.stat_size;
    const older = size - r;
    const pos = this.sampler.sample(older, r);
    for (let i = 0; i < r; i++) {
      this.older[i] = this.at(pos[i]);
      this.newer[i] = this.at(older + i);
    }
    const res = ksTwoSampleEqualSize(this.older, this.newer, this.scratchA, this.scratchB);
    this.stat = res.statistic;
    this.pValue = res.pvalue;
    this.tested = true;
    if (this.pValue <= this.cfg.alpha && this.stat > 0.1) {
      this.drift = true;
      // River keeps the newest values as the window; the reset at the next update drops them.
      this.buf.set(this.newer, 0);
      this.head = 0;
      this.len = r;
    } else {
      this.drift = false;
    }
    return this.drift ? 'drift' : 'stable';
  }

  get n(): number {
    return this.count;
  }

  /** The KS statistic of the last test (0 before the window first fills). */
  statistic(): number {
    return this.stat;
  }

  /** The p-value of the last test (River starts it at 0 before any test; so do we). */
  get p_value(): number {
    return this.pValue;
  }

  /** ln(p) / ln(alpha): 0 for p = 1, 1 at p = alpha. Drift also needs statistic > 0.1. */
  score(): number {
    if (!this.tested) return 0;
    const a = this.cfg.alpha;
    if (a <= 0) return this.pValue <= 0 ? SCORE_CAP : 0;
    if (a >= 1) return SCORE_CAP;
    if (this.pValue <= 0) return SCORE_CAP;
    return ratioScore(-Math.log(this.pValue), -Math.log(a));
  }

  protected clearState(): void {
    this.count = 0;
    this.head = 0;
    this.len = 0;
    this.buf.fill(0);
    this.pValue = 0;
    this.stat = 0;
    this.tested = false;
    this.sampler.reset();
  }

  protected saveState(): Record<string, unknown> {
    const window: number[] = [];
    for (let i = 0; i < this.len; i++) window.push(this.at(i));
    return {
      n: this.count,
      window,
      p_value: this.pValue,
      statistic: this.stat,
      tested: this.tested,
      sampler: this.sampler.snapshot(),
    };
  }

  protected loadState(r: StateReader): void {
    const window = r.numArray('window', this.buf.length);
    const v = { n: r.int('n'), p: r.num('p_value'), stat: r.num('statistic'), tested: r.bool('tested') };
    try {
      this.sampler.restore(r.raw('sampler'));
    } catch (err) {
      r.invalid('sampler', (err as Error).message);
    }
    this.buf.fill(0);
    this.buf.set(window, 0);
    this.head = 0;
    this.len = window.length;
    this.count = v.n;
    this.pValue = v.p;
    this.stat = v.stat;
    this.tested = v.tested;
  }
}
