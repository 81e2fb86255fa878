/**
 * The protocol's tensor datatypes as this engine takes them: the model's input is FP32; FP64 and
 * the integer types are accepted and converted (each value must then be finite as float32).
 * BOOL, BYTES and FP16/BF16 are refused. Binary tensors are little-endian, row-major
 * (Triton's binary tensor data extension).
 */
import { tfError } from '../../errors';

export const INPUT_DATATYPE = 'FP32';

const SIZES: Readonly<Record<string, number>> = {
  FP32: 4,
  FP64: 8,
  INT8: 1,
  INT16: 2,
  INT32: 4,
  INT64: 8,
  UINT8: 1,
  UINT16: 2,
  UINT32: 4,
  UINT64: 8,
};

/** Every input datatype accepted, the native one first (model metadata says so). */
export const ACCEPTED_DATATYPES: readonly string[] = Object.keys(SIZES);

export function isIntegerType(t: string): boolean {
  return t !== 'FP32' && t !== 'FP64';
}

export function elementSize(datatype: string): number {
  return SIZES[datatype] ?? 0;
}

/** Throws unless `datatype` is one the input takes. */
export function checkDatatype(datatype: unknown, where: string): string {
  if (typeof datatype !== 'string' || SIZES[datatype] === undefined) {
    throw tfError('INVALID_TENSOR', `${where}.datatype ${JSON.stringify(datatype)} is not accepted; use one of ${ACCEPTED_DATATYPES.join(', ')} (FP32 is the model's own)`);
  }
  return datatype;
}

const INT_RANGES: Readonly<Record<string, [number, number]>> = {
  INT8: [-128, 127],
  INT16: [-32768, 32767],
  INT32: [-2147483648, 2147483647],
  INT64: [-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  UINT8: [0, 255],
  UINT16: [0, 65535],
  UINT32: [0, 4294967295],
  UINT64: [0, Number.MAX_SAFE_INTEGER],
};

/** Checks one JSON value of `datatype` and stores it as float32 at out[k]. */
export function putValue(v: unknown, datatype: string, out: Float32Array, k: number, F: number, where: string): void {
  if (typeof v !== 'number') {
    throw tfError('INVALID_FEATURE_VALUE', `${where}.data element ${k} (row ${Math.floor(k / F)}, column ${k % F}) is ${JSON.stringify(v) ?? String(v)}: ${datatype} values must be numbers`);
  }
  const range = INT_RANGES[datatype];
  if (range && (!Number.isInteger(v) || v < range[0] || v > range[1])) {
    throw tfError('INVALID_FEATURE_VALUE', `${where}.data element ${k} (row ${Math.floor(k / F)}, column ${k % F}) is ${v}: not a ${datatype} value`);
  }
  const f = Math.fround(v);
  if (f - f !== 0) {
    throw tfError('NON_FINITE_FEATURE', `${where}.data element ${k} (row ${Math.floor(k / F)}, column ${k % F}) is ${v}: values must be finite as float32`);
  }
  out[k] = f;
}

/**
 * A binary tensor of `count` values of `datatype` as float32 rows: read in place when it is
 * aligned FP32 (valid during the body callback only), else converted into `staging`.
 */
export function binaryTensor(bytes: Uint8Array, datatype: string, count: number, F: number, staging: Float32Array, where: string): Float32Array {
  if (datatype === 'FP32') {
    const src = bytes.byteOffset % 4 === 0 ? new Float32Array(bytes.buffer, bytes.byteOffset, count) : new Float32Array(bytes.slice().buffer, 0, count);
    for (let k = 0; k < count; k++) {
      const v = src[k]!;
      if (v - v !== 0) throw tfError('NON_FINITE_FEATURE', `${where} element ${k} (row ${Math.floor(k / F)}, column ${k % F}) is ${v}: values must be finite`);
    }
    return src;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let k = 0; k < count; k++) putValue(readLE(view, datatype, k), datatype, staging, k, F, where);
  return staging.subarray(0, count);
}

function readLE(v: DataView, t: string, k: number): number {
  switch (t) {
    case 'FP64': return v.getFloat64(8 * k, true);
    case 'INT8': return v.getInt8(k);
    case 'INT16': return v.getInt16(2 * k, true);
    case 'INT32': return v.getInt32(4 * k, true);
    case 'INT64': return Number(v.getBigInt64(8 * k, true));
    case 'UINT8': return v.getUint8(k);
    case 'UINT16': return v.getUint16(2 * k, true);
    case 'UINT32': return v.getUint32(4 * k, true);
    default: return Number(v.getBigUint64(8 * k, true));
  }
}
