/**
 * The hot path of JSON infer bodies (src/http/oip/scan.ts) against the JSON.parse reference
 * (src/http/oip/request.ts): on seeded valid and mutated bodies both give the same header and
 * bit-identical rows, or the same error; and the scanner really takes the common bodies.
 */
import { describe, expect, it } from 'vitest';
import { isTradeflowError } from '../src/errors';
import { decodeInferReference, type InputSpec } from '../src/http/oip/request';
import { decodeInfer } from '../src/http/oip/scan';

const F = 4;
const spec: InputSpec = { model: 'ensemble', inputName: 'input', features: F, maxRows: 8 };

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 0x100000000;
  };
}

function number(r: () => number): string {
  const k = Math.floor(r() * 6);
  if (k === 0) return String(Math.floor(r() * 200) - 100);
  if (k === 1) return (r() * 4 - 2).toString();
  if (k === 2) return (r() * 10).toExponential(Math.floor(r() * 8));
  if (k === 3) return '-0.000' + Math.floor(r() * 1e6);
  if (k === 4) return '0.1234567890123456789';
  return String(Math.fround(r() * 3));
}

function body(r: () => number): string {
  const rows = 1 + Math.floor(r() * 3);
  const sp = r() < 0.3 ? ' ' : '';
  const vals: string[][] = [];
  for (let i = 0; i < rows; i++) vals.push(Array.from({ length: F }, () => number(r)));
  const data = r() < 0.5 ? '[' + vals.flat().join(',' + sp) + ']' : '[' + vals.map((v) => '[' + v.join(',') + ']').join(',' + sp) + ']';
  const shape = r() < 0.9 ? `[${rows},${F}]` : `[${rows + 1},${F}]`;
  const input = [`"name":${sp}"input"`, `"datatype":"${r() < 0.8 ? 'FP32' : r() < 0.5 ? 'FP64' : 'INT32'}"`, `"shape":${shape}`, `"data":${sp}${data}`];
  if (r() < 0.3) input.push('"parameters":{"x":[1,{"y":null}]}');
  if (r() < 0.5) input.reverse();
  const top = [`"inputs":[{${input.join(',')}}]`];
  if (r() < 0.5) top.push(`"id":"r${Math.floor(r() * 100)}"`);
  if (r() < 0.3) top.push('"outputs":[{"name":"label","parameters":{"binary_data":false}}]');
  if (r() < 0.2) top.push('"parameters":{"binary_data_output":false}');
  if (r() < 0.5) top.reverse();
  return `${sp}{${sp}${top.join(',' + sp)}}`;
}

function mutate(s: string, r: () => number): string {
  const chars = ['"', ',', '[', ']', '{', '}', '1', '-', '.', 'e', ' ', '\\', 'é', 'x', ':'];
  const i = Math.floor(r() * s.length);
  const k = r();
  if (k < 0.4) return s.slice(0, i) + s.slice(i + 1);
  if (k < 0.8) return s.slice(0, i) + chars[Math.floor(r() * chars.length)] + s.slice(i + 1);
  return s.slice(0, i) + chars[Math.floor(r() * chars.length)] + s.slice(i);
}

type Outcome = { ok: true; header: unknown; rows: number[] } | { ok: false; code: string; message: string };

function run(decode: typeof decodeInfer, bytes: Uint8Array): Outcome {
  const out = new Float32Array(spec.maxRows * F);
  try {
    const header = decode(bytes, spec, out);
    return { ok: true, header, rows: Array.from(new Uint32Array(out.buffer, 0, header.rows * F)) };
  } catch (err) {
    if (!isTradeflowError(err)) throw err;
    return { ok: false, code: err.code, message: err.message };
  }
}

describe('infer body scanner against the reference', () => {
  it('agrees bit for bit on 20,000 seeded bodies (valid and mutated)', () => {
    const r = rng(7);
    let ok = 0;
    for (let n = 0; n < 20000; n++) {
      let s = body(r);
      const m = Math.floor(r() * 3);
      for (let j = 0; j < m; j++) s = mutate(s, r);
      const bytes = Buffer.from(s, 'utf8');
      const fast = run(decodeInfer, bytes);
      const ref = run(decodeInferReference, bytes);
      if (JSON.stringify(fast) !== JSON.stringify(ref)) expect({ body: s, fast }).toEqual({ body: s, fast: ref });
      if (fast.ok) ok++;
    }
    expect(ok).toBeGreaterThan(5000);
  });

  it('takes a plain FP32 body itself: it does not call JSON.parse on the data', () => {
    const text = '{"inputs":[{"name":"input","datatype":"FP32","shape":[2,4],"data":[1,2,3,4,5,6,7,8.5]}]}';
    const original = JSON.parse;
    const seen: string[] = [];
    JSON.parse = ((t: string, ...rest: []) => {
      seen.push(t);
      return original(t, ...rest);
    }) as typeof JSON.parse;
    try {
      const out = new Float32Array(32);
      expect(decodeInfer(Buffer.from(text), spec, out).rows).toBe(2);
      expect(Array.from(out.subarray(0, 8))).toEqual([1, 2, 3, 4, 5, 6, 7, 8.5]);
    } finally {
      JSON.parse = original;
    }
    expect(seen).toEqual(['{"inputs":[{"name":"input","datatype":"FP32","shape":[2,4],"data":[]}]}']);
  });
});
