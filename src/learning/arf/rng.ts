/**
 * The forest's one random stream: mulberry32, whose whole state is one 32-bit word, so a
 * checkpoint holds it exactly and a replay draws the same numbers (the same Poisson weights and
 * the same feature subsets) in the same order.
 */
export class Mulberry32 {
  private a: number;
  private rate = NaN;
  private limit = NaN;
  /** sample's scratch (refilled on every call, so it holds no state). */
  private pool = new Int32Array(0);

  constructor(seed: number) {
    this.a = seed >>> 0;
  }

  get state(): number {
    return this.a;
  }

  set state(s: number) {
    this.a = s >>> 0;
  }

  /** Uniform in [0, 1). */
  random(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Knuth's multiplication method, as River's utils.random.poisson. */
  poisson(rate: number): number {
    // The forest draws with one rate, 10 times a row: its exp is taken once.
    if (rate !== this.rate) {
      this.rate = rate;
      this.limit = Math.exp(-rate);
    }
    const limit = this.limit;
    let k = 0;
    let p = 1;
    while (p > limit) {
      k++;
      p *= this.random();
    }
    return k - 1;
  }

  /** k distinct integers of [0, n), by a partial Fisher-Yates shuffle, into out[0..k). */
  sample(n: number, k: number, out: Int32Array): void {
    if (this.pool.length !== n) this.pool = new Int32Array(n);
    const pool = this.pool;
    for (let i = 0; i < n; i++) pool[i] = i;
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(this.random() * (n - i));
      const t = pool[i]!;
      pool[i] = pool[j]!;
      pool[j] = t;
      out[i] = pool[i]!;
    }
  }
}
