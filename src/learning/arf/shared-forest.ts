/**
 * The forest in a SharedArrayBuffer: one writer (the main thread, which learns), many readers
 * (the scoring workers), under a seqlock as src/learning/shared-weights.ts's (the same protocol and
 * the same argument for why a validated read is consistent under the ECMAScript memory model).
 *
 * Layout: Int32 header [seq, trees, features, slot size, max slots per tree, 0, 0, 0] (32 bytes),
 * then Float64 [version, 0] and per tree [weight, size, then maxNodes slots of layout.ts].
 *
 * A publish rewrites only what changed since the last one: the slots each tree marked dirty (the
 * leaf every row reached, the three slots of a split), or the whole tree when it was replaced.
 * A reader does not copy the forest: it scores its batch straight from the buffer and then
 * validates the sequence word; if a publish overlapped, the batch is scored again. A torn read
 * can hold any bits, so the walk is bounded (layout.ts returns -1 or NaN instead of leaving the
 * tree), and such a result is never returned: the validation then fails.
 */
import type { AdaptiveRandomForest } from './forest';
import type { HoeffdingTree } from './hoeffding-tree';
import { treeP1 } from './layout';

const SEQ = 0;
const TREES = 1;
const FEATURES = 2;
const SLOT = 3;
const MAX_NODES = 4;
const HEADER_BYTES = 32;
const FOREST_HEAD = 2;
const TREE_HEAD = 2;
const SPINS_BEFORE_SLEEP = 100;
const SLEEP_MS = 0.05;

/** The listed slots of `from` into `to` at `o`: plain loops, no subarray view per slot (a row dirties a slot per tree). */
function copySlots(from: Float64Array, slots: number[], s: number, to: Float64Array, o: number): void {
  for (let i = 0; i < slots.length; i++) {
    const at = slots[i]! * s;
    for (let j = 0; j < s; j++) to[o + at + j] = from[at + j]!;
  }
}

function treeDoubles(slot: number, maxNodes: number): number {
  return TREE_HEAD + slot * maxNodes;
}

export class SharedForest {
  readonly buffer: SharedArrayBuffer;
  readonly trees: number;
  readonly features: number;
  readonly slot: number;
  readonly maxNodes: number;
  private readonly seq: Int32Array;
  private readonly d: Float64Array;
  /** Writer side: the tree object each region last held (a new one is copied whole). */
  private readonly held: (HoeffdingTree | null)[];

  private constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    const h = new Int32Array(buffer, 0, 8);
    this.trees = Atomics.load(h, TREES);
    this.features = Atomics.load(h, FEATURES);
    this.slot = Atomics.load(h, SLOT);
    this.maxNodes = Atomics.load(h, MAX_NODES);
    this.seq = h;
    this.d = new Float64Array(buffer, HEADER_BYTES, FOREST_HEAD + this.trees * treeDoubles(this.slot, this.maxNodes));
    this.held = new Array<HoeffdingTree | null>(this.trees).fill(null);
  }

  /** Writer side: an empty forest's buffer (every tree without an opinion: the answer is 0.5). */
  static create(trees: number, features: number, slot: number, maxNodes: number): SharedForest {
    const doubles = FOREST_HEAD + trees * treeDoubles(slot, maxNodes);
    const buffer = new SharedArrayBuffer(HEADER_BYTES + doubles * 8);
    const h = new Int32Array(buffer, 0, 8);
    h[TREES] = trees;
    h[FEATURES] = features;
    h[SLOT] = slot;
    h[MAX_NODES] = maxNodes;
    return new SharedForest(buffer);
  }

  /** Writer side: a buffer shaped for this forest's trees. */
  static forForest(forest: AdaptiveRandomForest): SharedForest {
    const t = forest.members[0]!.tree;
    return SharedForest.create(forest.members.length, forest.params.features, t.s, forest.params.maxNodes);
  }

  /** Reader side (worker threads): the buffer the writer created. */
  static attach(buffer: SharedArrayBuffer): SharedForest {
    if (!(buffer instanceof SharedArrayBuffer) || buffer.byteLength < HEADER_BYTES + FOREST_HEAD * 8) {
      throw new TypeError('SharedForest.attach needs the SharedArrayBuffer made by SharedForest.create');
    }
    const h = new Int32Array(buffer, 0, 8);
    const want = HEADER_BYTES + (FOREST_HEAD + h[TREES]! * treeDoubles(h[SLOT]!, h[MAX_NODES]!)) * 8;
    if (h[TREES]! < 1 || h[FEATURES]! < 1 || buffer.byteLength !== want) throw new TypeError(`SharedForest.attach: a buffer of ${buffer.byteLength} bytes is not a forest's`);
    return new SharedForest(buffer);
  }

  /** Whether this buffer can carry that forest (a forest restored from another replica's checkpoint). */
  fits(forest: AdaptiveRandomForest): boolean {
    const t = forest.members[0]!.tree;
    return forest.members.length === this.trees && t.s === this.slot && forest.params.maxNodes === this.maxNodes;
  }

  /** The single writer publishes the forest as it is now. Never call from two threads. */
  publish(forest: AdaptiveRandomForest): void {
    const d = this.d;
    const s = Atomics.add(this.seq, SEQ, 1); // odd: readers keep off
    d[0] = forest.rows;
    const per = treeDoubles(this.slot, this.maxNodes);
    for (let i = 0; i < this.trees; i++) {
      const m = forest.members[i]!;
      const t = m.tree;
      const base = FOREST_HEAD + i * per;
      d[base] = m.weight;
      d[base + 1] = t.size;
      const o = base + TREE_HEAD;
      if (this.held[i] !== t || t.dirty === null) {
        d.set(t.nodes.subarray(0, t.size * this.slot), o);
        this.held[i] = t;
      } else {
        copySlots(t.nodes, t.dirty, this.slot, d, o);
      }
      if (t.dirty === null) t.dirty = [];
      else t.dirty.length = 0;
    }
    Atomics.store(this.seq, SEQ, (s + 2) | 0); // even: the new forest is complete
  }

  /**
   * Scores `rows` rows of `input` into probabilities (2 per row, float32) and labels from one
   * consistent version of the forest; answers that version (rows learned).
   */
  score(input: Float32Array, rows: number, probabilities: Float32Array, labels: Int32Array): number {
    for (let attempt = 1; ; attempt++) {
      const s1 = Atomics.load(this.seq, SEQ);
      if ((s1 & 1) === 0) {
        const version = this.d[0]!;
        const whole = this.scoreOnce(input, rows, probabilities, labels);
        if (Atomics.compareExchange(this.seq, SEQ, s1, s1) === s1) {
          if (!whole) throw new Error('the shared forest read back a tree that leaves its bounds while no publish was in progress');
          return version;
        }
      }
      if (attempt % SPINS_BEFORE_SLEEP === 0) Atomics.wait(this.seq, SEQ, s1 | 1, SLEEP_MS);
    }
  }

  /** False when a walk left the tree (a torn read). */
  private scoreOnce(input: Float32Array, rows: number, probabilities: Float32Array, labels: Int32Array): boolean {
    const d = this.d;
    const F = this.features;
    const per = treeDoubles(this.slot, this.maxNodes);
    for (let r = 0; r < rows; r++) {
      let sum = 0;
      let weights = 0;
      for (let i = 0; i < this.trees; i++) {
        const base = FOREST_HEAD + i * per;
        const size = d[base + 1]!;
        if (!(size >= 0 && size <= this.maxNodes)) return false;
        const p = treeP1(d, base + TREE_HEAD, this.slot, size, F, input, r * F);
        if (p !== p) return false;
        if (p < 0) continue;
        const w = d[base]!;
        sum += w * p;
        weights += w;
      }
      const p1 = Math.fround(weights > 0 ? sum / weights : 0.5);
      if (!(p1 >= 0 && p1 <= 1)) return false;
      const p0 = Math.fround(1 - p1);
      probabilities[2 * r] = p0;
      probabilities[2 * r + 1] = p1;
      labels[r] = p1 > p0 ? 1 : 0;
    }
    return true;
  }
}
