/**
 * ADWIN, adaptive windowing (Bifet & Gavaldà 2007, the bucket-compressed ADWIN2), as River's
 * `drift.ADWIN`.
 *
 * Keeps a window of recent values compressed into rows of buckets: row i holds up to
 * max_buckets buckets of 2^i values (total and variance each); a row that reaches
 * max_buckets + 1 merges its two oldest buckets into the next row. Every `clock` samples, once
 * the window is longer than grace_period, every split of the window into an older part W0 and a
 * newer part W1 at a bucket boundary (both at least min_window_length long) is tested:
 *   |mean(W0) - mean(W1)| > sqrt(2 m σ² δ') + 2/3 δ' m,
 *   m = 1/(n0 - min_window_length + 1) + 1/(n1 - min_window_length + 1),
 *   δ' = ln(2 ln(width) / delta), σ² = window variance / width.
 * A cut that passes drops the oldest bucket and the scan starts over. As in River, a drift then
 * empties the whole detector at the start of the next update (River's `_reset`), so ADWIN does
 * not keep W1 after a detection.
 *
 * The comparisons, the scan order and the arithmetic order follow River's Cython code
 * (`adwin_c.pyx`, current version, which visits every bucket of a row as MOA does).
 */
import { BaseDetector, rejectInput } from './base';
import { ratioScore, SCORE_CAP, type DriftState } from './detector';
import { resolveParams, type DetectorSpec } from './params';
import type { StateReader } from './snapshot-json';

export interface ADWINParams {
  delta: number;
  clock: number;
  max_buckets: number;
  min_window_length: number;
  grace_period: number;
}

export const ADWIN_SPEC: DetectorSpec<ADWINParams> = {
  params: {
    delta: { kind: 'float', default: 0.002, min: 0, max: 1, minExclusive: true, maxExclusive: true, doc: 'significance of the test between sub-windows' },
    clock: { kind: 'int', default: 32, min: 1, doc: 'test for change every clock samples' },
    // River accepts 1, but then empty rows appear and its deletion reads past them.
    max_buckets: { kind: 'int', default: 5, min: 2, doc: 'buckets of each size kept before two are merged' },
    min_window_length: { kind: 'int', default: 5, min: 1, doc: 'minimum length of each sub-window in a test' },
    grace_period: { kind: 'int', default: 10, min: 0, doc: 'no test until the window is longer than this' },
  },
};

/** One row of buckets, all of 2^i values; index 0 is the oldest. */
class Row {
  len = 0;
  readonly tot: Float64Array;
  readonly vr: Float64Array;

  constructor(maxBuckets: number) {
    this.tot = new Float64Array(maxBuckets + 1);
    this.vr = new Float64Array(maxBuckets + 1);
  }

  push(total: number, variance: number): void {
    this.tot[this.len] = total;
    this.vr[this.len] = variance;
    this.len++;
  }

  /** Drops the k oldest buckets. Plain loops: rows hold a handful of buckets, too few for
   * copyWithin/fill calls to pay off. */
  shift(k: number): void {
    const len = this.len;
    const tot = this.tot;
    const vr = this.vr;
    for (let i = k; i < len; i++) {
      tot[i - k] = tot[i];
      vr[i - k] = vr[i];
    }
    for (let i = len - k; i < len; i++) {
      tot[i] = 0;
      vr[i] = 0;
    }
    this.len = len - k;
  }
}

export class ADWIN extends BaseDetector<ADWINParams> {
  readonly type = 'adwin' as const;
  readonly input = 'real' as const;
  private rows: Row[];
  private total = 0;
  private variance = 0;
  private width = 0;
  private tick = 0;
  /** Largest |mean(W0) - mean(W1)| / epsilon among the cuts tested at the last check. */
  private lastScore = 0;
  private readonly maxBuckets: number;
  private readonly clock: number;
  private readonly grace: number;

  constructor(params: Partial<ADWINParams> = {}) {
    super(resolveParams('adwin', ADWIN_SPEC, params));
    this.maxBuckets = this.cfg.max_buckets;
    this.clock = this.cfg.clock;
    this.grace = this.cfg.grace_period;
    this.rows = [new Row(this.maxBuckets)];
  }

  update(x: number): DriftState {
    if (!Number.isFinite(x)) rejectInput(this.type, x);
    if (this.drift) this.reset();
    this.insert(x);
    this.drift = this.detect();
    return this.drift ? 'drift' : 'stable';
  }

  private insert(value: number): void {
    this.rows[0].push(value, 0);
    const w = ++this.width;
    if (w > 1) {
      const d = value - this.total / (w - 1);
      this.variance += ((w - 1) * d * d) / w;
    }
    this.total += value;
    this.compress();
  }

  private compress(): void {
    const max = this.maxBuckets;
    const rows = this.rows;
    for (let idx = 0; idx < rows.length; idx++) {
      const row = rows[idx];
      if (row.len !== max + 1) break;
      if (idx + 1 === rows.length) rows.push(new Row(max));
      const next = rows[idx + 1];
      const n1 = 2 ** idx;
      const mu1 = row.tot[0] / n1;
      const mu2 = row.tot[1] / n1;
      const d = mu1 - mu2;
      next.push(row.tot[0] + row.tot[1], row.vr[0] + row.vr[1] + n1 * 0.5 * d * d);
      row.shift(2);
      if (next.len <= max) break;
    }
  }

  /** Removes the oldest bucket; answers how many values it held. */
  private deleteOldest(): number {
    const rows = this.rows;
    const row = rows[rows.length - 1];
    const n = 2 ** (rows.length - 1);
    const u = row.tot[0];
    const mu = u / n;
    const v = row.vr[0];
    this.width -= n;
    this.total -= u;
    const muWindow = this.total / this.width;
    const d = mu - muWindow;
    this.variance -= v + (n * this.width * d * d) / (n + this.width);
    row.shift(1);
    if (row.len === 0) rows.pop();
    return n;
  }

  private detect(): boolean {
    let change = false;
    this.tick++;
    if (this.tick % this.clock !== 0 || !(this.width > this.grace)) return false;
    const mwl = this.cfg.min_window_length;
    let best = 0;
    let again = true;
    while (again) {
      again = false;
      let exit = false;
      let n0 = 0;
      let n1 = this.width;
      let u0 = 0;
      let u1 = this.total;
      // Constant within one scan: the window only changes when a cut ends the scan.
      const deltaPrime = Math.log((2 * Math.log(this.width)) / this.cfg.delta);
      const sigma2 = this.variance / this.width;
      const rows = this.rows;
      for (let idx = rows.length - 1; idx >= 0 && !exit; idx--) {
        const row = rows[idx];
        const size = 2 ** idx;
        for (let k = 0; k < row.len; k++) {
          n0 += size;
          n1 -= size;
          u0 += row.tot[k];
          u1 -= row.tot[k];
          if (idx === 0 && k === row.len - 1) {
            exit = true;
            break;
          }
          if (n1 >= mwl && n0 >= mwl) {
            const deltaMean = u0 / n0 - u1 / n1;
            const mRecip = 1 / (n0 - mwl + 1) + 1 / (n1 - mwl + 1);
            const epsilon = Math.sqrt(2 * mRecip * sigma2 * deltaPrime) + (2 / 3) * deltaPrime * mRecip;
            const absDelta = Math.abs(deltaMean);
            const r = ratioScore(absDelta, epsilon);
            if (r > best) best = r;
            if (absDelta > epsilon) {
              again = true;
              change = true;
              if (this.width > 0) {
                n0 -= this.deleteOldest();
                exit = true;
                break;
              }
            }
          }
        }
      }
    }
    this.lastScore = best;
    return change;
  }

  get n(): number {
    return this.tick;
  }

  /** Values in the window now (River's `width`). */
  get windowLength(): number {
    return this.width;
  }

  /** Mean of the window (River's `estimation`). */
  statistic(): number {
    return this.width === 0 ? 0 : this.total / this.width;
  }

  /** Largest |mean(W0) - mean(W1)| / epsilon over the cuts tested at the last check. */
  score(): number {
    return this.lastScore > SCORE_CAP ? SCORE_CAP : this.lastScore;
  }

  protected clearState(): void {
    this.rows = [new Row(this.cfg.max_buckets)];
    this.total = 0;
    this.variance = 0;
    this.width = 0;
    this.tick = 0;
    this.lastScore = 0;
  }

  protected saveState(): Record<string, unknown> {
    return {
      rows: this.rows.map((r) => ({ totals: Array.from(r.tot.subarray(0, r.len)), variances: Array.from(r.vr.subarray(0, r.len)) })),
      total: this.total,
      variance: this.variance,
      width: this.width,
      tick: this.tick,
      last_score: this.lastScore,
    };
  }

  protected loadState(r: StateReader): void {
    const raw = r.raw('rows');
    if (!Array.isArray(raw) || raw.length === 0) r.invalid('rows', 'is not a non-empty list');
    const max = this.cfg.max_buckets;
    const list = raw as unknown[];
    const built: Row[] = [];
    list.forEach((item, i) => {
      if (typeof item !== 'object' || item === null) r.invalid(`rows[${i}]`, 'is not an object');
      const totals = (item as Record<string, unknown>).totals;
      const variances = (item as Record<string, unknown>).variances;
      if (!Array.isArray(totals) || !Array.isArray(variances) || totals.length !== variances.length || totals.length > max) {
        r.invalid(`rows[${i}]`, `must hold two lists of equal length at most ${max}`);
      }
      const row = new Row(max);
      (totals as unknown[]).forEach((t, k) => {
        const v = (variances as unknown[])[k];
        if (typeof t !== 'number' || !Number.isFinite(t) || typeof v !== 'number' || !Number.isFinite(v)) {
          r.invalid(`rows[${i}][${k}]`, 'is not a finite number');
        }
        row.push(t, v);
      });
      built.push(row);
    });
    const v = { total: r.num('total'), variance: r.num('variance'), width: r.num('width'), tick: r.int('tick'), lastScore: r.num('last_score') };
    this.rows = built;
    this.total = v.total;
    this.variance = v.variance;
    this.width = v.width;
    this.tick = v.tick;
    this.lastScore = v.lastScore;
  }
}
