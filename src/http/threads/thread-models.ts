/**
 * A front-end thread's copy of the facts about the served models that its routes need (name,
 * index, kind, features, classes). The versions that computed an answer come with each result
 * from the main thread, which alone knows which version serves.
 */
import { tfError } from '../../errors';
import { DEFAULT_MODEL, type ServedModel } from '../../models/registry';
import type { ModelCatalog } from '../rows';
import type { ThreadModel } from './protocol';

export function threadModels(models: ThreadModel[], features: number): ModelCatalog {
  const list: ServedModel[] = models.map((m) => ({ ...m, version: '', onnx: null, online: null }));
  const byName = new Map(list.map((m) => [m.name, m]));
  return {
    list,
    features,
    defaultModel: byName.get(DEFAULT_MODEL) ?? list[0]!,
    get(name: string): ServedModel {
      const m = byName.get(name);
      if (!m) throw tfError('UNKNOWN_MODEL', `unknown model "${name}"; served models: ${list.map((x) => x.name).join(', ') || 'none'}`);
      return m;
    },
  };
}
