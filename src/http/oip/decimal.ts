/**
 * One number of an infer body's data array, stored as float32. Nearly every number a client
 * sends is a plain decimal (`-?int[.frac]`, no exponent), so that shape is read in one pass:
 * digits accumulate into an integer m and, when m < 2^53 and there are at most 22 fraction
 * digits, m and 10^k are both exact doubles, so one IEEE division gives the correctly rounded
 * double of the literal, the same double JSON.parse gives (test/oip-decimal.test.ts fuzzes the
 * two against each other). Anything else (an exponent, more digits) goes to the general scanner
 * of ../json-body.ts from the literal's first byte. The value is stored straight into the row
 * slab: no intermediate cell, no call on the common path.
 */
import { numOut, scanNumber } from '../json-body';

const D0 = 0x30;
const MINUS = 0x2d;
const DOT = 0x2e;
const TWO_53 = 9007199254740992;
const MAX_EXACT_POW10 = 22;
const POW10: number[] = [];
for (let k = 0, p = 1; k <= MAX_EXACT_POW10; k++, p *= 10) POW10.push(p);

/**
 * Scans the number at i into out[at] (rounded to float32): the index after it, or -1 when it is
 * not a JSON number or is not finite as float32 (the reference path words those errors). The
 * caller checks what follows, so `01` and `1.5x` are rejected there.
 */
export function scanFloat32(b: Uint8Array, i: number, n: number, out: Float32Array, at: number): number {
  const start = i;
  const neg = i < n && b[i] === MINUS;
  if (neg) i++;
  let d = i < n ? b[i]! - D0 : -1;
  if (d < 0 || d > 9) return -1;
  let m = d;
  i++;
  if (d !== 0) while (i < n && (d = b[i]! - D0) >= 0 && d <= 9) { m = m * 10 + d; i++; }
  let k = 0;
  if (i < n && b[i] === DOT) {
    const f0 = ++i;
    while (i < n && (d = b[i]! - D0) >= 0 && d <= 9) { m = m * 10 + d; i++; }
    k = i - f0;
    if (k === 0) return -1;
  }
  // An exponent, or digits past exact integers or exact powers of ten: the general scanner.
  if ((i < n && (b[i]! | 0x20) === 0x65) || m >= TWO_53 || k > MAX_EXACT_POW10) return slow(b, start, n, out, at);
  const v = k === 0 ? m : m / POW10[k]!;
  out[at] = neg ? -v : v;
  return i;
}

function slow(b: Uint8Array, start: number, n: number, out: Float32Array, at: number): number {
  const i = scanNumber(b, start, n);
  if (i < 0) return -1;
  const f = Math.fround(numOut[0]!);
  if (f - f !== 0) return -1; // ±Infinity as float32: the reference words the error
  out[at] = f;
  return i;
}
