/**
 * What one request of the load looks like: its path, headers and body, built from rows of
 * features. Each protocol is a small module (shape-predict.ts: the engine's /predict, JSON and
 * binary; shape-oip.ts: the Open Inference Protocol's infer, JSON and binary) and this table is
 * the only place that lists them.
 */
import { tfError } from '../errors';
import type { RequestShape } from './request-shape';
import { OIP_BINARY, OIP_JSON } from './shape-oip';
import { PREDICT_BINARY, PREDICT_JSON } from './shape-predict';

export type { RequestShape, ShapeTarget } from './request-shape';

export const SHAPES: readonly RequestShape[] = [PREDICT_JSON, PREDICT_BINARY, OIP_JSON, OIP_BINARY];

export function shapeByName(name: string): RequestShape {
  const shape = SHAPES.find((s) => s.name === name);
  if (shape) return shape;
  throw tfError('CONFIG_INVALID', `--shape must be one of ${SHAPES.map((s) => s.name).join(', ')}, got "${name}"`);
}
