/**
 * The flat layout of a Hoeffding tree, shared by the learner (which keeps its trees in it) and
 * the scoring workers (which walk the copy in shared memory): a tree is `size` slots of
 * `slotSize(k)` float64 each, slot 0 its root.
 *
 *   split slot: [SPLIT, feature, threshold, left slot, right slot, 0...]       (x[feature] <= threshold goes left)
 *   leaf slot:  [LEAF, w0, w1, use naive Bayes (0/1), k,
 *                then for each of its k features: feature, (weight, mean, m2) of class 0, of class 1]
 *
 * w0, w1 are the leaf's class weights (River's leaf `stats`); the per-class Gaussians are the
 * numeric splitters' estimators (gaussian.ts), so naive Bayes in a worker uses exactly the numbers
 * the learner does. The prediction code below is the one both sides run, so a worker's
 * probabilities are the learner's.
 */
import { gaussianLogPdf } from './gaussian';

export const EMPTY = 0;
export const LEAF = 1;
export const SPLIT = 2;
export const LEAF_HEAD = 5;
export const PER_FEATURE = 7;

export function slotSize(k: number): number {
  return LEAF_HEAD + PER_FEATURE * k;
}

/**
 * P(class 1) of a leaf at offset o, or -1 when it has seen no weight (it has no opinion, as a
 * River tree with empty stats). Naive Bayes as River's do_naive_bayes_prediction: log prior plus
 * the log density of each monitored feature (a density of 0 adds nothing), softmax; a class the
 * leaf has not seen has probability 0. Returns NaN for a feature index out of range, which only a
 * torn read in a worker can produce.
 */
export function leafP1(a: Float64Array, o: number, features: number, x: ArrayLike<number>, xo: number): number {
  const w0 = a[o + 1]!;
  const w1 = a[o + 2]!;
  const t = w0 + w1;
  if (!(t > 0)) return -1;
  if (a[o + 3] !== 1 || w0 <= 0 || w1 <= 0) return w1 / t;
  let v0 = Math.log(w0 / t);
  let v1 = Math.log(w1 / t);
  const k = a[o + 4]!;
  for (let j = 0; j < k; j++) {
    const b = o + LEAF_HEAD + PER_FEATURE * j;
    const f = a[b]!;
    if (!(f >= 0 && f < features)) return NaN;
    const xv = x[xo + f]!;
    const l0 = a[b + 1]! > 0 ? gaussianLogPdf(a[b + 1]!, a[b + 2]!, a[b + 3]!, xv) : -Infinity;
    const l1 = a[b + 4]! > 0 ? gaussianLogPdf(a[b + 4]!, a[b + 5]!, a[b + 6]!, xv) : -Infinity;
    if (l0 > -Infinity) v0 += l0;
    if (l1 > -Infinity) v1 += l1;
  }
  const m = v0 > v1 ? v0 : v1;
  const e0 = Math.exp(v0 - m);
  const e1 = Math.exp(v1 - m);
  return e1 / (e0 + e1);
}

/**
 * The slot of the leaf x reaches in the tree at `base` (slots of size s, `size` of them), or -1
 * when the walk leaves the tree: never for the learner's own arrays, only for a torn read.
 */
export function leafSlot(a: Float64Array, base: number, s: number, size: number, features: number, x: ArrayLike<number>, xo: number): number {
  let slot = 0;
  for (let steps = 0; steps < size; steps++) {
    const o = base + slot * s;
    const kind = a[o];
    if (kind === LEAF) return slot;
    if (kind !== SPLIT) return -1;
    const f = a[o + 1]!;
    if (!(f >= 0 && f < features)) return -1;
    slot = x[xo + f]! <= a[o + 2]! ? a[o + 3]! : a[o + 4]!;
    if (!(slot > 0 && slot < size) || slot !== Math.floor(slot)) return -1;
  }
  return -1;
}

/** P(class 1) of the tree for row x; -1 for no opinion; NaN when the read was torn. */
export function treeP1(a: Float64Array, base: number, s: number, size: number, features: number, x: ArrayLike<number>, xo: number): number {
  if (size < 1) return -1;
  const slot = leafSlot(a, base, s, size, features, x, xo);
  if (slot < 0) return NaN;
  return leafP1(a, base + slot * s, features, x, xo);
}
