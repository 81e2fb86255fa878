/**
 * The adaptive random forest (Gomes et al. 2017, as River's ARFClassifier): `trees` Hoeffding
 * trees, each learning every row with a Poisson(lambda) weight (online bagging; 0 skips the row),
 * each watched by two ADWINs over its own prequential error (1 when it got the row wrong): the
 * warning one (delta 0.01) starts a background tree that learns beside it, the drift one (delta
 * 0.001) replaces the tree with its background tree (or a fresh one). The forest's answer is the
 * trees' P(class 1) weighted by each tree's accuracy since it was planted (River's weighted vote:
 * a tree with no right answer yet weighs 1), over the trees that have an opinion; none has one
 * in a cold forest, which answers 0.5.
 *
 * One writer (the engine's main thread, in log order); everything is a function of the options,
 * the seed and the rows, so a replay of the same log gives the same forest to the last bit.
 */
import { ADWIN } from '../../drift/adwin';
import { tfError } from '../../errors';
import { HoeffdingTree, type TreeParams, type TreeSnapshot } from './hoeffding-tree';
import { slotSize } from './layout';
import { Mulberry32 } from './rng';
import type { SplitCriterion } from './split-criterion';

export interface ArfOptions {
  features: number;
  trees: number;
  seed: number;
  lambda: number;
  gracePeriod: number;
  delta: number;
  tau: number;
  splitCriterion: SplitCriterion;
  leafPrediction: 'nba' | 'mc';
  /** Features monitored per leaf; 0 means River's "sqrt": round(sqrt(features)). */
  maxFeatures: number;
  maxNodes: number;
  warningDelta: number;
  driftDelta: number;
}

export const DEFAULT_ARF_OPTIONS: Omit<ArfOptions, 'features'> = {
  trees: 10,
  seed: 42,
  lambda: 6,
  gracePeriod: 50,
  delta: 0.01,
  tau: 0.05,
  splitCriterion: 'info_gain',
  leafPrediction: 'nba',
  // round(sqrt(16)) for the bundled model's 16 features; on Elec2's 7 it beats round(sqrt(7)) = 3
  // by half a point (bench/RESULTS.md).
  maxFeatures: 4,
  maxNodes: 2047,
  warningDelta: 0.01,
  driftDelta: 0.001,
};

const N_SPLITS = 10;

export function featuresPerLeaf(o: Pick<ArfOptions, 'features' | 'maxFeatures'>): number {
  const k = o.maxFeatures > 0 ? o.maxFeatures : Math.round(Math.sqrt(o.features));
  return Math.max(1, Math.min(o.features, k));
}

/** Most shared memory the forest may take (every tree at ARF_MAX_NODES): a start-up check, not a surprise. */
export const MAX_SHARED_BYTES = 1 << 30;

/** The bytes of the workers' copy of a forest with these options, at its largest. */
export function sharedBytes(o: ArfOptions): number {
  return o.trees * o.maxNodes * slotSize(featuresPerLeaf(o)) * 8;
}

/** Refuses options the engine cannot run with (CONFIG_INVALID, naming the settings). */
export function validateArfOptions(o: ArfOptions): ArfOptions {
  const bytes = sharedBytes(o);
  if (bytes > MAX_SHARED_BYTES) {
    throw tfError(
      'CONFIG_INVALID',
      `the arf forest would need ${Math.ceil(bytes / 2 ** 20)} MiB of shared memory at its largest (ARF_TREES ${o.trees} × ARF_MAX_NODES ${o.maxNodes} × ${featuresPerLeaf(o)} features per leaf); at most ${MAX_SHARED_BYTES / 2 ** 20} MiB: lower one of them (ARF_MAX_FEATURES, 0 meaning round(sqrt(F)) = ${Math.round(Math.sqrt(o.features))} here)`,
    );
  }
  return o;
}

class Member {
  background: HoeffdingTree | null = null;
  warning: ADWIN;
  drift: ADWIN;
  correct = 0;
  seen = 0;

  constructor(
    public tree: HoeffdingTree,
    private readonly o: ArfOptions,
  ) {
    this.warning = new ADWIN({ delta: o.warningDelta });
    this.drift = new ADWIN({ delta: o.driftDelta });
  }

  /** River's weighted vote: the tree's accuracy, or 1 while it is 0. */
  get weight(): number {
    const acc = this.seen > 0 ? this.correct / this.seen : 0;
    return acc > 0 ? acc : 1;
  }

  freshWarning(): void {
    this.warning = new ADWIN({ delta: this.o.warningDelta });
  }

  freshDrift(): void {
    this.drift = new ADWIN({ delta: this.o.driftDelta });
  }
}

export interface ForestSnapshot {
  kind: 'arf';
  format: 1;
  options: ArfOptions;
  rng: number;
  rows: number;
  warnings: number;
  replaced: number;
  members: Array<{ tree: TreeSnapshot; background: TreeSnapshot | null; warning: unknown; drift: unknown; correct: number; seen: number }>;
}

export class AdaptiveRandomForest {
  readonly options: ArfOptions;
  readonly params: TreeParams;
  readonly members: Member[] = [];
  private readonly rng: Mulberry32;
  /** Rows learned: the served version. */
  rows = 0;
  /** Warnings that started a background tree, and trees replaced on a drift. */
  warnings = 0;
  replaced = 0;
  private readonly votes: Float64Array;
  /** Per tree, its leaf's naive Bayes answer for the row being learned (NaN: not computed). */
  private readonly nbVotes: Float64Array;
  /** Per tree, the leaf slot the row being learned reaches (learn skips the walk). */
  private readonly slots: Int32Array;

  constructor(options: ArfOptions) {
    this.options = { ...options };
    this.params = {
      features: options.features,
      k: featuresPerLeaf(options),
      gracePeriod: options.gracePeriod,
      delta: options.delta,
      tau: options.tau,
      criterion: options.splitCriterion,
      nba: options.leafPrediction === 'nba',
      maxNodes: options.maxNodes,
      nSplits: N_SPLITS,
    };
    this.rng = new Mulberry32(options.seed);
    this.votes = new Float64Array(options.trees);
    this.nbVotes = new Float64Array(options.trees);
    this.slots = new Int32Array(options.trees);
    for (let i = 0; i < options.trees; i++) this.members.push(new Member(new HoeffdingTree(this.params, this.rng), this.options));
  }

  /** P(class 1) for row x at xo; the trees' own answers go into `votes` (-1: no opinion). */
  predict(x: ArrayLike<number>, xo: number): number {
    let sum = 0;
    let weights = 0;
    for (let i = 0; i < this.members.length; i++) {
      const m = this.members[i]!;
      const p = m.tree.p1AndNb(x, xo, this.nbVotes, this.slots, i);
      this.votes[i] = p;
      if (p < 0) continue;
      const w = m.weight;
      sum += w * p;
      weights += w;
    }
    return weights > 0 ? sum / weights : 0.5;
  }

  /** Prequential: answers the forest's P(class 1) for the row before learning it, then learns it. */
  learn(x: ArrayLike<number>, xo: number, y: 0 | 1): number {
    const p = this.predict(x, xo);
    for (let i = 0; i < this.members.length; i++) {
      const m = this.members[i]!;
      const v = this.votes[i]!;
      const right = v >= 0 && (v > 0.5 ? 1 : 0) === y;
      m.seen++;
      if (right) m.correct++;
      const k = this.rng.poisson(this.options.lambda);
      if (k > 0) {
        m.tree.learn(x, xo, y, k, this.rng, this.nbVotes[i], this.slots[i]);
        m.background?.learn(x, xo, y, k, this.rng);
      }
      this.watch(m, right ? 0 : 1);
    }
    this.rows++;
    return p;
  }

  private watch(m: Member, error: number): void {
    m.warning.update(error);
    if (m.warning.driftDetected) {
      m.background = new HoeffdingTree(this.params, this.rng);
      m.freshWarning();
      this.warnings++;
    }
    m.drift.update(error);
    if (m.drift.driftDetected) {
      m.tree = m.background ?? new HoeffdingTree(this.params, this.rng);
      m.background = null;
      m.freshWarning();
      m.freshDrift();
      m.correct = 0;
      m.seen = 0;
      this.replaced++;
    }
  }

  /** Leaves and split nodes over the foreground trees, and how many background trees grow. */
  shape(): { nodes: number; backgrounds: number } {
    let nodes = 0;
    let backgrounds = 0;
    for (const m of this.members) {
      nodes += m.tree.size;
      if (m.background) backgrounds++;
    }
    return { nodes, backgrounds };
  }

  snapshot(): ForestSnapshot {
    return {
      kind: 'arf',
      format: 1,
      options: { ...this.options },
      rng: this.rng.state,
      rows: this.rows,
      warnings: this.warnings,
      replaced: this.replaced,
      members: this.members.map((m) => ({
        tree: m.tree.snapshot(),
        background: m.background?.snapshot() ?? null,
        warning: m.warning.snapshot(),
        drift: m.drift.snapshot(),
        correct: m.correct,
        seen: m.seen,
      })),
    };
  }

  static restore(s: ForestSnapshot): AdaptiveRandomForest {
    const f = new AdaptiveRandomForest(s.options);
    f.rng.state = s.rng;
    f.rows = s.rows;
    f.warnings = s.warnings;
    f.replaced = s.replaced;
    s.members.forEach((ms, i) => {
      const m = f.members[i]!;
      m.tree = new HoeffdingTree(f.params, null, ms.tree);
      m.background = ms.background ? new HoeffdingTree(f.params, null, ms.background) : null;
      m.warning.restore(ms.warning);
      m.drift.restore(ms.drift);
      m.correct = ms.correct;
      m.seen = ms.seen;
    });
    return f;
  }
}
