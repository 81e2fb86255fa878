/**
 * A Hoeffding tree classifier for two classes, as River's HoeffdingTreeClassifier with the ARF
 * leaves (a random subset of k features monitored per leaf) and Gaussian numeric splitters, kept
 * in the flat layout of layout.ts so that publishing it to the workers is a copy of the slots
 * that changed.
 *
 * Per leaf, besides its slot: `extra` holds the naive-Bayes-adaptive counters (weight the majority
 * class, and naive Bayes, predicted right), the weight at the last split attempt, the depth, and
 * per monitored feature the minimum and maximum seen of each class (the Gaussian splitter's range).
 *
 * Learning a row (weight w, from Poisson bagging) at its leaf: the NBA counters are scored first,
 * then the class weight and the k Gaussians are updated; every `gracePeriod` of weight the leaf
 * tries to split: each monitored feature proposes its best of `nSplits` thresholds evenly spaced
 * over its range (class weights left of a threshold from each class's Gaussian CDF), the null
 * split (merit 0, River's merit_preprune) competes too, and the best splits when it beats the
 * second by the Hoeffding bound or the bound is under tau.
 */
import { erf, gaussianUpdate, gaussianVariance } from './gaussian';
import { LEAF, LEAF_HEAD, leafP1, leafSlot, PER_FEATURE, slotSize, SPLIT } from './layout';
import type { Mulberry32 } from './rng';
import { entropy, hoeffdingBound, meritRange, splitMeritGiven, type SplitCriterion } from './split-criterion';

export interface TreeParams {
  features: number;
  /** Features monitored per leaf (River's max_features, resolved). */
  k: number;
  gracePeriod: number;
  delta: number;
  tau: number;
  criterion: SplitCriterion;
  /** Naive Bayes adaptive leaves (River's default), else majority class. */
  nba: boolean;
  /** Most slots a tree may have: a leaf that would pass it does not split (bounded memory). */
  maxNodes: number;
  nSplits: number;
}

const MC_OK = 0;
const NB_OK = 1;
const LAST_SPLIT = 2;
const DEPTH = 3;
const EXTRA_HEAD = 4;

export function extraSize(k: number): number {
  return EXTRA_HEAD + 4 * k;
}

/** A tree as a checkpoint holds it. */
export interface TreeSnapshot {
  size: number;
  nodes: Float64Array;
  extra: Float64Array;
}

interface Split {
  merit: number;
  feature: number;
  threshold: number;
  l0: number;
  l1: number;
  r0: number;
  r1: number;
}

export class HoeffdingTree {
  readonly s: number;
  readonly e: number;
  nodes: Float64Array;
  extra: Float64Array;
  size = 0;
  /** Slots changed since the last publish; null once too many to list (publish copies all). */
  dirty: number[] | null = [];
  private readonly picked: Int32Array;
  private readonly best: Split = { merit: 0, feature: -1, threshold: 0, l0: 0, l1: 0, r0: 0, r1: 0 };
  private readonly cand: Split = { merit: 0, feature: -1, threshold: 0, l0: 0, l1: 0, r0: 0, r1: 0 };

  constructor(
    readonly p: TreeParams,
    rng: Mulberry32 | null,
    snap?: TreeSnapshot,
  ) {
    this.s = slotSize(p.k);
    this.e = extraSize(p.k);
    this.picked = new Int32Array(p.k);
    if (snap) {
      this.size = snap.size;
      this.nodes = Float64Array.from(snap.nodes);
      this.extra = Float64Array.from(snap.extra);
      this.dirty = null;
      return;
    }
    const cap = Math.min(64, p.maxNodes);
    this.nodes = new Float64Array(cap * this.s);
    this.extra = new Float64Array(cap * this.e);
    this.newLeaf(0, 0, 0, 0, rng!);
    this.size = 1;
  }

  snapshot(): TreeSnapshot {
    return { size: this.size, nodes: this.nodes.slice(0, this.size * this.s), extra: this.extra.slice(0, this.size * this.e) };
  }

  /** P(class 1) for row x (-1: no opinion yet). */
  p1(x: ArrayLike<number>, xo: number): number {
    const slot = leafSlot(this.nodes, 0, this.s, this.size, this.p.features, x, xo);
    return leafP1(this.nodes, slot * this.s, this.p.features, x, xo);
  }

  /**
   * As p1, for a row the tree learns next: also answers (NaN when it did not compute it) the
   * naive Bayes P(class 1) of the leaf, which `learn` would otherwise compute again to score NBA.
   */
  p1AndNb(x: ArrayLike<number>, xo: number, out: Float64Array, slots: Int32Array, i: number): number {
    const slot = leafSlot(this.nodes, 0, this.s, this.size, this.p.features, x, xo);
    const p = leafP1(this.nodes, slot * this.s, this.p.features, x, xo);
    out[i] = this.nodes[slot * this.s + 3] === 1 ? p : NaN;
    slots[i] = slot;
    return p;
  }

  /**
   * `nb`: the leaf's naive Bayes P(class 1) for this row from p1AndNb, or NaN (computed here);
   * `at`: the leaf's slot from p1AndNb (the tree has not changed since), or -1 (walked here).
   */
  learn(x: ArrayLike<number>, xo: number, y: 0 | 1, w: number, rng: Mulberry32, nb = NaN, at = -1): void {
    const slot = at >= 0 ? at : leafSlot(this.nodes, 0, this.s, this.size, this.p.features, x, xo);
    const a = this.nodes;
    const o = slot * this.s;
    const eo = slot * this.e;
    if (this.p.nba) this.scoreLeaf(slot, x, xo, y, w, nb);
    a[o + 1 + y] = a[o + 1 + y]! + w;
    const ex = this.extra;
    for (let j = 0; j < this.p.k; j++) {
      const b = o + LEAF_HEAD + PER_FEATURE * j;
      const xv = x[xo + a[b]!]!;
      const g = b + 1 + 3 * y;
      const mm = eo + EXTRA_HEAD + 4 * j + 2 * y;
      if (a[g]! === 0) {
        ex[mm] = xv;
        ex[mm + 1] = xv;
      } else {
        if (xv < ex[mm]!) ex[mm] = xv;
        if (xv > ex[mm + 1]!) ex[mm + 1] = xv;
      }
      gaussianUpdate(a, g, xv, w);
    }
    this.touch(slot);
    const total = a[o + 1]! + a[o + 2]!;
    if (total - ex[eo + LAST_SPLIT]! >= this.p.gracePeriod) {
      // A split may have grown (replaced) the arrays, and leaves a split slot with no extras.
      if (!this.attemptSplit(slot, rng)) this.extra[eo + LAST_SPLIT] = total;
    }
  }

  /** NBA: which of majority class and naive Bayes would have got this row right, before learning it. */
  private scoreLeaf(slot: number, x: ArrayLike<number>, xo: number, y: 0 | 1, w: number, nbP1: number): void {
    const a = this.nodes;
    const o = slot * this.s;
    const eo = slot * this.e;
    const ex = this.extra;
    const w0 = a[o + 1]!;
    const w1 = a[o + 2]!;
    const mc = w1 > w0 ? 1 : 0;
    if (w0 + w1 === 0 || mc === y) ex[eo + MC_OK] = ex[eo + MC_OK]! + w;
    if (w0 + w1 > 0) {
      let p = nbP1;
      if (p !== p) {
        const flag = a[o + 3]!;
        a[o + 3] = 1;
        p = leafP1(a, o, this.p.features, x, xo);
        a[o + 3] = flag;
      }
      if ((p > 0.5 ? 1 : 0) === y) ex[eo + NB_OK] = ex[eo + NB_OK]! + w;
    }
    a[o + 3] = ex[eo + NB_OK]! >= ex[eo + MC_OK]! ? 1 : 0;
  }

  private touch(slot: number): void {
    const d = this.dirty;
    if (d === null) return;
    if (d.length > 64) this.dirty = null;
    else if (!d.includes(slot)) d.push(slot);
  }

  private newLeaf(slot: number, w0: number, w1: number, depth: number, rng: Mulberry32): void {
    this.ensure(slot + 1);
    const a = this.nodes;
    const o = slot * this.s;
    a.fill(0, o, o + this.s);
    this.extra.fill(0, slot * this.e, (slot + 1) * this.e);
    a[o] = LEAF;
    a[o + 1] = w0;
    a[o + 2] = w1;
    a[o + 3] = this.p.nba ? 1 : 0;
    a[o + 4] = this.p.k;
    rng.sample(this.p.features, this.p.k, this.picked);
    for (let j = 0; j < this.p.k; j++) a[o + LEAF_HEAD + PER_FEATURE * j] = this.picked[j]!;
    this.extra[slot * this.e + LAST_SPLIT] = w0 + w1;
    this.extra[slot * this.e + DEPTH] = depth;
    this.touch(slot);
  }

  private ensure(slots: number): void {
    const cap = this.nodes.length / this.s;
    if (slots <= cap) return;
    const next = Math.min(Math.max(cap * 2, slots), this.p.maxNodes);
    const nodes = new Float64Array(next * this.s);
    nodes.set(this.nodes);
    const extra = new Float64Array(next * this.e);
    extra.set(this.extra);
    this.nodes = nodes;
    this.extra = extra;
  }

  /** True when the leaf split (its slot is a split node now). */
  private attemptSplit(slot: number, rng: Mulberry32): boolean {
    const a = this.nodes;
    const o = slot * this.s;
    const w0 = a[o + 1]!;
    const w1 = a[o + 2]!;
    if (w0 === 0 || w1 === 0 || this.size + 2 > this.p.maxNodes) return false;
    const hb = hoeffdingBound(meritRange(this.p.criterion), this.p.delta, w0 + w1);
    const infoGain = this.p.criterion === 'info_gain';
    const preH = infoGain ? entropy(w0, w1) : 0;
    // A split needs best - second > hb (once hb >= tau). An information gain is at most the
    // parent's entropy (the children's weighted entropy is >= 0, also in floating point) and a
    // real best's second is >= 0 (the null split), so with preH <= hb no split can win: the
    // attempt would fail whatever its 40 candidates score, and it draws nothing from the rng.
    if (infoGain && !(hb < this.p.tau) && preH <= hb) return false;
    const best = this.best;
    best.merit = 0; // the null split
    best.feature = -1;
    let second = -Infinity;
    // The same argument after each feature: the best's lead only shrinks as features are added,
    // and a later best (<= preH) leads the present one (then second) by at most preH - best.
    const hopeless = infoGain && !(hb < this.p.tau);
    for (let j = 0; j < this.p.k; j++) {
      const c = this.bestForFeature(slot, j, preH);
      if (c.merit > best.merit) {
        second = best.merit;
        copySplit(best, c);
      } else if (c.merit > second) {
        second = c.merit;
      }
      if (hopeless && best.feature >= 0 && !(best.merit - second > hb) && preH - best.merit <= hb) return false;
    }
    if (best.feature < 0 || !(best.merit - second > hb || hb < this.p.tau)) return false;
    const depth = this.extra[slot * this.e + DEPTH]! + 1;
    const left = this.size;
    const right = this.size + 1;
    this.newLeaf(left, best.l0, best.l1, depth, rng);
    this.newLeaf(right, best.r0, best.r1, depth, rng);
    this.size += 2;
    const n = this.nodes;
    n.fill(0, o, o + this.s);
    this.extra.fill(0, slot * this.e, (slot + 1) * this.e);
    n[o] = SPLIT;
    n[o + 1] = best.feature;
    n[o + 2] = best.threshold;
    n[o + 3] = left;
    n[o + 4] = right;
    this.touch(slot);
    return true;
  }

  /** The Gaussian splitter's best threshold for the leaf's j-th monitored feature. */
  private bestForFeature(slot: number, j: number, preH: number): Split {
    const a = this.nodes;
    const b = slot * this.s + LEAF_HEAD + PER_FEATURE * j;
    const mm = slot * this.e + EXTRA_HEAD + 4 * j;
    const ex = this.extra;
    const n0 = a[b + 1]!;
    const n1 = a[b + 4]!;
    const c = this.cand;
    c.merit = -Infinity;
    c.feature = a[b]!;
    if (n0 === 0 && n1 === 0) return c;
    const lo = n0 === 0 ? ex[mm + 2]! : n1 === 0 ? ex[mm]! : Math.min(ex[mm]!, ex[mm + 2]!);
    const hi = n0 === 0 ? ex[mm + 3]! : n1 === 0 ? ex[mm + 1]! : Math.max(ex[mm + 1]!, ex[mm + 3]!);
    const bin = (hi - lo) / (this.p.nSplits + 1);
    // The CDFs' scale, once per feature rather than once per threshold (the same arithmetic).
    const den0 = cdfScale(n0, a[b + 3]!);
    const den1 = cdfScale(n1, a[b + 6]!);
    for (let i = 0; i < this.p.nSplits; i++) {
      const v = lo + bin * (i + 1);
      if (!(lo < v && v < hi)) continue;
      const l0 = leftWeight(n0, a[b + 2]!, den0, ex[mm]!, ex[mm + 1]!, v);
      const l1 = leftWeight(n1, a[b + 5]!, den1, ex[mm + 2]!, ex[mm + 3]!, v);
      const r0 = n0 - l0;
      const r1 = n1 - l1;
      const merit = splitMeritGiven(this.p.criterion, preH, l0, l1, r0, r1);
      if (merit > c.merit) {
        c.merit = merit;
        c.threshold = v;
        c.l0 = l0;
        c.l1 = l1;
        c.r0 = r0;
        c.r1 = r1;
      }
    }
    return c;
  }
}

function copySplit(to: Split, from: Split): void {
  to.merit = from.merit;
  to.feature = from.feature;
  to.threshold = from.threshold;
  to.l0 = from.l0;
  to.l1 = from.l1;
  to.r0 = from.r0;
  to.r1 = from.r1;
}

/** sd·√2 of a class's Gaussian (0 without spread), what its CDF divides by. */
function cdfScale(n: number, m2: number): number {
  return Math.sqrt(gaussianVariance(n, m2)) * Math.SQRT2;
}

/**
 * A class's weight left of (<=) threshold v, as River's GaussianSplitter: none below the class's
 * minimum, all from its maximum on, else its Gaussian's CDF at v times its weight. The rest is right.
 */
function leftWeight(n: number, mean: number, den: number, min: number, max: number, v: number): number {
  if (n === 0 || v < min) return 0;
  if (v >= max) return n;
  if (!(den > 0)) return v >= mean ? n : 0;
  return 0.5 * (1 + erf((v - mean) / den)) * n;
}

/** leftWeight and the rest, for one class (what the splitter's tests check against River's rules). */
export function sideWeights(n: number, mean: number, m2: number, min: number, max: number, v: number): [number, number] {
  const l = leftWeight(n, mean, cdfScale(n, m2), min, max, v);
  return [l, n - l];
}
