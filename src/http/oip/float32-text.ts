/**
 * The shortest decimal that reads back to the same float32 (`Math.fround(Number(s)) === f`),
 * written as ASCII bytes. A float32 needs at most 9 significant digits; printing it as a double
 * (`String(f)`) gives up to 17 for the same information, and V8's double-to-shortest is the
 * costlier conversion.
 *
 * Search over decimal places k: the candidate with k places is m / 10^k, m = round(|f| · 10^k).
 * With m and 10^k exact doubles (k <= 22), m / 10^k (or m · 10^-k) is one correctly rounded IEEE
 * operation, i.e. exactly the double Number() gives for the printed text, so the round-trip check
 * is the real one. The first k that round-trips is the shortest, because the nearest point of a
 * finer decimal grid is never farther from f than that of a coarser one (the k+1 grid contains
 * the k grid); so the walk starts at 6 digits and goes up until, or down while, it round-trips.
 * Outside the range where that arithmetic stays exact, toPrecision(p) for p = 1..9
 * does the same search with V8's conversions.
 * test/oip-float32-text.test.ts checks both properties (round-trip, and that no shorter
 * toPrecision(p) round-trips) on seeded floats of every exponent.
 */

const D0 = 0x30;
const MINUS = 0x2d;
const DOT = 0x2e;
/** Decimal exponents of |f| the exact search takes: grid steps 10^-22 .. 10^8. */
const MIN_EXP10 = -13;
const MAX_EXP10 = 8;
const MAX_DIGITS = 9;
const GUESS_DIGITS = 6;
const POW10: number[] = [];
for (let k = 0, p = 1; k <= 22; k++, p *= 10) POW10.push(p);

/** The most bytes one float32 takes (`-0.` and 12 zeros before 9 digits, at 10^-13). */
export const FLOAT32_TEXT_MAX = 24;

const digits = new Uint8Array(24);

/** Writes the shortest round-trip text of f (a float32 value) at buf[at]; the index after it. */
export function writeFloat32(buf: Uint8Array, at: number, f: number): number {
  if (f === 0) {
    if (1 / f < 0) buf[at++] = MINUS;
    buf[at] = D0;
    return at + 1;
  }
  if (f - f !== 0) return writeAscii(buf, at, 'null'); // NaN, ±Infinity: JSON has no spelling for them
  const a = f < 0 ? -f : f;
  const e10 = Math.floor(Math.log10(a));
  if (e10 < MIN_EXP10 || e10 > MAX_EXP10) return writeAscii(buf, at, shortestByPrecision(f));
  // Most float32s need 7 to 9 digits: start at 6 and walk up, or down while shorter still works.
  // The walk down stops one place coarser than 1 digit: log10 can be one off near powers of ten.
  let k = GUESS_DIGITS - 1 - e10;
  let m = roundTrip(a, k);
  if (m !== 0) {
    for (let shorter; k > -e10 - 1 && (shorter = roundTrip(a, k - 1)) !== 0; k--) m = shorter;
  } else {
    for (const end = MAX_DIGITS - e10; m === 0 && k < end; ) m = roundTrip(a, ++k);
    if (m === 0) return writeAscii(buf, at, shortestByPrecision(f));
  }
  if (f < 0) buf[at++] = MINUS;
  return writeFixed(buf, at, m, k);
}

/** m = round(a · 10^k) if m / 10^k reads back to the float32 a, else 0. */
function roundTrip(a: number, k: number): number {
  const m = Math.round(k >= 0 ? a * POW10[k]! : a / POW10[-k]!);
  const v = k >= 0 ? m / POW10[k]! : m * POW10[-k]!;
  return Math.fround(v) === a ? m : 0;
}

/** The shortest text of f as a string (answers off the hot path, tests). */
export function float32Text(f: number): string {
  const buf = new Uint8Array(FLOAT32_TEXT_MAX * 2);
  return Buffer.from(buf.buffer, 0, writeFloat32(buf, 0, f)).toString('latin1');
}

/** The reference search, with V8's decimal conversions; normalised by String (e.g. `1e+2` → `100`). */
export function shortestByPrecision(f: number): string {
  for (let p = 1; p < MAX_DIGITS; p++) {
    const v = Number(f.toPrecision(p));
    if (Math.fround(v) === f) return String(v);
  }
  return String(Number(f.toPrecision(MAX_DIGITS)));
}

/** m · 10^-k as plain decimal digits, trailing fraction zeros dropped. */
function writeFixed(buf: Uint8Array, at: number, m: number, k: number): number {
  while (k > 0 && m % 10 === 0) {
    m /= 10;
    k--;
  }
  let len = 0;
  for (; m > 0; len++) {
    const q = Math.floor(m / 10);
    digits[len] = D0 + (m - q * 10);
    m = q;
  }
  if (k <= 0) {
    for (let j = len - 1; j >= 0; j--) buf[at++] = digits[j]!;
    for (; k < 0; k++) buf[at++] = D0;
    return at;
  }
  if (len <= k) {
    buf[at++] = D0;
    buf[at++] = DOT;
    for (let z = k - len; z > 0; z--) buf[at++] = D0;
    for (let j = len - 1; j >= 0; j--) buf[at++] = digits[j]!;
    return at;
  }
  for (let j = len - 1; j >= 0; j--) {
    buf[at++] = digits[j]!;
    if (j === k) buf[at++] = DOT;
  }
  return at;
}

function writeAscii(buf: Uint8Array, at: number, s: string): number {
  for (let j = 0; j < s.length; j++) buf[at++] = s.charCodeAt(j);
  return at;
}
