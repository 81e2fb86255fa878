/**
 * The data-array number scanner of JSON infer bodies (src/http/oip/decimal.ts): its plain-decimal
 * fast path and its fallback give, on seeded literals of every kind, exactly the float32 of
 * JSON.parse's double, and refuse what JSON.parse refuses (and literals over 128 characters,
 * which the JSON.parse reference path of src/http/oip/request.ts then reads).
 */
import { describe, expect, it } from 'vitest';
import { scanFloat32 } from '../src/http/oip/decimal';

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 0x100000000;
  };
}

function digits(r: () => number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += String(Math.floor(r() * 10));
  return s;
}

/** A JSON number literal: plain decimals of every length, exponents, -0, denormals, huge ones. */
function literal(r: () => number): string {
  const sign = r() < 0.4 ? '-' : '';
  const int = r() < 0.3 ? '0' : String(1 + Math.floor(r() * 9)) + digits(r, Math.floor(r() * 18));
  const frac = r() < 0.8 ? '.' + digits(r, 1 + Math.floor(r() * (r() < 0.9 ? 20 : 400))) : '';
  const k = Math.floor(r() * 10);
  if (k === 0) return sign + int + frac + (r() < 0.5 ? 'e' : 'E') + (r() < 0.3 ? '-' : r() < 0.5 ? '+' : '') + Math.floor(r() * 60);
  if (k === 1) return sign + '0.' + '0'.repeat(Math.floor(r() * 50)) + digits(r, 1 + Math.floor(r() * 12)); // float32 denormals and below
  if (k === 2) return sign + String(1 + Math.floor(r() * 9)) + digits(r, 30 + Math.floor(r() * 300)) + frac; // past 2^53 and float32's range
  if (k === 3) return String(Math.fround((r() - 0.5) * 2 ** Math.floor(r() * 270 - 150)));
  if (k === 4) return sign + '0' + (r() < 0.5 ? '.' + '0'.repeat(1 + Math.floor(r() * 30)) : '');
  return sign + int + frac;
}

function scan(s: string): { end: number; value: number } {
  const b = Buffer.from(s + ']', 'latin1');
  const out = new Float32Array(1);
  out[0] = 12345;
  const end = scanFloat32(b, 0, b.length, out, 0);
  return { end, value: out[0]! };
}

describe('OIP data number scanner', () => {
  it('equals Math.fround(JSON.parse) on seeded literals, bit for bit, -0 included', () => {
    const r = rng(20261201);
    let plain = 0;
    for (let t = 0; t < 200_000; t++) {
      const s = literal(r);
      const want = Math.fround(JSON.parse(s) as number);
      const got = scan(s);
      if (!Number.isFinite(want)) {
        expect(got.end, s).toBe(-1);
        continue;
      }
      if (!/[eE]/.test(s)) plain++;
      // The general scanner leaves literals over 128 characters to the JSON.parse reference path.
      if (got.end === -1 && s.length > 128) continue;
      expect(got.end, s).toBe(s.length);
      expect(Object.is(got.value, want), `${s}: ${got.value} vs ${want}`).toBe(true);
    }
    expect(plain).toBeGreaterThan(100_000);
  });

  it('takes the plain decimals clients send: 8 significant digits of features', () => {
    const r = rng(7);
    for (let t = 0; t < 50_000; t++) {
      const s = ((r() - 0.5) * 10 ** Math.floor(r() * 8 - 3)).toPrecision(8);
      if (/e/.test(s)) continue;
      expect(Object.is(scan(s).value, Math.fround(Number(s))), s).toBe(true);
    }
  });

  it('refuses what is not a JSON number (the caller checks what follows)', () => {
    for (const s of ['-', '.5', '1.', '-.5', '+1', 'x', '1e', '1e+', '-e1', '', 'Infinity', 'NaN']) {
      expect(scan(s).end, s).toBe(-1);
    }
    expect(scan('01').end).toBe(1); // "0" then "1": refused by the caller
    expect(scan('1.5x').end).toBe(3);
  });

  it('refuses numbers finite as doubles but not as float32', () => {
    expect(scan('3.5e38').end).toBe(-1);
    expect(scan('-1' + '0'.repeat(39)).end).toBe(-1);
    expect(scan('4' + '0'.repeat(38) + '.5').end).toBe(-1);
  });
});
