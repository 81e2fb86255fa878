/**
 * The numeric statistics of a Hoeffding tree leaf, as River's `proba.Gaussian` over
 * `stats.Var(ddof=1)`: a weighted running mean and sum of squared deviations (West's weighted
 * Welford), kept as three numbers (weight, mean, m2) at an offset of a Float64Array so that a
 * leaf's statistics are the very numbers the workers read from shared memory (no copy to keep in
 * step).
 */

const SQRT2 = Math.SQRT2;
const TWO_PI = 2 * Math.PI;

/** Adds `x` with weight `w` to the estimator at `o` in `a` ([weight, mean, m2]). */
export function gaussianUpdate(a: Float64Array, o: number, x: number, w: number): void {
  const n = a[o]! + w;
  const oldMean = a[o + 1]!;
  const mean = oldMean + (w / n) * (x - oldMean);
  a[o] = n;
  a[o + 1] = mean;
  a[o + 2] = a[o + 2]! + w * (x - oldMean) * (x - mean);
}

/** Sample variance (ddof 1); 0 until the weight passes 1, as River's Var. */
export function gaussianVariance(n: number, m2: number): number {
  return n > 1 ? m2 / (n - 1) : 0;
}

/** Density at x; 0 when the variance is 0 (a single value), which naive Bayes then skips. */
export function gaussianPdf(n: number, mean: number, m2: number, x: number): number {
  const v = gaussianVariance(n, m2);
  if (!(v > 0)) return 0;
  const d = x - mean;
  return Math.exp((d * d) / (-2 * v)) / Math.sqrt(TWO_PI * v);
}

/**
 * log(gaussianPdf(n, mean, m2, x)), or -Infinity where that density is 0 (naive Bayes skips it).
 * In log space, log(exp(q) / sqrt(2πv)) is q - log(2πv)/2: one log instead of an exp, a square
 * root, a division and a log, per class and feature of every leaf a row reaches. Where the
 * density would not be a normal positive double (an underflowing exp, a result near the ends of
 * the range) it is computed as gaussianPdf does, so the cases naive Bayes skips are the same.
 * The answer can differ from Math.log(gaussianPdf(...)) in its last bits.
 */
export function gaussianLogPdf(n: number, mean: number, m2: number, x: number): number {
  const v = gaussianVariance(n, m2);
  if (!(v > 0)) return -Infinity;
  const d = x - mean;
  const q = (d * d) / (-2 * v);
  const r = q - 0.5 * Math.log(TWO_PI * v);
  if (q > -700 && r > -700 && r < 700) return r;
  const p = Math.exp(q) / Math.sqrt(TWO_PI * v);
  return p > 0 ? Math.log(p) : -Infinity;
}

/** P(X <= x). With no spread: a step at the mean. */
export function gaussianCdf(n: number, mean: number, m2: number, x: number): number {
  const sd = Math.sqrt(gaussianVariance(n, m2));
  if (!(sd > 0)) return x >= mean ? 1 : 0;
  return 0.5 * (1 + erf((x - mean) / (sd * SQRT2)));
}

/**
 * erf, from erfc's Chebyshev fit in Numerical Recipes (3rd ed., §6.2.2): within about 1e-14 of
 * Python's math.erf (test/arf-parts.test.ts). JavaScript has no Math.erf; what matters more than
 * the last digits is that it is the same arithmetic on every run (determinism).
 */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t0 = 2 / (2 + z);
  const ty = 4 * t0 - 2;
  // Clenshaw's recurrence over ERF_COF[27..1], unrolled with the coefficients as literals: the
  // same operations in the same order as the loop it replaces (the same bits), without its loads
  // and bound checks; a split attempt takes 80 of these.
  let d = 0;
  let dd = 0;
  let t: number;
  t = d; d = ty * d - dd - 2.8e-17; dd = t;
  t = d; d = ty * d - dd + 1.21e-16; dd = t;
  t = d; d = ty * d - dd - 9.4e-17; dd = t;
  t = d; d = ty * d - dd - 1.523e-15; dd = t;
  t = d; d = ty * d - dd + 7.106e-15; dd = t;
  t = d; d = ty * d - dd + 3.81e-16; dd = t;
  t = d; d = ty * d - dd - 1.12708e-13; dd = t;
  t = d; d = ty * d - dd + 3.13092e-13; dd = t;
  t = d; d = ty * d - dd + 8.94487e-13; dd = t;
  t = d; d = ty * d - dd - 6.886027e-12; dd = t;
  t = d; d = ty * d - dd + 2.394038e-12; dd = t;
  t = d; d = ty * d - dd + 9.6467911e-11; dd = t;
  t = d; d = ty * d - dd - 2.27365122e-10; dd = t;
  t = d; d = ty * d - dd - 9.91364156e-10; dd = t;
  t = d; d = ty * d - dd + 5.059343495e-9; dd = t;
  t = d; d = ty * d - dd + 6.529054439e-9; dd = t;
  t = d; d = ty * d - dd - 8.5238095915e-8; dd = t;
  t = d; d = ty * d - dd + 1.5626441722e-8; dd = t;
  t = d; d = ty * d - dd + 1.30365583558e-6; dd = t;
  t = d; d = ty * d - dd - 1.624290004647e-6; dd = t;
  t = d; d = ty * d - dd - 2.0278578112534e-5; dd = t;
  t = d; d = ty * d - dd + 4.2523324806907e-5; dd = t;
  t = d; d = ty * d - dd + 3.66839497852761e-4; dd = t;
  t = d; d = ty * d - dd - 9.46595344482036e-4; dd = t;
  t = d; d = ty * d - dd - 9.561514786808631e-3; dd = t;
  t = d; d = ty * d - dd + 1.9476473204185836e-2; dd = t;
  t = d; d = ty * d - dd + 6.4196979235649026e-1; dd = t;
  const erfcz = t0 * Math.exp(-z * z + 0.5 * (ERF_COF[0]! + ty * d) - dd);
  return x >= 0 ? 1 - erfcz : erfcz - 1;
}

const ERF_COF = [
  -1.3026537197817094, 6.4196979235649026e-1, 1.9476473204185836e-2, -9.561514786808631e-3, -9.46595344482036e-4, 3.66839497852761e-4,
  4.2523324806907e-5, -2.0278578112534e-5, -1.624290004647e-6, 1.30365583558e-6, 1.5626441722e-8, -8.5238095915e-8, 6.529054439e-9,
  5.059343495e-9, -9.91364156e-10, -2.27365122e-10, 9.6467911e-11, 2.394038e-12, -6.886027e-12, 8.94487e-13, 3.13092e-13,
  -1.12708e-13, 3.81e-16, 7.106e-15, -1.523e-15, -9.4e-17, 1.21e-16, -2.8e-17,
];
