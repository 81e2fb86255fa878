/**
 * Snapshot helpers. Detector state holds ±Infinity (River starts some minima and cut points
 * there) and JSON cannot, so such numbers travel as the strings "Infinity" / "-Infinity".
 * Restoring checks every field: a checkpoint from another version or a hand-edited file must
 * fail with a message naming the field, never leave a detector half-restored.
 */
import { tfError } from '../errors';
import type { DetectorSnapshot, DetectorType, ParamValue } from './detector';

export type JsonNumber = number | 'Infinity' | '-Infinity';

export function encodeNumber(x: number): JsonNumber {
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  return x;
}

function fail(what: string, why: string): never {
  throw tfError('CHECKPOINT_CORRUPT', `drift snapshot: ${what} ${why}`);
}

/** Reads a snapshot's `state` object after checking its type and parameters. */
export function openSnapshot(
  s: unknown,
  type: DetectorType,
  params: Record<string, ParamValue>,
): Record<string, unknown> {
  if (typeof s !== 'object' || s === null) fail(type, 'is not an object');
  const snap = s as Partial<DetectorSnapshot>;
  if (snap.type !== type) fail(type, `is for detector "${String(snap.type)}"`);
  if (snap.version !== 1) fail(type, `has unsupported version ${String(snap.version)}`);
  const p = snap.params;
  if (typeof p !== 'object' || p === null) fail(`${type}.params`, 'is missing');
  const keys = new Set([...Object.keys(params), ...Object.keys(p)]);
  for (const k of keys) {
    if (p[k] !== params[k]) {
      fail(`${type}.params.${k}`, `is ${JSON.stringify(p[k])}, this detector has ${JSON.stringify(params[k])}`);
    }
  }
  if (typeof snap.state !== 'object' || snap.state === null) fail(`${type}.state`, 'is missing');
  return snap.state as Record<string, unknown>;
}

/** Typed field readers over one snapshot's state, naming the field on error. */
export class StateReader {
  constructor(
    private readonly o: Record<string, unknown>,
    private readonly prefix: string,
  ) {}

  num(key: string): number {
    const v = this.o[key];
    if (v === 'Infinity') return Infinity;
    if (v === '-Infinity') return -Infinity;
    if (typeof v !== 'number' || Number.isNaN(v)) fail(`${this.prefix}.${key}`, 'is not a number');
    return v;
  }

  int(key: string, min = 0): number {
    const v = this.num(key);
    if (!Number.isSafeInteger(v) || v < min) fail(`${this.prefix}.${key}`, `is not a whole number >= ${min}`);
    return v;
  }

  bool(key: string): boolean {
    const v = this.o[key];
    if (typeof v !== 'boolean') fail(`${this.prefix}.${key}`, 'is not a boolean');
    return v;
  }

  numArray(key: string, maxLength = Infinity): number[] {
    const v = this.o[key];
    if (!Array.isArray(v) || v.length > maxLength) fail(`${this.prefix}.${key}`, 'is not a list of numbers of the right length');
    return v.map((x, i) => {
      if (typeof x !== 'number' || !Number.isFinite(x)) fail(`${this.prefix}.${key}[${i}]`, 'is not a finite number');
      return x;
    });
  }

  obj(key: string): StateReader {
    const v = this.o[key];
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`${this.prefix}.${key}`, 'is not an object');
    return new StateReader(v as Record<string, unknown>, `${this.prefix}.${key}`);
  }

  raw(key: string): unknown {
    return this.o[key];
  }

  /** For checks that span fields. */
  invalid(key: string, why: string): never {
    fail(`${this.prefix}.${key}`, why);
  }
}
