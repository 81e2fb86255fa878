/**
 * The models the engine serves, by name. A request names a model (default `ensemble`); the
 * batcher and the workers know it by its index.
 */
import { TradeflowError } from '../errors';
import type { LoadedModel } from './model-loader';

export interface ServedModel {
  index: number;
  name: string;
  version: string;
  features: number;
  classLabels: [string, string];
  model: LoadedModel;
}

export const DEFAULT_MODEL = 'ensemble';

export class ModelRegistry {
  private readonly byNameMap = new Map<string, ServedModel>();
  readonly list: ServedModel[] = [];

  add(model: LoadedModel): ServedModel {
    const served: ServedModel = {
      index: this.list.length,
      name: model.name,
      version: model.version,
      features: model.contract.features,
      classLabels: model.contract.classLabels,
      model,
    };
    this.list.push(served);
    this.byNameMap.set(served.name, served);
    return served;
  }

  get(name: string): ServedModel {
    const m = this.byNameMap.get(name);
    if (!m) {
      const known = this.list.map((x) => x.name).join(', ') || 'none';
      throw new TradeflowError('UNKNOWN_MODEL', `unknown model "${name}"; served models: ${known}`);
    }
    return m;
  }

  has(name: string): boolean {
    return this.byNameMap.has(name);
  }

  /** Feature count shared by every served model (checked when models are added). */
  get features(): number {
    return this.list[0]?.features ?? 0;
  }

  describe(m: ServedModel): Record<string, unknown> {
    const { model } = m;
    return {
      name: m.name,
      version: m.version,
      kind: model.kind,
      features: m.features,
      input: model.contract.inputName,
      outputs: model.info.outputs.map((o) => o.name),
      probability_output: model.contract.probabilityOutput,
      classes: m.classLabels,
      source: model.source,
      sha256: model.sha256,
      size_bytes: model.sizeBytes,
      loaded_at: model.loadedAt,
      producer: model.info.producerName || null,
      opsets: model.info.opsets,
    };
  }
}
