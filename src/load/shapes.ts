/**
 * What one request of the load looks like: its path, headers and body, built from rows of
 * features. Each shape is a small module (shape-predict.ts holds the two /predict shapes) and
 * this table is the only place that lists them, so the Open Inference Protocol's JSON and binary
 * infer (POST /v2/models/{name}/infer), once the engine serves it, is one module and one line here.
 */
import { tfError } from '../errors';
import type { RequestShape } from './request-shape';
import { PREDICT_BINARY, PREDICT_JSON } from './shape-predict';

export type { RequestShape, ShapeTarget } from './request-shape';

export const SHAPES: readonly RequestShape[] = [PREDICT_JSON, PREDICT_BINARY];

/** Shapes the engine does not serve yet, named so that --help and the refusal say so. */
export const PLANNED_SHAPES: Readonly<Record<string, string>> = {
  'oip-json': "the Open Inference Protocol's JSON infer (POST /v2/models/{name}/infer): not served by this engine yet",
  'oip-binary': "the Open Inference Protocol's infer with Triton's binary tensor extension: not served by this engine yet",
};

export function shapeByName(name: string): RequestShape {
  const shape = SHAPES.find((s) => s.name === name);
  if (shape) return shape;
  const planned = PLANNED_SHAPES[name];
  const known = SHAPES.map((s) => s.name).join(', ');
  throw tfError('CONFIG_INVALID', planned ? `--shape ${name}: ${planned} (shapes now: ${known})` : `--shape must be one of ${known}, got "${name}"`);
}
