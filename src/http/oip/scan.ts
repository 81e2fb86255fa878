/**
 * The hot path of a JSON infer body: the numbers of `inputs[0].data` (flat or nested) scanned
 * from the bytes straight into float32 rows, and the rest of the body (small) parsed by JSON.parse
 * with the data array cut out. It takes only what it fully understands: any escape or non-ASCII
 * byte, a repeated "inputs" or "data" key, a value that is not a plain number, a number not
 * finite as float32, a datatype other than FP32/FP64, more values than the rows take, deep
 * nesting: all go to the reference path (./request.ts) whole, so errors are the reference's by
 * construction and results equal by test (test/oip-scan.test.ts compares the two).
 */
import { skipValue, stringEnd, ws } from '../json-body';
import { scanFloat32 } from './decimal';
import { HeaderCache } from './header-cache';
import { checkCount, checkHeader, decodeInferReference, type InferHeader, type InputSpec } from './request';

const QUOTE = 0x22;
const COMMA = 0x2c;
const COLON = 0x3a;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const MAX_DATA_DEPTH = 8;

/** Where the scan found the data: [start, end) of the array, its value count. */
const found = { start: -1, end: -1, count: 0 };

const headers = new HeaderCache();

/** Decodes a JSON infer body into `out` (room for spec.maxRows * F floats). */
export function decodeInfer(body: Uint8Array, spec: InputSpec, out: Float32Array): InferHeader {
  const h = scanBody(body, spec, out);
  return h ?? decodeInferReference(body, spec, out);
}

function scanBody(b: Uint8Array, spec: InputSpec, out: Float32Array): InferHeader | null {
  found.start = -1;
  const n = b.length;
  let i = ws(b, 0, n);
  if (i >= n || b[i] !== LBRACE) return null;
  let sawInputs = false;
  i = ws(b, i + 1, n);
  if (i < n && b[i] === RBRACE) return null;
  for (;;) {
    if (i >= n || b[i] !== QUOTE) return null;
    const k = i + 1;
    i = stringEnd(b, k, n);
    if (i < 0) return null;
    const isInputs = i - k - 1 === 6 && isWord(b, k, 'inputs');
    i = ws(b, i, n);
    if (i >= n || b[i] !== COLON) return null;
    i = ws(b, i + 1, n);
    if (isInputs) {
      if (sawInputs) return null;
      sawInputs = true;
      i = scanInputs(b, i, n, out, spec.maxRows * spec.features);
    } else {
      i = skipValue(b, i, n, 1);
    }
    if (i < 0) return null;
    i = ws(b, i, n);
    if (i >= n) return null;
    if (b[i] === COMMA) i = ws(b, i + 1, n);
    else if (b[i] === RBRACE) break;
    else return null;
  }
  if (ws(b, i + 1, n) !== n || found.start < 0) return null;
  const kept = headers.get(spec, b, 0, found.start, found.end, n);
  if (kept !== null) {
    checkCount(found.count, kept, spec.features);
    return kept;
  }
  const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
  let doc: unknown;
  try {
    doc = JSON.parse(buf.toString('latin1', 0, found.start) + '[]' + buf.toString('latin1', found.end, n));
  } catch {
    return null;
  }
  const h = checkHeader(doc, spec);
  if (h.datatype !== 'FP32' && h.datatype !== 'FP64') return null;
  headers.set(spec, b, 0, found.start, found.end, n, h);
  checkCount(found.count, h, spec.features);
  return h;
}

function isWord(b: Uint8Array, s: number, w: string): boolean {
  for (let j = 0; j < w.length; j++) if (b[s + j] !== w.charCodeAt(j)) return false;
  return true;
}

/** The "inputs" array: its first element is scanned for "data", the others skipped. */
function scanInputs(b: Uint8Array, i: number, n: number, out: Float32Array, limit: number): number {
  if (i >= n || b[i] !== LBRACKET) return -1;
  i = ws(b, i + 1, n);
  if (i >= n || b[i] === RBRACKET) return -1;
  i = scanInput(b, i, n, out, limit);
  for (;;) {
    if (i < 0) return -1;
    i = ws(b, i, n);
    if (i >= n) return -1;
    if (b[i] === RBRACKET) return i + 1;
    if (b[i] !== COMMA) return -1;
    i = skipValue(b, ws(b, i + 1, n), n, 2);
  }
}

function scanInput(b: Uint8Array, i: number, n: number, out: Float32Array, limit: number): number {
  if (i >= n || b[i] !== LBRACE) return -1;
  i = ws(b, i + 1, n);
  if (i < n && b[i] === RBRACE) return -1;
  for (;;) {
    if (i >= n || b[i] !== QUOTE) return -1;
    const k = i + 1;
    i = stringEnd(b, k, n);
    if (i < 0) return -1;
    const isData = i - k - 1 === 4 && isWord(b, k, 'data');
    i = ws(b, i, n);
    if (i >= n || b[i] !== COLON) return -1;
    i = ws(b, i + 1, n);
    if (isData) {
      if (found.start >= 0 || i >= n || b[i] !== LBRACKET) return -1;
      found.start = i;
      found.count = 0;
      i = scanData(b, i, n, out, limit, 0);
      found.end = i;
    } else {
      i = skipValue(b, i, n, 2);
    }
    if (i < 0) return -1;
    i = ws(b, i, n);
    if (i >= n) return -1;
    if (b[i] === COMMA) i = ws(b, i + 1, n);
    else if (b[i] === RBRACE) return i + 1;
    else return -1;
  }
}

/** A (nested) array of numbers at i, appended to out; the index after it, or -1. */
function scanData(b: Uint8Array, i: number, n: number, out: Float32Array, limit: number, depth: number): number {
  if (depth > MAX_DATA_DEPTH) return -1;
  i = ws(b, i + 1, n);
  if (i < n && b[i] === RBRACKET) return i + 1;
  for (;;) {
    if (i >= n) return -1;
    if (b[i] === LBRACKET) {
      i = scanData(b, i, n, out, limit, depth + 1);
    } else {
      if (found.count >= limit) return -1;
      i = scanFloat32(b, i, n, out, found.count++);
    }
    if (i < 0) return -1;
    i = ws(b, i, n);
    if (i >= n) return -1;
    const c = b[i];
    if (c === COMMA) i = ws(b, i + 1, n);
    else if (c === RBRACKET) return i + 1;
    else return -1;
  }
}
