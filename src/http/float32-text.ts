/**
 * Float32 values as the shortest decimal text that reads back to the same float32.
 *
 * Answers carry float32 probabilities; printed as doubles they take 16-17 digits
 * (0.8807970285415649) where 9 at most say the same float32 (0.880797). A reader gets the value
 * back with `Math.fround(Number(text))` (or by parsing into a float32, as numpy and the
 * engine's own decoder do).
 *
 * How: for p significant digits, n = round(a * 10^s) is the nearest p-digit decimal n / 10^s,
 * and with n < 2^53 and |s| <= 22 the double division n / 10^s is exactly the double that
 * parsing that decimal gives (Clinger's fast path: both operands exact, one correctly rounded
 * operation), so `Math.fround(n / 10^s) === a` is the read-back test itself, and no string is
 * built to find the answer. The digits are then written as bytes (`writeFloat32`), laid out as
 * JavaScript's Number#toString lays out a number, so the text is what `String` would print for
 * that decimal. Values beyond the table (|s| > 22: below about 1e-13 or above 1e22) take the
 * `toPrecision` loop, which is the definition (`float32TextReference`) and the tests' reference.
 *
 * The search does not start at one digit: if the nearest p-digit decimal reads back, so does the
 * nearest (p+1)-digit one (it is no farther from a, and the read-back interval is symmetric
 * around a), so the shortest length is found by trying 7 digits, then going up or down. The
 * interval is lopsided only at a power of two (the gap below is half the gap above): those
 * search up from one digit.
 */

// 10^0 .. 10^22 are exact doubles.
const POW10 = [
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
  1e18, 1e19, 1e20, 1e21, 1e22,
];
const MAX_DIGITS = 9; // every float32 reads back from 9 significant digits
const FIRST_TRY = 7; // most probabilities need 7 or 8 digits

// The search's answer: the decimal nOut * 10^-sOut (no tuples on the hot path).
let nOut = 0;
let sOut = 0;
const bitsView = new Float32Array(1);
const bitsInt = new Uint32Array(bitsView.buffer);

/** The most bytes one float32's text takes (a rare value outside the table's range included). */
export const FLOAT32_TEXT_MAX = 48;

/**
 * Writes the shortest text of float32 `f` at buf[pos ..]; the index after it. buf needs 16 bytes
 * of room for the table's range, and up to FLOAT32_TEXT_MAX for the rare value outside it.
 */
export function writeFloat32(buf: Uint8Array, pos: number, f: number): number {
  if (f === 0) {
    buf[pos] = 0x30; // -0 prints "0", as String(-0)
    return pos + 1;
  }
  if (f - f !== 0) return writeAscii(buf, pos, 'null'); // NaN, ±Infinity: JSON has no spelling for them
  if (f < 0) {
    buf[pos++] = 0x2d;
    f = -f;
  }
  if (!shortest(f)) return writeAscii(buf, pos, float32TextReference(f));
  let n = nOut;
  let s = sOut;
  while (n % 10 === 0) {
    n /= 10;
    s--;
  }
  return writeDecimal(buf, pos, n, s);
}

/** The shortest text t with Math.fround(Number(t)) === f, for a float32 value f. */
export function float32Text(f: number): string {
  const end = writeFloat32(scratch, 0, f);
  return String.fromCharCode.apply(null, scratch.subarray(0, end) as unknown as number[]);
}

const scratch = new Uint8Array(64);

/**
 * Finds the shortest decimal nOut / 10^sOut reading back as a > 0; false outside the table's
 * range (every length from 1 to 9 digits must have |s| <= 22: 1e-14 <= a < 1e23).
 */
function shortest(a: number): boolean {
  bitsView[0] = a;
  const bits = bitsInt[0]!;
  const e = decimalExponent(a, ((bits >>> 23) & 0xff) - 127);
  if (e < -14 || e > 22) return false;
  if ((bits & 0x7fffff) === 0) return upFrom(a, e, 1); // a power of two: lopsided interval
  if (!nearest(a, FIRST_TRY - 1 - e)) return upFrom(a, e, FIRST_TRY + 1);
  let n = nOut;
  let s = sOut;
  for (let p = FIRST_TRY - 1; p >= 1 && nearest(a, p - 1 - e); p--) {
    n = nOut;
    s = sOut;
  }
  nOut = n;
  sOut = s;
  return true;
}

function upFrom(a: number, e: number, p: number): boolean {
  for (; p <= MAX_DIGITS; p++) if (nearest(a, p - 1 - e)) return true;
  return false;
}

/**
 * Whether the nearest decimal n / 10^s to a reads back as a (then into nOut, sOut). Near a tie,
 * a * 10^s (itself rounded) may have picked the wrong neighbour: the other one is tried too.
 */
function nearest(a: number, s: number): boolean {
  if (s > 22 || s < -22) return false;
  const scale = POW10[s < 0 ? -s : s]!;
  const v = s >= 0 ? a * scale : a / scale;
  let n = Math.round(v);
  if (Math.fround(s >= 0 ? n / scale : n * scale) !== a) {
    const r = v - n;
    if (r < 0.4999 && r > -0.4999) return false;
    n = r > 0 ? n + 1 : n - 1;
    if (Math.fround(s >= 0 ? n / scale : n * scale) !== a) return false;
  }
  nOut = n;
  sOut = s;
  return true;
}

/**
 * floor(log10(a)) for a > 0 from its binary exponent e2 (a in [2^e2, 2^(e2+1))): log10(a) is
 * then in [e2 log10(2), (e2 + 1) log10(2)), so the estimate is the answer or one below it.
 * Only meaningful where the caller uses it (-14 .. 22); 1 / 10^k is the correctly rounded
 * 10^-k, and no float32 lies between the two.
 */
function decimalExponent(a: number, e2: number): number {
  const e = Math.floor(e2 * 0.30102999566398120);
  const next = e + 1;
  if (next >= 0 ? next <= 22 && a >= POW10[next]! : next >= -22 && a >= 1 / POW10[-next]!) return next;
  return e;
}

/**
 * n * 10^-s (n > 0 an integer without trailing zeros) laid out as Number#toString does (ECMA-262
 * Number::toString): plain digits while the point is within 21 places, "0.000ddd" down to 1e-6,
 * exponent notation beyond.
 */
function writeDecimal(buf: Uint8Array, pos: number, n: number, s: number): number {
  const k = digitCount(n);
  const point = k - s; // the value is 0.DIGITS * 10^point
  if (point >= k && point <= 21) {
    pos = writeDigits(buf, pos, n, k);
    for (let z = point - k; z > 0; z--) buf[pos++] = 0x30;
    return pos;
  }
  if (point > 0 && point <= 21) {
    writeDigits(buf, pos + 1, n, k);
    buf.copyWithin(pos, pos + 1, pos + 1 + point); // the integer digits one place left, then the point
    buf[pos + point] = 0x2e;
    return pos + k + 1;
  }
  if (point > -6 && point <= 0) {
    buf[pos++] = 0x30;
    buf[pos++] = 0x2e;
    for (let z = -point; z > 0; z--) buf[pos++] = 0x30;
    return writeDigits(buf, pos, n, k);
  }
  writeDigits(buf, pos + 1, n, k);
  buf[pos] = buf[pos + 1]!;
  if (k > 1) {
    buf[pos + 1] = 0x2e;
    pos += k + 1;
  } else {
    pos += 1;
  }
  const x = point - 1;
  buf[pos++] = 0x65;
  buf[pos++] = x < 0 ? 0x2d : 0x2b;
  const ax = x < 0 ? -x : x;
  return writeDigits(buf, pos, ax, digitCount(ax));
}

function digitCount(n: number): number {
  let k = 1;
  while (k < 16 && n >= POW10[k]!) k++;
  return k;
}

/** "00" .. "99" as byte pairs: two digits per division. */
const PAIRS = new Uint8Array(200);
for (let v = 0; v < 100; v++) {
  PAIRS[2 * v] = 0x30 + Math.floor(v / 10);
  PAIRS[2 * v + 1] = 0x30 + (v % 10);
}

/** The k digits of integer n (< 2^31, as every n here) at buf[pos ..]; the index after them. */
function writeDigits(buf: Uint8Array, pos: number, n: number, k: number): number {
  let i = pos + k;
  while (n >= 100) {
    const q = (n / 100) | 0;
    const r = 2 * (n - q * 100);
    buf[--i] = PAIRS[r + 1]!;
    buf[--i] = PAIRS[r]!;
    n = q;
  }
  if (n >= 10) {
    buf[--i] = PAIRS[2 * n + 1]!;
    buf[--i] = PAIRS[2 * n]!;
  } else {
    buf[--i] = 0x30 + n;
  }
  return pos + k;
}

function writeAscii(buf: Uint8Array, pos: number, text: string): number {
  for (let i = 0; i < text.length; i++) buf[pos++] = text.charCodeAt(i);
  return pos;
}

/** The definition: the first of toPrecision(1 .. 9) that reads back, as String prints that number. */
export function float32TextReference(f: number): string {
  if (f === 0 || f - f !== 0) return '' + f;
  for (let p = 1; p < MAX_DIGITS; p++) {
    const d = Number(f.toPrecision(p));
    if (Math.fround(d) === f) return '' + d;
  }
  return '' + Number(f.toPrecision(MAX_DIGITS));
}
