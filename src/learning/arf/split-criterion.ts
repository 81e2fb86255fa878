/**
 * Merit of a binary split of a two-class distribution, as River's InfoGainSplitCriterion and
 * GiniSplitCriterion (min_branch_frac 0.01: a split that leaves fewer than two branches with more
 * than 1 % of the weight is worth -Infinity).
 */
export type SplitCriterion = 'info_gain' | 'gini';

export const MIN_BRANCH_FRACTION = 0.01;

/** Entropy in bits of a two-class distribution (0 when empty). */
export function entropy(a: number, b: number): number {
  const t = a + b;
  if (!(t > 0)) return 0;
  let h = 0;
  if (a > 0) h -= (a / t) * Math.log2(a / t);
  if (b > 0) h -= (b / t) * Math.log2(b / t);
  return h;
}

function gini(a: number, b: number): number {
  const t = a + b;
  if (!(t > 0)) return 1;
  const pa = a / t;
  const pb = b / t;
  return 1 - pa * pa - pb * pb;
}

/** Merit of splitting pre (pre0, pre1) into left (l0, l1) and right (r0, r1). */
export function splitMerit(c: SplitCriterion, pre0: number, pre1: number, l0: number, l1: number, r0: number, r1: number): number {
  return splitMeritGiven(c, c === 'gini' ? 0 : entropy(pre0, pre1), l0, l1, r0, r1);
}

/**
 * splitMerit with the parent's entropy already taken (`preH`, unused for Gini): a split attempt
 * scores 40 candidate splits of one parent, and the parent's two logs were a fifth of its logs.
 * The same arithmetic as splitMerit, so the same bits.
 */
export function splitMeritGiven(c: SplitCriterion, preH: number, l0: number, l1: number, r0: number, r1: number): number {
  const wl = l0 + l1;
  const wr = r0 + r1;
  const total = wl + wr;
  if (!(total > 0)) return -Infinity;
  let big = 0;
  if (wl / total > MIN_BRANCH_FRACTION) big++;
  if (wr / total > MIN_BRANCH_FRACTION) big++;
  if (big < 2) return -Infinity;
  if (c === 'gini') return 1 - ((wl / total) * gini(l0, l1) + (wr / total) * gini(r0, r1));
  return preH - (wl * entropy(l0, l1) + wr * entropy(r0, r1)) / total;
}

/** River's range_of_merit for two classes: log2(2) for information gain, 1 for Gini. */
export function meritRange(_c: SplitCriterion): number {
  return 1;
}

/** The Hoeffding bound: with probability 1 - delta the true mean is within it of the observed. */
export function hoeffdingBound(range: number, delta: number, n: number): number {
  return Math.sqrt((range * range * Math.log(1 / delta)) / (2 * n));
}
