/**
 * The protocol's view of our models: `ensemble` (ONNX) and `sgd` (learned online), by name and
 * version. Only the serving version of an ONNX model is served: another version, even one kept
 * for rollback, answers 404 (it is made serving with the repository's load or our rollback).
 * `sgd`'s version is its update count `u<n>` and moves with every update, so any `u<n>` names it
 * and the answer names the version that computed.
 */
import { tfError } from '../../errors';
import type { ModelRegistry, ServedModel } from '../../models/registry';
import { OUTPUT_LABEL, OUTPUT_PROBABILITIES, type InputSpec } from './request';
import { ACCEPTED_DATATYPES, INPUT_DATATYPE } from './tensors';

export function findModel(models: ModelRegistry, params: Record<string, string>): ServedModel {
  const name = params.name!;
  const m = models.list.find((s) => s.name === name);
  if (!m) throw tfError('MODEL_NOT_FOUND', `model "${name}" is not served; the models are ${models.list.map((s) => s.name).join(', ')}`);
  const v = params.version;
  if (v === undefined) return m;
  if (m.kind !== 'onnx' ? !/^u\d+$/.test(v) : v !== m.version) {
    const want = m.kind !== 'onnx' ? 'u<updates>' : `"${m.version}"`;
    throw tfError('MODEL_NOT_FOUND', `model "${name}" has no version "${v}" being served; the serving version is ${want} (a kept version serves again after a load or rollback)`);
  }
  return m;
}

export function inputNameOf(m: ServedModel): string {
  return m.onnx ? m.onnx.contract.inputName : 'features';
}

export function inputSpec(m: ServedModel, maxRows: number): InputSpec {
  return { model: m.name, inputName: inputNameOf(m), features: m.features, maxRows };
}

export function platformOf(m: ServedModel): string {
  return m.kind === 'onnx' ? 'onnxruntime_onnx' : `tradeflow_${m.kind}`;
}

/** GET /v2/models/{name}[/versions/{version}]. */
export function modelMetadata(m: ServedModel): Record<string, unknown> {
  return {
    name: m.name,
    versions: [m.version],
    platform: platformOf(m),
    inputs: [{ name: inputNameOf(m), datatype: INPUT_DATATYPE, shape: [-1, m.features], parameters: { accepted_datatypes: ACCEPTED_DATATYPES.join(',') } }],
    outputs: [
      { name: OUTPUT_PROBABILITIES, datatype: 'FP32', shape: [-1, 2] },
      { name: OUTPUT_LABEL, datatype: 'INT64', shape: [-1] },
    ],
  };
}

export interface BatchingSettings {
  maxBatchRows: number;
  maxQueueDelayUs: number;
  workers: number;
}

/** GET /v2/models/{name}/config: Triton's model configuration, as JSON. */
export function modelConfig(m: ServedModel, b: BatchingSettings): Record<string, unknown> {
  return {
    name: m.name,
    platform: platformOf(m),
    backend: m.kind === 'onnx' ? 'onnxruntime' : 'tradeflow',
    version_policy: { latest: { num_versions: 1 } },
    max_batch_size: b.maxBatchRows,
    input: [{ name: inputNameOf(m), data_type: 'TYPE_FP32', format: 'FORMAT_NONE', dims: [m.features] }],
    output: [
      { name: OUTPUT_PROBABILITIES, data_type: 'TYPE_FP32', dims: [2], label_filename: '' },
      { name: OUTPUT_LABEL, data_type: 'TYPE_INT64', dims: [1], reshape: { shape: [] }, label_filename: '' },
    ],
    dynamic_batching: { preferred_batch_size: [b.maxBatchRows], max_queue_delay_microseconds: b.maxQueueDelayUs, preserve_ordering: false },
    instance_group: [{ name: m.name, kind: 'KIND_CPU', count: b.workers }],
  };
}
