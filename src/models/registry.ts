/**
 * The models the engine serves, by name. A request names a model (default `ensemble`, or `sgd`
 * on a cold start); the batcher and the workers know it by its index.
 */
import { tfError } from '../errors';
import type { LoadedModel, ModelDescriptor } from './model-loader';

/** The online model as the registry sees it: weights live elsewhere, versions move. */
export interface OnlineModelInfo {
  features: number;
  weights: SharedArrayBuffer;
  /** Current version string (`u<updates>`). */
  version(): string;
  describe(): Record<string, unknown>;
}

/** An online model as workers know it: `weights` is the SGD weights' buffer, or the arf forest's. */
export interface SgdDescriptor {
  kind: 'sgd' | 'arf';
  name: string;
  features: number;
  weights: SharedArrayBuffer;
}

/** An ONNX model version as workers know it: `id` names it in tasks. */
export type OnnxWorkerModel = ModelDescriptor & { id: number };

export type WorkerModel = OnnxWorkerModel | SgdDescriptor;

export interface ServedModel {
  index: number;
  name: string;
  kind: 'onnx' | 'sgd' | 'arf';
  /** Fixed for an ONNX model; for the online model, the version when the registry was asked. */
  readonly version: string;
  features: number;
  classLabels: [string, string];
  onnx: LoadedModel | null;
  online: OnlineModelInfo | null;
}

export const DEFAULT_MODEL = 'ensemble';
export const ONLINE_MODEL = 'sgd';
const CLASS_LABELS: [string, string] = ['DOWN', 'UP'];

export class ModelRegistry {
  private readonly byNameMap = new Map<string, ServedModel>();
  readonly list: ServedModel[] = [];
  /** Every ONNX version workers may be asked to run, by id. */
  private readonly versions = new Map<number, LoadedModel>();
  /** Per served model index: the id of its serving version (-1 for the online model). */
  private readonly current: number[] = [];
  private nextId = 1;

  add(model: LoadedModel): ServedModel {
    const id = this.register(model);
    const registry = this;
    const index = this.list.length;
    this.current[index] = id;
    return this.push({
      index,
      name: model.name,
      kind: 'onnx',
      get version() {
        return registry.serving(index).version;
      },
      features: model.contract.features,
      get classLabels() {
        return registry.serving(index).contract.classLabels;
      },
      get onnx() {
        return registry.serving(index);
      },
      online: null,
    });
  }

  /** Makes a version known (workers may fetch it) without serving it yet; answers its id. */
  register(model: LoadedModel): number {
    const id = this.nextId++;
    this.versions.set(id, model);
    return id;
  }

  forget(id: number): void {
    if (this.current.includes(id)) throw tfError('INTERNAL', `model version id ${id} is serving and cannot be forgotten`);
    this.versions.delete(id);
  }

  /** The flip of a swap: from the next batch on, `name` runs version `id`. */
  setServing(name: string, id: number): void {
    const m = this.get(name);
    if (m.kind !== 'onnx') throw tfError('UNSUPPORTED_OPERATION', `model ${name} is learned online; it has no versions to serve`);
    if (!this.versions.has(id)) throw tfError('INTERNAL', `model version id ${id} is not registered; it cannot serve as ${name}`);
    this.current[m.index] = id;
  }

  serving(index: number): LoadedModel {
    return this.versions.get(this.current[index]!)!;
  }

  servingId(index: number): number {
    return this.current[index] ?? -1;
  }

  /** The version string of a version id (what answers name). */
  versionName(id: number): string {
    return this.versions.get(id)?.version ?? 'unknown';
  }

  describeVersion(id: number): OnnxWorkerModel | null {
    const m = this.versions.get(id);
    if (!m) return null;
    const { name, version, kind, bytes, contract, source } = m;
    return { id, name, version, kind, bytes, contract, source };
  }

  /** An online model: `sgd`, or the adaptive random forest (`arf`). */
  addOnline(info: OnlineModelInfo, kind: 'sgd' | 'arf' = 'sgd'): ServedModel {
    this.current[this.list.length] = -1;
    const served: ServedModel = {
      index: this.list.length,
      name: kind === 'sgd' ? ONLINE_MODEL : kind,
      kind,
      get version() {
        return info.version();
      },
      features: info.features,
      classLabels: CLASS_LABELS,
      onnx: null,
      online: info,
    };
    return this.push(served);
  }

  private push(m: ServedModel): ServedModel {
    if (this.list.length > 0 && m.features !== this.features) {
      throw tfError('MODEL_LOAD_FAILED', `model ${m.name} takes ${m.features} features but the engine serves ${this.features}`);
    }
    this.list.push(m);
    this.byNameMap.set(m.name, m);
    return m;
  }

  get(name: string): ServedModel {
    const m = this.byNameMap.get(name);
    if (!m) {
      const known = this.list.map((x) => x.name).join(', ') || 'none';
      throw tfError('UNKNOWN_MODEL', `unknown model "${name}"; served models: ${known}`);
    }
    return m;
  }

  has(name: string): boolean {
    return this.byNameMap.has(name);
  }

  /** The model answering requests that name none: the ensemble, else the online model. */
  get defaultModel(): ServedModel {
    return this.byNameMap.get(DEFAULT_MODEL) ?? this.list[0]!;
  }

  /** Feature count shared by every served model (checked when models are added). */
  get features(): number {
    return this.list[0]?.features ?? 0;
  }

  /**
   * What each worker builds a scorer from, by index: the serving versions, or for a swap's
   * candidate workers, the versions `instead` names in place of some (served index → version id).
   */
  workerModels(instead: ReadonlyMap<number, number> = new Map()): WorkerModel[] {
    return this.list.map((m) => {
      if (m.kind === 'onnx') return this.describeVersion(instead.get(m.index) ?? this.current[m.index]!)!;
      return { kind: m.kind, name: m.name, features: m.features, weights: m.online!.weights };
    });
  }

  /** Version ids known but not serving: their worker sessions may go once no batch uses them. */
  idleVersions(): number[] {
    return [...this.versions.keys()].filter((id) => !this.current.includes(id));
  }

  describe(m: ServedModel): Record<string, unknown> {
    if (m.online) {
      return { name: m.name, version: m.version, kind: m.kind, features: m.features, classes: m.classLabels, ...m.online.describe() };
    }
    const model = m.onnx!;
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
