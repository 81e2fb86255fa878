import { describe, expect, it } from 'vitest';
import { float32Text, float32TextReference, writeFloat32 } from '../src/http/float32-text';
import { rng } from '../bench/lib/bodies';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function fromBits(bits: number): number {
  u32[0] = bits >>> 0;
  return f32[0]!;
}

function bitsOf(f: number): number {
  f32[0] = f;
  return u32[0]!;
}

/** Significant digits of a decimal text (sign, point, exponent and leading zeros aside). */
function digits(text: string): number {
  return text.replace(/^-/, '').replace(/e.*$/i, '').replace('.', '').replace(/^0+/, '').replace(/0+$/, '').length || 1;
}

function check(f: number): void {
  const text = float32Text(f);
  const ref = float32TextReference(f);
  expect(Math.fround(Number(text)), `${f} printed ${text}`).toBe(f);
  expect(text, `${f}`).toBe(ref);
  // The reference is the definition; the shortest claim is checked against toPrecision directly too.
  const p = digits(text);
  if (p > 1) expect(Math.fround(Number(f.toPrecision(p - 1))), `${f}: ${f.toPrecision(p - 1)} reads back too`).not.toBe(f);
}

describe('float32Text: the shortest text that reads back to the same float32', () => {
  it('prints the usual probabilities in a few digits', () => {
    expect(float32Text(Math.fround(0.8807970285415649))).toBe('0.880797');
    expect(float32Text(Math.fround(0.1))).toBe('0.1');
    expect(float32Text(0.5)).toBe('0.5');
    expect(float32Text(1)).toBe('1');
    expect(float32Text(0)).toBe('0');
    expect(float32Text(-0)).toBe('0');
    // JSON has no spelling for them (the Open Inference Protocol's FP32 data may hold them).
    for (const f of [NaN, Infinity, -Infinity]) expect(float32Text(f)).toBe('null');
    expect(float32Text(Math.fround(1e-7))).toBe('1e-7');
    expect(float32Text(Math.fround(1.5e-7))).toBe('1.5e-7');
    expect(float32Text(Math.fround(0.000001))).toBe('0.000001');
    expect(float32Text(Math.fround(-0.25))).toBe('-0.25');
    expect(float32Text(Math.fround(3.4028234663852886e38))).toBe('3.4028235e+38');
    expect(float32Text(Math.fround(1e21))).toBe('1e+21');
    expect(float32Text(Math.fround(123456792))).toBe('123456790');
  });

  it('edge values: zero, one, subnormals, powers of two, powers of ten, 1-ulp neighbours', () => {
    const values = [0, 1, 2, 10, 100, 1e6, 1e7, 1e20, 1e21, 1e22, 1e23, 1e30, 3.4028234663852886e38];
    for (let k = 1; k <= 149; k++) values.push(2 ** -k); // every negative power of two, subnormals included
    for (let k = 1; k <= 45; k++) values.push(Math.fround(10 ** -k));
    values.push(fromBits(1), fromBits(2), fromBits(0x7fffff), fromBits(0x800000), fromBits(0x800001)); // subnormal ends, smallest normals
    const around = [1, 0.5, 0.1, 0.25, 0.75, 0.9, 0.99, 0.999999, 1e-6, 1e-7, 1e-13, 1e-14, 1e-15, Math.fround(1 / 3)];
    for (const c of around) {
      const b = bitsOf(Math.fround(c));
      for (let d = -3; d <= 3; d++) values.push(fromBits(b + d));
    }
    for (const v of values) {
      const f = Math.fround(v);
      if (!Number.isFinite(f)) continue;
      check(f);
      if (f !== 0) check(-f); // -0 prints "0", as String(-0) does: a probability is never -0
    }
  });

  it('agrees with the toPrecision reference on 100,000 seeded float32 values', () => {
    const rand = rng(0xf32);
    for (let k = 0; k < 100_000; k++) {
      const r = rand();
      let f: number;
      if (k % 4 === 0) f = fromBits(Math.floor(r * 0x3f800001)); // uniform over the bit patterns of [0, 1]
      else if (k % 4 === 1) f = Math.fround(r); // uniform in value over [0, 1)
      else if (k % 4 === 2) f = Math.fround(1 / (1 + Math.exp(-(r * 16 - 8)))); // a sigmoid's outputs
      else f = fromBits(Math.floor(r * 0x7f800000)); // any finite positive float32
      check(f);
    }
  });

  it('writeFloat32 writes the same text as bytes and answers the index after it', () => {
    const buf = new Uint8Array(64).fill(0x7e);
    const end = writeFloat32(buf, 3, Math.fround(0.880797));
    expect(end).toBe(3 + '0.880797'.length);
    expect(Buffer.from(buf.subarray(3, end)).toString('latin1')).toBe('0.880797');
    expect(buf[2]).toBe(0x7e);
    expect(buf[end]).toBe(0x7e);
  });
});
