/**
 * FP32 answer text (src/http/oip/float32-text.ts): every float32 is printed with digits that read
 * back to the same float32, and no shorter toPrecision(p) would; seeded floats of every exponent,
 * denormals, powers of ten and their neighbours, -0.
 */
import { describe, expect, it } from 'vitest';
import { float32Text, shortestByPrecision, writeFloat32 } from '../src/http/oip/float32-text';

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 0x100000000;
  };
}

const bits = new Uint32Array(1);
const asFloat = new Float32Array(bits.buffer);

function significantDigits(s: string): number {
  const mantissa = s.replace(/^-/, '').replace(/e.*$/i, '').replace('.', '').replace(/^0+/, '');
  return Math.max(1, mantissa.replace(/0+$/, '').length);
}

function check(f: number): void {
  const s = float32Text(f);
  expect(JSON.parse(s), `${f} → ${s}`).toBeTypeOf('number');
  expect(Object.is(Math.fround(Number(s)), f), `${f} → ${s}`).toBe(true);
  const p = significantDigits(s);
  for (let q = 1; q < p; q++) expect(Math.fround(Number(f.toPrecision(q))) === f, `${f} → ${s}: toPrecision(${q}) round-trips`).toBe(false);
}

describe('shortest float32 text', () => {
  it('round-trips and is shortest on seeded float32 bit patterns (all exponents, denormals)', () => {
    const r = rng(42);
    for (let t = 0; t < 60_000; t++) {
      bits[0] = Math.floor(r() * 0x100000000);
      const f = asFloat[0]!;
      if (!Number.isFinite(f)) continue;
      check(f);
    }
  });

  it('round-trips and is shortest on probabilities (what the answers carry)', () => {
    const r = rng(9);
    for (let t = 0; t < 60_000; t++) check(Math.fround(r()));
  });

  it('round-trips at powers of ten, their float32 neighbours, extremes and zeros', () => {
    const fs: number[] = [0, -0, 1, -1, 0.5, 0.1, 3.4028234663852886e38, 1.401298464324817e-45, 1.1754943508222875e-38];
    for (let e = -45; e <= 38; e++) {
      const f = Math.fround(10 ** e);
      fs.push(f, -f);
      bits[0] = new Uint32Array(new Float32Array([f]).buffer)[0]!;
      for (const d of [-1, 1]) {
        const b = new Uint32Array([bits[0] + d]);
        fs.push(new Float32Array(b.buffer)[0]!);
      }
    }
    for (const f of fs) if (Number.isFinite(f)) check(Math.fround(f));
    expect(float32Text(-0)).toBe('-0');
    expect(float32Text(0)).toBe('0');
    expect(float32Text(Math.fround(0.1))).toBe('0.1');
    expect(float32Text(Math.fround(0.87654321))).toBe(shortestByPrecision(Math.fround(0.87654321)));
    expect(float32Text(100)).toBe('100');
  });

  it('writes null for NaN and infinities (JSON has no spelling for them)', () => {
    for (const f of [NaN, Infinity, -Infinity]) expect(float32Text(f)).toBe('null');
  });

  it('writes at the offset and answers the end', () => {
    const b = new Uint8Array(32).fill(0x20);
    const end = writeFloat32(b, 3, Math.fround(0.25));
    expect(Buffer.from(b.subarray(0, end)).toString('latin1')).toBe('   0.25');
  });
});
