/**
 * Python's `random.Random` as far as KSWIN needs it: the Mersenne Twister (MT19937) seeded the
 * way CPython seeds it from an int, `getrandbits`, `_randbelow` and `sample`. River's KSWIN
 * draws its reference sample with `random.Random(seed).sample(range(n), k)`, so with the same
 * seed our KSWIN draws the very same positions as River's and its detections match exactly.
 *
 * Written from the MT19937 reference algorithm (Matsumoto & Nishimura 1998) and the documented
 * behaviour of CPython's seeding (the int's absolute value split into 32-bit words, fed to
 * init_by_array) and of `random.sample`.
 */
import { randomBytes } from 'node:crypto';

const N = 624;
const M = 397;
const UPPER = 0x80000000;
const LOWER = 0x7fffffff;
const MATRIX_A = 0x9908b0df;

export interface PythonRandomState {
  mt: number[];
  index: number;
}

export class PythonRandom {
  private readonly mt = new Uint32Array(N);
  private index = N + 1;

  /** `seed` null draws one from the OS, as `random.Random(None)` does. */
  constructor(seed: number | null) {
    this.seed(seed);
  }

  seed(seed: number | null): void {
    let key: number[];
    if (seed === null) {
      const b = randomBytes(16);
      key = [b.readUInt32LE(0), b.readUInt32LE(4), b.readUInt32LE(8), b.readUInt32LE(12)];
    } else {
      if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a whole number, got ${seed}`);
      // CPython: abs(n) as little-endian 32-bit words, at least one word (0 -> [0]).
      let n = Math.abs(seed);
      key = [];
      do {
        key.push(n % 0x100000000);
        n = Math.floor(n / 0x100000000);
      } while (n > 0);
    }
    this.initByArray(key);
  }

  private initGenrand(s: number): void {
    const mt = this.mt;
    mt[0] = s >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
    this.index = N;
  }

  private initByArray(key: number[]): void {
    const mt = this.mt;
    this.initGenrand(19650218);
    let i = 1;
    let j = 0;
    for (let k = Math.max(N, key.length); k > 0; k--) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = ((mt[i] ^ Math.imul(prev, 1664525)) + key[j] + j) >>> 0;
      i++;
      j++;
      if (i >= N) {
        mt[0] = mt[N - 1];
        i = 1;
      }
      if (j >= key.length) j = 0;
    }
    for (let k = N - 1; k > 0; k--) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = ((mt[i] ^ Math.imul(prev, 1566083941)) - i) >>> 0;
      i++;
      if (i >= N) {
        mt[0] = mt[N - 1];
        i = 1;
      }
    }
    mt[0] = 0x80000000;
    this.index = N;
  }

  private twist(): void {
    const mt = this.mt;
    for (let kk = 0; kk < N; kk++) {
      const y = (mt[kk] & UPPER) | (mt[(kk + 1) % N] & LOWER);
      mt[kk] = mt[(kk + M) % N] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    }
    this.index = 0;
  }

  /** One 32-bit output (CPython's genrand_uint32). */
  uint32(): number {
    if (this.index >= N) this.twist();
    let y = this.mt[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** `random.random()`: 53-bit float in [0, 1). */
  random(): number {
    const a = this.uint32() >>> 5;
    const b = this.uint32() >>> 6;
    return (a * 67108864 + b) * (1 / 9007199254740992);
  }

  /** `getrandbits(k)` for 0 <= k <= 32, which is all `_randbelow` needs here. */
  getrandbits(k: number): number {
    if (k === 0) return 0;
    return this.uint32() >>> (32 - k);
  }

  /** `_randbelow(n)`: rejection sampling on n.bit_length() bits. n < 2**32. */
  randbelow(n: number): number {
    const k = 32 - Math.clz32(n);
    let r = this.getrandbits(k);
    while (r >= n) r = this.getrandbits(k);
    return r;
  }

  /**
   * `random.sample(range(n), k)`: k distinct positions in [0, n). CPython picks a partial
   * shuffle of a list or rejection against a set depending on sizes; both are reproduced
   * because they consume the generator differently.
   */
  sample(n: number, k: number): number[] {
    if (!(k >= 0 && k <= n)) throw new RangeError('Sample larger than population or is negative');
    const out = new Array<number>(k);
    let setsize = 21;
    if (k > 5) setsize += 4 ** Math.ceil(Math.log(k * 3) / Math.log(4));
    if (n <= setsize) {
      const pool = new Array<number>(n);
      for (let i = 0; i < n; i++) pool[i] = i;
      for (let i = 0; i < k; i++) {
        const j = this.randbelow(n - i);
        out[i] = pool[j];
        pool[j] = pool[n - i - 1];
      }
    } else {
      const selected = new Set<number>();
      for (let i = 0; i < k; i++) {
        let j = this.randbelow(n);
        while (selected.has(j)) j = this.randbelow(n);
        selected.add(j);
        out[i] = j;
      }
    }
    return out;
  }

  getState(): PythonRandomState {
    return { mt: Array.from(this.mt), index: this.index };
  }

  setState(s: PythonRandomState): void {
    if (s.mt.length !== N || !(s.index >= 0 && s.index <= N)) throw new RangeError('bad Mersenne Twister state');
    for (let i = 0; i < N; i++) this.mt[i] = s.mt[i] >>> 0;
    this.index = s.index;
  }
}
