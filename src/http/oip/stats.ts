/** The statistics extension: one model's entry of `model_stats`, in Triton's shape. */
import type { ServedModel } from '../../models/registry';
import type { InferStats } from '../../telemetry/infer-stats';

export function statsOf(m: ServedModel, stats: InferStats): Record<string, unknown> {
  return { name: m.name, version: m.version, ...stats.snapshot(m.index) };
}
