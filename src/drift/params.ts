/**
 * Detector parameters: one declaration per detector gives names, River's defaults, the values
 * we accept and the help text, so constructors, the registry (strings from a CLI or the
 * environment) and the README never disagree.
 */
import { tfError } from '../errors';
import type { ParamValue } from './detector';

interface Base {
  doc: string;
}
export interface IntSpec extends Base {
  kind: 'int';
  /** null: optional, absent unless given (KSWIN's `seed`). */
  default: number | null;
  min: number;
  max?: number;
}
export interface FloatSpec extends Base {
  kind: 'float';
  default: number;
  min?: number;
  max?: number;
  /** Bounds that a value may not equal (e.g. confidences in (0, 1)). */
  minExclusive?: boolean;
  maxExclusive?: boolean;
}
export interface BoolSpec extends Base {
  kind: 'bool';
  default: boolean;
}
export interface EnumSpec extends Base {
  kind: 'enum';
  default: string;
  values: readonly string[];
}
export type ParamSpec = IntSpec | FloatSpec | BoolSpec | EnumSpec;

export interface DetectorSpec<P> {
  params: { readonly [K in keyof P]: ParamSpec };
  /** Checks across parameters, after each one passed its own; returns the complaint. */
  check?: (p: P) => string | undefined;
}

type Input = { readonly [name: string]: ParamValue | null | undefined };

function bad(detector: string, msg: string): never {
  throw tfError('CONFIG_INVALID', `drift detector ${detector}: ${msg}`);
}

const INT_RE = /^[+-]?\d+$/;
const FLOAT_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function describe(spec: ParamSpec): string {
  switch (spec.kind) {
    case 'int':
      return spec.max === undefined ? `a whole number >= ${spec.min}` : `a whole number from ${spec.min} to ${spec.max}`;
    case 'float': {
      const lo = spec.min === undefined ? '' : `${spec.minExclusive ? '>' : '>='} ${spec.min}`;
      const hi = spec.max === undefined ? '' : `${spec.maxExclusive ? '<' : '<='} ${spec.max}`;
      return `a number${lo || hi ? ' ' : ''}${[lo, hi].filter(Boolean).join(' and ')}`;
    }
    case 'bool':
      return 'true or false';
    case 'enum':
      return `one of ${spec.values.map((v) => `"${v}"`).join(', ')}`;
  }
}

/** Converts one value (a string from a command line, or already typed) and checks its range. */
function coerce(detector: string, name: string, spec: ParamSpec, raw: ParamValue): ParamValue {
  const wrong = (): never => bad(detector, `parameter ${name} must be ${describe(spec)}, got ${JSON.stringify(raw)}`);
  switch (spec.kind) {
    case 'int': {
      const v = typeof raw === 'string' ? (INT_RE.test(raw.trim()) ? Number(raw.trim()) : NaN) : raw;
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < spec.min || (spec.max !== undefined && v > spec.max)) wrong();
      return v;
    }
    case 'float': {
      const v = typeof raw === 'string' ? (FLOAT_RE.test(raw.trim()) ? Number(raw.trim()) : NaN) : raw;
      if (typeof v !== 'number' || !Number.isFinite(v)) return wrong();
      if (spec.min !== undefined && (spec.minExclusive ? v <= spec.min : v < spec.min)) wrong();
      if (spec.max !== undefined && (spec.maxExclusive ? v >= spec.max : v > spec.max)) wrong();
      return v;
    }
    case 'bool': {
      if (typeof raw === 'boolean') return raw;
      const s = typeof raw === 'string' ? raw.trim().toLowerCase() : '';
      if (s === 'true' || s === '1') return true;
      if (s === 'false' || s === '0') return false;
      return wrong();
    }
    case 'enum':
      if (typeof raw !== 'string' || !spec.values.includes(raw)) wrong();
      return raw;
  }
}

/**
 * Fills River's defaults and validates. Unknown names, wrong types, out-of-range values and
 * failed cross-checks throw CONFIG_INVALID naming the detector and the parameter.
 */
export function resolveParams<P>(detector: string, spec: DetectorSpec<P>, given: Input = {}): P {
  const names = Object.keys(spec.params);
  for (const k of Object.keys(given)) {
    if (!names.includes(k)) bad(detector, `unknown parameter "${k}" (known: ${names.join(', ')})`);
  }
  const out: Record<string, ParamValue | null> = {};
  for (const name of names) {
    const s = (spec.params as Record<string, ParamSpec>)[name];
    const raw = given[name];
    out[name] = raw === undefined || raw === null ? s.default : coerce(detector, name, s, raw);
  }
  const complaint = spec.check?.(out as P);
  if (complaint) bad(detector, complaint);
  return out as P;
}

/** Parameters as reported in status and snapshots: optional ones left out when unset. */
export function publicParams<P>(p: P): Record<string, ParamValue> {
  const out: Record<string, ParamValue> = {};
  for (const [k, v] of Object.entries(p as Record<string, ParamValue | null>)) if (v !== null) out[k] = v;
  return out;
}
