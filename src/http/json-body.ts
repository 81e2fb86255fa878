/**
 * JSON bodies of /predict and /learn decoded straight from the request bytes into a Float32Array.
 *
 * Two paths, one contract:
 * - `decodeJsonBodyReference` (TextDecoder + JSON.parse) defines correct behaviour and is the only
 *   code that raises errors.
 * - `decodeJsonBody` is a byte scanner for the hot path (JSON decoding is its largest cost). It
 *   accepts only input it fully understands and hands anything else (malformed JSON, any error,
 *   escapes, non-ASCII bytes, duplicate known keys, very long numbers, deep nesting) to the
 *   reference whole. Errors are therefore identical by construction; results are identical by
 *   test (a fuzz compares the two bit for bit).
 *
 * Error precedence (first failing check wins):
 *  0. INTERNAL: the caller's features/maxRows are not integers, or `out` is too small.
 *  1. INVALID_JSON: not valid UTF-8, or JSON.parse fails (a leading UTF-8 BOM is tolerated).
 *  2. INVALID_BODY: the top level is not an object.
 *  3. INVALID_BODY: both "features" and "instances".
 *  4. INVALID_BODY: "model", then "id", then "label" (type, then range).
 *  5. Row container: "features" not an array, "instances" not an array or empty (INVALID_BODY);
 *     more rows than maxRows (TOO_MANY_ROWS).
 *  6. "labels" container: not an array, not accepted (no labelsOut), length ≠ row count when the
 *     body carries rows, more than labelsOut holds (INVALID_BODY). Without rows (feedback that
 *     names an earlier prediction by "id") the caller checks the count.
 *  7. Rows in order; in each row: not an array (INVALID_BODY), length ≠ F
 *     (FEATURE_COUNT_MISMATCH), then its values in order: not a number (INVALID_FEATURE_VALUE),
 *     not finite as float32 (NON_FINITE_FEATURE).
 *  8. "labels" values in order (INVALID_BODY).
 * Unknown keys are ignored; a repeated key counts once, with its last value (as JSON.parse).
 * A key that is present with `null` is a wrong type, not an absent key.
 */
import { tfError, type TradeflowError } from '../errors';

export interface DecodedBody {
  /** Which key carried the rows ('none': neither key present). */
  shape: 'features' | 'instances' | 'none';
  /** Rows written to out[0 .. rows*F). */
  rows: number;
  model: string | undefined;
  id: string | undefined;
  /** The "label" key (0 or 1). */
  label: number | undefined;
  /** Entries of "labels" written to opts.labelsOut (0 if absent). */
  labelCount: number;
  /** True if the scanner handled the body, false if the JSON.parse path did (tests, metrics). */
  fast: boolean;
}

export interface DecodeOptions {
  /** Where "labels" go (learning). Without it a body carrying "labels" is refused. */
  labelsOut?: Uint8Array;
}

// In UTF-16 code units (JavaScript string length), which is bytes for the ASCII the scanner takes.
const MAX_ID_LENGTH = 256;

/**
 * Decodes `body` into `out` (row-major, room for maxRows*features floats). `body` is only read
 * during the call. Throws TradeflowError (via the reference path) on any invalid body; `out` and
 * `labelsOut` may then hold partial writes.
 */
export function decodeJsonBody(
  body: Uint8Array,
  features: number,
  out: Float32Array,
  maxRows: number,
  opts?: DecodeOptions,
): DecodedBody {
  const fast = scan(body, features, out, maxRows, opts === undefined ? undefined : opts.labelsOut);
  return fast !== null ? fast : decodeJsonBodyReference(body, features, out, maxRows, opts);
}

// ---------------------------------------------------------------------------------------------
// Reference path
// ---------------------------------------------------------------------------------------------

// fatal: a body that is not UTF-8 must be refused, not silently patched with U+FFFD.
const utf8 = new TextDecoder('utf-8', { fatal: true });

export function decodeJsonBodyReference(
  body: Uint8Array,
  features: number,
  out: Float32Array,
  maxRows: number,
  opts?: DecodeOptions,
): DecodedBody {
  checkArgs(features, out, maxRows);
  const text = utf8Text(body);
  const o = parseObject(text);
  const hasFeatures = Object.hasOwn(o, 'features');
  const hasInstances = Object.hasOwn(o, 'instances');
  if (hasFeatures && hasInstances) {
    throw invalidBody('body has both "features" and "instances": send one of them');
  }
  const model = modelOf(o);
  const id = idOf(o);
  const label = labelOf(o);
  const shape: DecodedBody['shape'] = hasFeatures ? 'features' : hasInstances ? 'instances' : 'none';
  const rowList = rowContainer(o, shape, features);
  const rows = shape === 'features' ? 1 : rowList.length;
  if (rows > maxRows) {
    throw tfError('TOO_MANY_ROWS', `body has ${rows} row${rows === 1 ? '' : 's'}, the limit is ${maxRows}`);
  }
  const labels = labelsContainer(o, shape, rows, opts?.labelsOut);
  decodeRows(shape, rowList, features, out, text);
  const labelCount = labels === undefined ? 0 : writeLabels(labels, opts!.labelsOut!);
  return { shape, rows, model, id, label, labelCount, fast: false };
}

function utf8Text(body: Uint8Array): string {
  try {
    return utf8.decode(body);
  } catch {
    throw tfError('INVALID_JSON', 'body is not valid UTF-8');
  }
}

function parseObject(text: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw tfError('INVALID_JSON', `body is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw invalidBody('body must be a JSON object');
  }
  return doc as Record<string, unknown>;
}

function modelOf(o: Record<string, unknown>): string | undefined {
  if (!Object.hasOwn(o, 'model')) return undefined;
  const v = o.model;
  if (typeof v !== 'string') throw invalidBody(`"model" must be a string, got ${typeName(v)}`);
  return v;
}

function idOf(o: Record<string, unknown>): string | undefined {
  if (!Object.hasOwn(o, 'id')) return undefined;
  const v = o.id;
  if (typeof v !== 'string') throw invalidBody(`"id" must be a string, got ${typeName(v)}`);
  if (v.length < 1 || v.length > MAX_ID_LENGTH) {
    throw invalidBody(`"id" must be 1 to ${MAX_ID_LENGTH} characters long, got ${v.length}`);
  }
  return v;
}

function labelOf(o: Record<string, unknown>): number | undefined {
  if (!Object.hasOwn(o, 'label')) return undefined;
  const v = o.label;
  if (v !== 0 && v !== 1) throw invalidBody(`"label" must be 0 or 1, got ${describe(v)}`);
  return v === 1 ? 1 : 0; // -0 passes the check above: report it as 0
}

/** The array that carries the rows: the one row of "features", the rows of "instances", or none. */
function rowContainer(o: Record<string, unknown>, shape: DecodedBody['shape'], features: number): unknown[] {
  if (shape === 'features') {
    const v = o.features;
    if (!Array.isArray(v)) {
      throw invalidBody(`"features" must be an array of ${features} numbers, got ${typeName(v)}`);
    }
    return v;
  }
  if (shape === 'instances') {
    const v = o.instances;
    if (!Array.isArray(v)) {
      throw invalidBody(`"instances" must be an array of rows, got ${typeName(v)}`);
    }
    if (v.length === 0) throw invalidBody('"instances" must not be empty');
    return v;
  }
  return [];
}

/** The "labels" array when present, checked as a container (its values are checked after the rows). */
function labelsContainer(
  o: Record<string, unknown>,
  shape: DecodedBody['shape'],
  rows: number,
  labelsOut: Uint8Array | undefined,
): unknown[] | undefined {
  if (!Object.hasOwn(o, 'labels')) return undefined;
  const v = o.labels;
  if (!Array.isArray(v)) throw invalidBody(`"labels" must be an array, got ${typeName(v)}`);
  if (labelsOut === undefined) throw invalidBody('"labels" is not accepted here');
  if (shape !== 'none' && v.length !== rows) {
    throw invalidBody(`"labels" has ${v.length} entries for ${rows} rows: one label per row`);
  }
  if (v.length > labelsOut.length) {
    throw invalidBody(`"labels" has ${v.length} entries, at most ${labelsOut.length} accepted`);
  }
  return v;
}

function decodeRows(shape: DecodedBody['shape'], rowList: unknown[], features: number, out: Float32Array, text: string): void {
  if (shape === 'features') {
    decodeRow(rowList, 'features', features, out, 0, text);
    return;
  }
  for (let i = 0; i < rowList.length; i++) {
    const row = rowList[i];
    if (!Array.isArray(row)) {
      throw invalidBody(`instances[${i}] must be an array of ${features} numbers, got ${typeName(row)}`);
    }
    decodeRow(row, `instances[${i}]`, features, out, i * features, text);
  }
}

/** The labels' values into labelsOut; their count. */
function writeLabels(labels: unknown[], labelsOut: Uint8Array): number {
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i];
    if (v !== 0 && v !== 1) throw invalidBody(`labels[${i}] must be 0 or 1, got ${describe(v)}`);
    labelsOut[i] = v;
  }
  return labels.length;
}

function decodeRow(row: unknown[], place: string, features: number, out: Float32Array, base: number, text: string): void {
  if (row.length !== features) {
    throw tfError(
      'FEATURE_COUNT_MISMATCH',
      `${place} has ${row.length} value${row.length === 1 ? '' : 's'}, expected ${features}`,
    );
  }
  for (let j = 0; j < features; j++) {
    const v = row[j];
    if (typeof v !== 'number') {
      throw tfError('INVALID_FEATURE_VALUE', `${place}[${j}] must be a number, got ${typeName(v)}`);
    }
    const f = Math.fround(v);
    if (!Number.isFinite(f)) {
      const literal = literalAt(text, place, j) ?? String(v);
      throw tfError('NON_FINITE_FEATURE', `${place}[${j}] is ${literal}, outside the float32 range`);
    }
    out[base + j] = f;
  }
}

// A caller bug, not a client error: caught here so that it cannot look like a bad body.
function checkArgs(features: number, out: Float32Array, maxRows: number): void {
  if (!Number.isInteger(features) || features < 1 || !Number.isInteger(maxRows) || maxRows < 0) {
    throw tfError('INTERNAL', `decodeJsonBody: bad features (${features}) or maxRows (${maxRows})`);
  }
  if (out.length < maxRows * features) {
    throw tfError('INTERNAL', `decodeJsonBody: out holds ${out.length} floats, needs ${maxRows * features}`);
  }
}

function invalidBody(message: string): TradeflowError {
  return tfError('INVALID_BODY', message);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function describe(v: unknown): string {
  return typeof v === 'number' ? String(v) : typeName(v);
}

/**
 * The source text of the number at `place[j]` (place is `features` or `instances[i]`), so that
 * NON_FINITE_FEATURE can quote what the client wrote (`1e400`, not `Infinity`). Error path only;
 * `text` is known to be valid JSON. The last occurrence of a repeated key wins, as in JSON.parse.
 */
function literalAt(text: string, place: string, j: number): string | undefined {
  try {
    const m = /^(features|instances)(?:\[(\d+)\])?$/.exec(place);
    if (m === null) return undefined;
    const path = m[2] === undefined ? [j] : [Number(m[2]), j];
    let i = wsAt(text, 0);
    if (text[i] !== '{') return undefined;
    i = wsAt(text, i + 1);
    let found = -1;
    while (text[i] === '"') {
      const keyEnd = valueEnd(text, i);
      const key: unknown = JSON.parse(text.slice(i, keyEnd));
      i = wsAt(text, wsAt(text, keyEnd) + 1); // past ':'
      if (key === m[1]) found = i;
      i = wsAt(text, valueEnd(text, i));
      if (text[i] !== ',') break;
      i = wsAt(text, i + 1);
    }
    if (found < 0) return undefined;
    i = found;
    for (const index of path) {
      if (text[i] !== '[') return undefined;
      i = wsAt(text, i + 1);
      for (let k = 0; k < index; k++) i = wsAt(text, wsAt(text, valueEnd(text, i)) + 1);
    }
    return text.slice(i, valueEnd(text, i));
  } catch {
    return undefined;
  }
}

function wsAt(t: string, i: number): number {
  while (i < t.length && (t[i] === ' ' || t[i] === '\n' || t[i] === '\r' || t[i] === '\t')) i++;
  return i;
}

/** End (exclusive) of the valid JSON value starting at i. */
function valueEnd(t: string, i: number): number {
  const c = t[i];
  if (c === '"') {
    i++;
    while (t[i] !== '"') i += t[i] === '\\' ? 2 : 1;
    return i + 1;
  }
  if (c === '[' || c === '{') {
    let depth = 0;
    for (;;) {
      const ch = t[i];
      if (ch === '"') {
        i = valueEnd(t, i);
        continue;
      }
      if (ch === '[' || ch === '{') depth++;
      else if (ch === ']' || ch === '}') {
        if (--depth === 0) return i + 1;
      }
      i++;
    }
  }
  while (i < t.length && ',]} \n\r\t'.indexOf(t[i]) < 0) i++;
  return i;
}

// ---------------------------------------------------------------------------------------------
// Scanner (hot path). Every function returns the index after what it read, or -1 for "not sure:
// let the reference decide". Nothing here throws and nothing allocates on the common path.
// ---------------------------------------------------------------------------------------------

const QUOTE = 0x22;
const PLUS = 0x2b;
const COMMA = 0x2c;
const MINUS = 0x2d;
const DOT = 0x2e;
const D0 = 0x30;
const COLON = 0x3a;
const LBRACKET = 0x5b;
const BACKSLASH = 0x5c;
const RBRACKET = 0x5d;
const LBRACE = 0x7b;
const RBRACE = 0x7d;

const K_FEATURES = 1;
const K_INSTANCES = 2;
const K_MODEL = 4;
const K_ID = 8;
const K_LABEL = 16;
const K_LABELS = 32;

// Deeper unknown values go to JSON.parse: keeps the recursion here shallow.
const MAX_SKIP_DEPTH = 32;
// Longer number literals go to JSON.parse: the slow path's string stays small.
const MAX_NUMBER_CHARS = 128;
const TWO_53 = 9007199254740992;
// 10^0 .. 10^22 are exact doubles: Clinger's fast path multiplies or divides by one of them.
const POW10 = [
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
  1e18, 1e19, 1e20, 1e21, 1e22,
];

// Results of the scan helpers that do not fit in the returned index (no tuples on the hot path).
// The number lives in a typed array: a double in a module-level `let` is boxed on every store.
export const numOut = new Float64Array(1);
let rowCount = 0;
let keyOut = 0;
let strOut: string | undefined;

// The member switch stays in this function: moved into its own (filling in the answer object
// member by member) it cost 4-6 % on a 1-row body, measured paired in one process; the key and
// string helpers below cost nothing measurable.
function scan(
  b: Uint8Array,
  F: number,
  out: Float32Array,
  maxRows: number,
  labelsOut: Uint8Array | undefined,
): DecodedBody | null {
  if (!scannable(F, out, maxRows)) return null;
  const n = b.length;
  let i = ws(b, 0, n);
  if (i >= n || b[i] !== LBRACE) return null;
  i = ws(b, i + 1, n);
  let seen = 0;
  let shape: DecodedBody['shape'] = 'none';
  let rows = 0;
  let model: string | undefined;
  let id: string | undefined;
  let label: number | undefined;
  let labelCount = 0;
  if (i < n && b[i] === RBRACE) {
    i++;
  } else {
    for (;;) {
      i = scanKey(b, i, n);
      if (i < 0) return null;
      const key = keyOut;
      if (key !== 0) {
        if ((seen & key) !== 0) return null; // repeated key: last-wins semantics left to JSON.parse
        seen |= key;
      }
      switch (key) {
        case K_FEATURES:
          if ((seen & K_INSTANCES) !== 0 || maxRows < 1) return null;
          i = scanRow(b, i, n, out, 0, F);
          shape = 'features';
          rows = 1;
          break;
        case K_INSTANCES:
          if ((seen & K_FEATURES) !== 0) return null;
          i = scanRows(b, i, n, out, F, maxRows);
          shape = 'instances';
          rows = rowCount;
          break;
        case K_MODEL:
          i = scanModel(b, i, n);
          model = strOut;
          break;
        case K_ID:
          i = scanId(b, i, n);
          id = strOut;
          break;
        case K_LABEL:
          i = scanNumber(b, i, n);
          if (i < 0 || (numOut[0] !== 0 && numOut[0] !== 1)) return null;
          label = numOut[0] === 1 ? 1 : 0; // -0 is 0
          break;
        case K_LABELS:
          if (labelsOut === undefined) return null;
          i = scanLabels(b, i, n, labelsOut);
          labelCount = rowCount;
          break;
        default:
          i = skipValue(b, i, n, 0);
      }
      if (i < 0) return null;
      i = ws(b, i, n);
      if (i < n && b[i] === COMMA) {
        i = ws(b, i + 1, n);
        continue;
      }
      if (i >= n || b[i] !== RBRACE) return null;
      i++;
      break;
    }
  }
  if (ws(b, i, n) !== n) return null;
  if ((seen & K_LABELS) !== 0 && shape !== 'none' && labelCount !== rows) return null;
  return { shape, rows, model, id, label, labelCount, fast: true };
}

/** `"key":` at i: the index of its value; the key (a K_ bit, 0 for a key the engine ignores) goes to keyOut. */
function scanKey(b: Uint8Array, i: number, n: number): number {
  if (i >= n || b[i] !== QUOTE) return -1;
  const ks = i + 1;
  i = stringEnd(b, ks, n);
  if (i < 0) return -1;
  keyOut = keyOf(b, ks, i - 1 - ks);
  i = ws(b, i, n);
  if (i >= n || b[i] !== COLON) return -1;
  return ws(b, i + 1, n);
}

/** The "model" value at i: the index after it; the name (interned) goes to strOut. */
function scanModel(b: Uint8Array, i: number, n: number): number {
  const e = shortStringEnd(b, i, n);
  strOut = e < 0 ? undefined : internModel(b, i + 1, e - 1);
  return e;
}

/** The "id" value at i: the index after it; the id goes to strOut. */
function scanId(b: Uint8Array, i: number, n: number): number {
  const e = shortStringEnd(b, i, n);
  if (e === i + 2) return -1; // "": the reference words the error
  strOut = e < 0 ? undefined : latin1(b, i + 1, e - 1);
  return e;
}

/** A plain-ASCII string of at most MAX_ID_LENGTH characters at i: the index after its closing quote. */
function shortStringEnd(b: Uint8Array, i: number, n: number): number {
  if (i >= n || b[i] !== QUOTE) return -1;
  const e = stringEnd(b, i + 1, n);
  return e < 0 || e - 2 - i > MAX_ID_LENGTH ? -1 : e;
}

// Arguments checkArgs refuses (or past int32) go to the reference, which throws INTERNAL for them.
function scannable(F: number, out: Float32Array, maxRows: number): boolean {
  return F >= 1 && maxRows >= 0 && (F | 0) === F && (maxRows | 0) === maxRows && out.length >= maxRows * F;
}

export function ws(b: Uint8Array, i: number, n: number): number {
  while (i < n) {
    const c = b[i];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

/** Index after the closing quote of a string whose body starts at i; -1 for escapes, control or non-ASCII bytes. */
export function stringEnd(b: Uint8Array, i: number, n: number): number {
  while (i < n) {
    const c = b[i++];
    if (c === QUOTE) return i;
    if (c === BACKSLASH || c < 0x20 || c > 0x7f) return -1;
  }
  return -1;
}

function keyOf(b: Uint8Array, s: number, len: number): number {
  switch (len) {
    case 2:
      return b[s] === 0x69 && b[s + 1] === 0x64 ? K_ID : 0;
    case 5:
      if (b[s] === 0x6d && b[s + 1] === 0x6f && b[s + 2] === 0x64 && b[s + 3] === 0x65 && b[s + 4] === 0x6c) return K_MODEL;
      return isLabel(b, s) ? K_LABEL : 0;
    case 6:
      return isLabel(b, s) && b[s + 5] === 0x73 ? K_LABELS : 0;
    case 8:
      return matches(b, s, FEATURES) ? K_FEATURES : 0;
    case 9:
      return matches(b, s, INSTANCES) ? K_INSTANCES : 0;
    default:
      return 0;
  }
}

const FEATURES = [0x66, 0x65, 0x61, 0x74, 0x75, 0x72, 0x65, 0x73];
const INSTANCES = [0x69, 0x6e, 0x73, 0x74, 0x61, 0x6e, 0x63, 0x65, 0x73];

function isLabel(b: Uint8Array, s: number): boolean {
  return b[s] === 0x6c && b[s + 1] === 0x61 && b[s + 2] === 0x62 && b[s + 3] === 0x65 && b[s + 4] === 0x6c;
}

function matches(b: Uint8Array, s: number, word: number[]): boolean {
  for (let k = 0; k < word.length; k++) if (b[s + k] !== word[k]) return false;
  return true;
}

/**
 * One row of exactly F numbers at out[base ..]. Whitespace is rare between the values of a row:
 * ws() is only called when the byte after a token could be whitespace (<= 0x20).
 */
function scanRow(b: Uint8Array, i: number, n: number, out: Float32Array, base: number, F: number): number {
  if (i >= n || b[i] !== LBRACKET) return -1;
  i = ws(b, i + 1, n);
  const end = base + F;
  let k = base;
  for (;;) {
    let e = scanPlainNumber(b, i, n);
    if (e < 0) e = scanNumber(b, i, n);
    if (e < 0) return -1;
    i = e;
    const f = Math.fround(numOut[0]!);
    if (f - f !== 0) return -1; // ±Infinity as float32: the reference words the error
    out[k++] = f;
    let c = i < n ? b[i]! : 0;
    if (c <= 0x20) {
      i = ws(b, i, n);
      c = i < n ? b[i]! : 0;
    }
    if (c === COMMA) {
      if (k === end) return -1;
      i++;
      if (i < n && b[i]! <= 0x20) i = ws(b, i, n);
    } else if (c === RBRACKET) {
      return k === end ? i + 1 : -1;
    } else {
      return -1;
    }
  }
}

/** A non-empty array of at most maxRows rows; the count goes to rowCount. */
function scanRows(b: Uint8Array, i: number, n: number, out: Float32Array, F: number, maxRows: number): number {
  if (i >= n || b[i] !== LBRACKET) return -1;
  i = ws(b, i + 1, n);
  let r = 0;
  for (;;) {
    if (r === maxRows) return -1;
    i = scanRow(b, i, n, out, r * F, F);
    if (i < 0) return -1;
    r++;
    i = ws(b, i, n);
    if (i >= n) return -1;
    const c = b[i];
    if (c === COMMA) {
      i = ws(b, i + 1, n);
    } else if (c === RBRACKET) {
      rowCount = r;
      return i + 1;
    } else {
      return -1;
    }
  }
}

/** An array of 0/1 into labelsOut; the count goes to rowCount. */
function scanLabels(b: Uint8Array, i: number, n: number, labelsOut: Uint8Array): number {
  if (i >= n || b[i] !== LBRACKET) return -1;
  i = ws(b, i + 1, n);
  let k = 0;
  if (i < n && b[i] === RBRACKET) {
    rowCount = 0;
    return i + 1;
  }
  for (;;) {
    i = scanNumber(b, i, n);
    if (i < 0 || k === labelsOut.length) return -1;
    const v = numOut[0];
    if (v === 0) labelsOut[k++] = 0;
    else if (v === 1) labelsOut[k++] = 1;
    else return -1;
    i = ws(b, i, n);
    if (i >= n) return -1;
    const c = b[i];
    if (c === COMMA) {
      i = ws(b, i + 1, n);
    } else if (c === RBRACKET) {
      rowCount = k;
      return i + 1;
    } else {
      return -1;
    }
  }
}

/**
 * The common feature literal, `-?digits(.digits)?` without an exponent, whose digits form an
 * integer m < 2^53 with at most 22 of them after the point: into numOut[0] as m / 10^k, one
 * correctly rounded IEEE division of two exact doubles (Clinger's fast path). -1 for anything
 * else, and the caller asks scanNumber. Kept this small so that V8 inlines it into scanRow:
 * scanNumber, with its exponent and parseFloat paths, is past the inlining budget, and the call
 * per number was a third of a 64-row scan (measured: 11 against 16 ns a number).
 */
function scanPlainNumber(b: Uint8Array, i: number, n: number): number {
  let c = i < n ? b[i]! : 0;
  const neg = c === MINUS;
  if (neg) c = ++i < n ? b[i]! : 0;
  let m = c - D0;
  if ((m >>> 0) > 9) return -1;
  i++;
  if (m !== 0) {
    while (i < n) {
      const d = b[i]! - D0;
      if ((d >>> 0) > 9) break;
      m = m * 10 + d;
      i++;
    }
  }
  let k = 0;
  c = i < n ? b[i]! : 0;
  if (c === DOT) {
    const f0 = ++i;
    while (i < n) {
      const d = b[i]! - D0;
      if ((d >>> 0) > 9) break;
      m = m * 10 + d;
      i++;
    }
    k = i - f0;
    if (k === 0) return -1;
    c = i < n ? b[i]! : 0;
  }
  if ((c | 0x20) === 0x65 || m >= TWO_53 || k > 22) return -1;
  const v = m / POW10[k]!;
  numOut[0] = neg ? -v : v;
  return i;
}

/**
 * A JSON number into `numOut[0]`, correctly rounded to a double as JSON.parse does. Fast path
 * (Clinger): every digit, leading zeros included, goes into one accumulator m; if m ends below
 * 2^53 every step was exact, so m is the decimal significand exactly, and with a decimal
 * exponent |e| <= 22 (10^e exact as well) one IEEE multiply or divide is the correctly rounded
 * result. Anything else is handed to parseFloat (same correctly rounding V8 conversion as
 * JSON.parse) on the literal's bytes. The caller checks what follows the literal, so `01`,
 * `1.5x` and the like are rejected there.
 *
 * `(d >>> 0) > 9` is one unsigned compare for "not a digit" (d < 0 wraps to a large number).
 */
export function scanNumber(b: Uint8Array, i: number, n: number): number {
  const start = i;
  let c = i < n ? b[i]! : 0;
  const neg = c === MINUS;
  if (neg) c = ++i < n ? b[i]! : 0;
  let m = c - D0;
  if ((m >>> 0) > 9) return -1;
  i++;
  if (m !== 0) {
    while (i < n) {
      const d = b[i]! - D0;
      if ((d >>> 0) > 9) break;
      m = m * 10 + d;
      i++;
    }
  }
  let exp = 0;
  c = i < n ? b[i]! : 0;
  if (c === DOT) {
    const f0 = ++i;
    while (i < n) {
      const d = b[i]! - D0;
      if ((d >>> 0) > 9) break;
      m = m * 10 + d;
      i++;
    }
    if (i === f0) return -1;
    exp = f0 - i;
    c = i < n ? b[i]! : 0;
  }
  if ((c | 0x20) === 0x65) {
    i = scanExponent(b, i + 1, n);
    if (i < 0) return -1;
    exp += expOut;
  }
  if (m < TWO_53 && exp >= -22 && exp <= 22) {
    const v = exp < 0 ? m / POW10[-exp]! : m * POW10[exp]!;
    numOut[0] = neg ? -v : v;
  } else if (m === 0) {
    numOut[0] = neg ? -0 : 0;
  } else {
    if (i - start > MAX_NUMBER_CHARS) return -1;
    numOut[0] = parseFloat(latin1(b, start, i));
  }
  return i;
}

let expOut = 0;

/** The digits of an exponent after `e`, with its sign, into expOut; the index after them. */
function scanExponent(b: Uint8Array, i: number, n: number): number {
  let expNeg = false;
  if (i < n && (b[i] === PLUS || b[i] === MINUS)) {
    expNeg = b[i] === MINUS;
    i++;
  }
  const e0 = i;
  let e = 0;
  while (i < n) {
    const d = b[i]! - D0;
    if ((d >>> 0) > 9) break;
    if (e < 1e6) e = e * 10 + d; // beyond this only "0" or "overflow" matter: parseFloat decides
    i++;
  }
  if (i === e0) return -1;
  expOut = expNeg ? -e : e;
  return i;
}

/** Skips any JSON value, checking its syntax; strings must be plain printable ASCII. */
export function skipValue(b: Uint8Array, i: number, n: number, depth: number): number {
  if (i >= n) return -1;
  const c = b[i];
  if (c === QUOTE) return stringEnd(b, i + 1, n);
  if (c === LBRACKET || c === LBRACE) {
    if (depth >= MAX_SKIP_DEPTH) return -1;
    const close = c === LBRACKET ? RBRACKET : RBRACE;
    i = ws(b, i + 1, n);
    if (i < n && b[i] === close) return i + 1;
    for (;;) {
      if (close === RBRACE) {
        if (i >= n || b[i] !== QUOTE) return -1;
        i = stringEnd(b, i + 1, n);
        if (i < 0) return -1;
        i = ws(b, i, n);
        if (i >= n || b[i] !== COLON) return -1;
        i = ws(b, i + 1, n);
      }
      i = skipValue(b, i, n, depth + 1);
      if (i < 0) return -1;
      i = ws(b, i, n);
      if (i >= n) return -1;
      const d = b[i];
      if (d === COMMA) i = ws(b, i + 1, n);
      else if (d === close) return i + 1;
      else return -1;
    }
  }
  if (c === 0x74) return word(b, i, n, TRUE);
  if (c === 0x66) return word(b, i, n, FALSE);
  if (c === 0x6e) return word(b, i, n, NULL);
  return scanNumber(b, i, n);
}

const TRUE = [0x74, 0x72, 0x75, 0x65];
const FALSE = [0x66, 0x61, 0x6c, 0x73, 0x65];
const NULL = [0x6e, 0x75, 0x6c, 0x6c];

function word(b: Uint8Array, i: number, n: number, w: number[]): number {
  return i + w.length <= n && matches(b, i, w) ? i + w.length : -1;
}

function latin1(b: Uint8Array, s: number, e: number): string {
  return String.fromCharCode.apply(null, b.subarray(s, e) as unknown as number[]);
}

// Clients send a handful of model names: reuse their strings instead of allocating per request.
const modelNames: string[] = [];
const MAX_MODEL_NAMES = 8;

function internModel(b: Uint8Array, s: number, e: number): string {
  const len = e - s;
  for (let k = 0; k < modelNames.length; k++) {
    const name = modelNames[k];
    if (name.length !== len) continue;
    let j = 0;
    while (j < len && name.charCodeAt(j) === b[s + j]) j++;
    if (j === len) return name;
  }
  const name = latin1(b, s, e);
  if (modelNames.length < MAX_MODEL_NAMES) modelNames.push(name);
  return name;
}
