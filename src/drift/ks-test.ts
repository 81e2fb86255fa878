/**
 * Two-sample Kolmogorov-Smirnov test for two samples of the same size n, computed the way
 * `scipy.stats.ks_2samp(a, b, method="auto")` computes it, which is what River's KSWIN calls.
 *
 * With n1 = n2 = n <= 10000, scipy's "auto" mode is the exact distribution: the statistic is
 * rounded to h/n (h = the largest gap between the two empirical CDFs, counted in samples) and
 * the p-value is P(D >= h/n) from the reflection formula for lattice paths,
 *   P = 2 * sum_{k>=1} (-1)^(k+1) C(2n, n-kh) / C(2n, n),
 * evaluated in Horner form so that the alternating series does not cancel. The evaluation
 * order below is the same as scipy's, so the floating-point result is the same too.
 * Above 10000 scipy switches to an asymptotic distribution that we do not implement: KSWIN
 * refuses stat_size > KS_EXACT_MAX_N.
 */

export const KS_EXACT_MAX_N = 10000;

export interface KsResult {
  statistic: number;
  pvalue: number;
  /** The statistic in samples: statistic = h / n. */
  h: number;
}

/** P(D_{n,n} >= h/n) for 1 <= h <= n. */
export function probOutsideSquare(n: number, h: number): number {
  let P = 0;
  for (let k = Math.floor(n / h); k >= 0; k--) {
    let p1 = 1;
    for (let j = 0; j < h; j++) p1 = ((n - k * h - j) * p1) / (n + k * h + j + 1);
    P = p1 * (1 - P);
  }
  return 2 * P;
}

/**
 * Sorts copies of `a` and `b` into the scratch arrays and tests them. Both must have length n.
 * Scratch arrays let KSWIN test on every update without allocating.
 */
export function ksTwoSampleEqualSize(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  scratchA: Float64Array = new Float64Array(a.length),
  scratchB: Float64Array = new Float64Array(b.length),
): KsResult {
  const n = a.length;
  if (n === 0 || b.length !== n) throw new RangeError('ks test needs two non-empty samples of the same size');
  if (n > KS_EXACT_MAX_N) throw new RangeError(`ks test is exact only up to ${KS_EXACT_MAX_N} samples`);
  const x = scratchA.length === n ? scratchA : scratchA.subarray(0, n);
  const y = scratchB.length === n ? scratchB : scratchB.subarray(0, n);
  for (let i = 0; i < n; i++) {
    x[i] = a[i];
    y[i] = b[i];
  }
  x.sort();
  y.sort();
  // ECDFs compared at every observed value (right-continuous, as searchsorted side="right").
  let i = 0;
  let j = 0;
  let h = 0;
  while (i < n && j < n) {
    const v = x[i] <= y[j] ? x[i] : y[j];
    while (i < n && x[i] <= v) i++;
    while (j < n && y[j] <= v) j++;
    const gap = i > j ? i - j : j - i;
    if (gap > h) h = gap;
  }
  return { statistic: h / n, pvalue: pValue(n, h), h };
}

function pValue(n: number, h: number): number {
  if (h === 0) return 1;
  const p = probOutsideSquare(n, h);
  // When the series rounds outside [0, 1] scipy switches to its asymptotic distribution. That
  // only happens for the smallest gaps (h = 1 at n = 30; h = 1, 2, 4, 8 at n = 1000), where the
  // asymptotic p is 1 - O(1e-14); we answer 1, which no alpha below 1 can tell apart.
  if (!(p >= 0 && p <= 1)) return p > 1 ? 1 : 0;
  return p;
}
