/**
 * The adaptive random forest's parts against hand-computed values and River's documented
 * behaviour: the weighted Gaussian estimator (River's proba.Gaussian over Var(ddof=1)), erf, the
 * Gaussian splitter's class weights either side of a threshold, information gain and Gini as
 * River defines them (min_branch_frac 0.01), the Hoeffding bound, Poisson(6) bagging weights, and
 * a tree that learns a threshold concept.
 */
import { describe, expect, it } from 'vitest';
import { erf, gaussianCdf, gaussianLogPdf, gaussianPdf, gaussianUpdate, gaussianVariance } from '../src/learning/arf/gaussian';
import { HoeffdingTree, sideWeights, type TreeParams } from '../src/learning/arf/hoeffding-tree';
import { Mulberry32 } from '../src/learning/arf/rng';
import { hoeffdingBound, splitMerit } from '../src/learning/arf/split-criterion';

describe('arf parts', () => {
  it('the weighted Gaussian: mean, ddof-1 variance, pdf and cdf', () => {
    const g = new Float64Array(3);
    gaussianUpdate(g, 0, 2, 3); // weight 3 at 2, as three rows of 2
    gaussianUpdate(g, 0, 4, 1);
    expect(g[0]).toBe(4);
    expect(g[1]).toBe(2.5);
    // m2 = 3 (2 - 2.5)^2 + (4 - 2.5)^2 = 3; variance 3 / (4 - 1)
    expect(g[2]).toBeCloseTo(3, 14);
    expect(gaussianVariance(g[0]!, g[2]!)).toBeCloseTo(1, 14);
    expect(gaussianPdf(g[0]!, g[1]!, g[2]!, 2.5)).toBeCloseTo(1 / Math.sqrt(2 * Math.PI), 14);
    expect(gaussianCdf(g[0]!, g[1]!, g[2]!, 3.5)).toBeCloseTo(0.8413447460685429, 13); // Φ(1)
    expect(gaussianCdf(g[0]!, g[1]!, g[2]!, 2.5)).toBeCloseTo(0.5, 15);
    // One value: no spread, a density of 0 (naive Bayes skips it) and a step CDF.
    const one = new Float64Array(3);
    gaussianUpdate(one, 0, 7, 1);
    expect(gaussianPdf(one[0]!, one[1]!, one[2]!, 7)).toBe(0);
    expect(gaussianCdf(one[0]!, one[1]!, one[2]!, 6.9)).toBe(0);
    expect(gaussianCdf(one[0]!, one[1]!, one[2]!, 7)).toBe(1);
  });

  it('the log density naive Bayes adds is log(pdf), and -Infinity exactly where the pdf is 0', () => {
    const r = new Mulberry32(5);
    for (let i = 0; i < 2000; i++) {
      const n = 2 + 50 * r.random();
      const mean = 100 * (r.random() - 0.5);
      const m2 = (n - 1) * 10 ** (12 * r.random() - 6); // variances 1e-6 .. 1e6
      const x = mean + (r.random() - 0.5) * 10 ** (4 * r.random());
      const pdf = gaussianPdf(n, mean, m2, x);
      const lp = gaussianLogPdf(n, mean, m2, x);
      if (pdf > 0) expect(Math.abs(lp - Math.log(pdf))).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(lp)));
      else expect(lp).toBe(-Infinity);
    }
    // No spread, and an exp that underflows: both skipped, as gaussianPdf's 0.
    expect(gaussianLogPdf(1, 7, 0, 7)).toBe(-Infinity);
    expect(gaussianPdf(10, 0, 9, 1e3)).toBe(0);
    expect(gaussianLogPdf(10, 0, 9, 1e3)).toBe(-Infinity);
  });

  it('erf matches Python math.erf', () => {
    const py: Array<[number, number]> = [
      [0.5, 0.5204998778130465],
      [1, 0.8427007929497149],
      [2, 0.9953222650189527],
      [-0.3, -0.3286267594591112],
      [3.5, 0.9999992569016276],
    ];
    for (const [x, v] of py) expect(Math.abs(erf(x) - v)).toBeLessThan(1e-13);
  });

  it('the splitter: a class weight left and right of a threshold, as River\'s GaussianSplitter', () => {
    // n 4, mean 2.5, m2 3 (variance 1), range [2, 4]
    expect(sideWeights(4, 2.5, 3, 2, 4, 2.5)).toEqual([2, 2]);
    expect(sideWeights(4, 2.5, 3, 2, 4, 1.9)).toEqual([0, 4]); // below the class minimum
    expect(sideWeights(4, 2.5, 3, 2, 4, 4)).toEqual([4, 0]); // at the maximum: all left
    const [l, r] = sideWeights(4, 2.5, 3, 2, 4, 3.5);
    expect(l).toBeCloseTo(4 * 0.8413447460685429, 12);
    expect(l + r).toBe(4);
  });

  it('information gain and Gini as River computes them, with min_branch_frac', () => {
    expect(splitMerit('info_gain', 10, 10, 10, 0, 0, 10)).toBeCloseTo(1, 15);
    expect(splitMerit('info_gain', 10, 10, 5, 5, 5, 5)).toBeCloseTo(0, 15);
    // H(0.5) - (8 H(6/8) + 12 H(4/12)) / 20, by hand: 1 - (8 * 0.811278 + 12 * 0.918296) / 20
    expect(splitMerit('info_gain', 10, 10, 6, 2, 4, 8)).toBeCloseTo(1 - (8 * 0.8112781244591328 + 12 * 0.9182958340544896) / 20, 14);
    // River's Gini merit is 1 - the weighted Gini impurity of the branches (not a difference).
    expect(splitMerit('gini', 10, 10, 10, 0, 0, 10)).toBe(1);
    expect(splitMerit('gini', 10, 10, 5, 5, 5, 5)).toBe(0.5);
    // A branch with 1 % of the weight or less does not count: fewer than two, -Infinity.
    expect(splitMerit('info_gain', 100, 0.5, 100, 0, 0, 0.5)).toBe(-Infinity);
  });

  it('the Hoeffding bound', () => {
    expect(hoeffdingBound(1, 0.01, 200)).toBeCloseTo(Math.sqrt(Math.log(100) / 400), 15);
    expect(hoeffdingBound(1, 0.01, 200)).toBeCloseTo(0.10730, 5);
  });

  it('Poisson(6) weights have mean and variance 6, and a seed gives the same draws', () => {
    const a = new Mulberry32(5);
    const b = new Mulberry32(5);
    let sum = 0;
    let sq = 0;
    let differ = 0;
    const n = 200_000;
    for (let i = 0; i < n; i++) {
      const k = a.poisson(6);
      if (k !== b.poisson(6)) differ++;
      sum += k;
      sq += k * k;
    }
    expect(differ).toBe(0);
    const mean = sum / n;
    expect(mean).toBeCloseTo(6, 1);
    expect(sq / n - mean * mean).toBeCloseTo(6, 0);
    const out = new Int32Array(3);
    a.sample(7, 3, out);
    expect(new Set(out).size).toBe(3);
    for (const f of out) expect(f >= 0 && f < 7).toBe(true);
  });

  it('a tree splits on the feature that decides the class and predicts it', () => {
    const p: TreeParams = { features: 2, k: 2, gracePeriod: 50, delta: 0.01, tau: 0.05, criterion: 'info_gain', nba: false, maxNodes: 63, nSplits: 10 };
    const rng = new Mulberry32(1);
    const t = new HoeffdingTree(p, rng);
    expect(t.p1([0.9, 0.1], 0)).toBe(-1); // no weight yet: no opinion
    for (let i = 0; i < 2000; i++) {
      const x = [rng.random(), rng.random()];
      t.learn(x, 0, x[0]! > 0.5 ? 1 : 0, 1, rng);
    }
    expect(t.size).toBeGreaterThan(1);
    expect(t.nodes[0]).toBe(2); // the root is a split
    expect(t.nodes[1]).toBe(0); // on feature 0
    expect(t.p1([0.9, 0.5], 0)).toBeGreaterThan(0.9);
    expect(t.p1([0.1, 0.5], 0)).toBeLessThan(0.1);
  });
});
