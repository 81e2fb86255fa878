/**
 * The model_repository extension mapped onto our model admin (src/http/models.ts), admin-only
 * like it. `POST /v2/repository/index` lists the served models (`name`, `version`, `state`,
 * `reason`). `POST /v2/repository/models/{name}/load` with `parameters["file:<path>"]` (the ONNX
 * file, base64, as tritonclient's load_model sends it) loads it as a new version, validated and
 * swapped in as our load does; without a file the model is already loaded and stays so (200).
 * Unload is refused: both models are always served.
 */
import { tfError } from '../../errors';
import type { ModelRegistry } from '../../models/registry';
import type { ModelChanges } from '../../pool/model-swap';
import type { AdminCheck } from '../auth';
import { readBody, parseContentLength, checkDeclaredLength, sharedBuffer } from '../body';
import type { Exchange, Responder } from '../respond';
import type { HttpServer } from '../server';
import { corkedOipError, oipHandler } from './errors';
import { findModel } from './models';
import { parseJsonText } from './request';

export interface RepositoryDeps {
  models: ModelRegistry;
  /** The local swapper, or the replicas' model history. */
  swapper: ModelChanges;
  admin: AdminCheck;
  maxUploadBytes: number;
}

export function registerRepositoryRoutes(server: HttpServer, deps: RepositoryDeps): void {
  const r = server.responder;
  const { models } = deps;
  const body = (x: Exchange, contentLength: number, limit: number, then: (doc: Record<string, unknown>) => void): void => {
    checkDeclaredLength(contentLength, limit);
    readBody(x.res, contentLength, limit, (bytes) => {
      try {
        const doc = bytes.length === 0 ? {} : parseJsonText(bytes);
        if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw tfError('INVALID_BODY', 'request body must be a JSON object');
        then(doc as Record<string, unknown>);
      } catch (err) {
        corkedOipError(r, x, err);
      }
    }, (err) => corkedOipError(r, x, err, true), sharedBuffer);
  };
  server.route('POST', '/v2/repository/index', oipHandler(r, (x, req) => {
    body(x, parseContentLength(req.getHeader('content-length')), 65536, (doc) => {
      const list = models.list.map((m) => ({ name: m.name, version: m.version, state: 'READY', reason: '' }));
      r.corked(x, () => r.json(x, 200, doc.ready === false ? [] : list));
    });
  }));
  server.route('POST', '/v2/repository/models/{name}/load', oipHandler(r, (x, req, p) => {
    deps.admin(x.res, req);
    const m = findModel(models, p);
    // base64 of the largest upload our load takes, and the JSON around it.
    const limit = Math.ceil(deps.maxUploadBytes / 3) * 4 + 65536;
    body(x, parseContentLength(req.getHeader('content-length')), limit, (doc) => {
      const file = modelFile(doc);
      if (file === null) {
        r.corked(x, () => r.json(x, 200, { name: m.name, version: m.version, state: 'READY' }));
        return;
      }
      if (m.kind !== 'onnx') throw tfError('UNSUPPORTED_OPERATION', `model ${m.name} is learned online; it has no model file to load`);
      const bytes = new Uint8Array(new SharedArrayBuffer(file.length));
      bytes.set(file);
      deps.swapper.load(m.name, bytes, 'repository load', { reason: 'load' }).then(
        (result) => r.corked(x, () => r.json(x, 200, result)),
        (err) => corkedOipError(r, x, err),
      );
    });
  }));
  server.route('POST', '/v2/repository/models/{name}/unload', oipHandler(r, (x, req, p) => {
    deps.admin(x.res, req);
    const m = findModel(models, p);
    throw tfError('UNSUPPORTED_OPERATION', `model ${m.name} cannot be unloaded: the engine always serves ${models.list.map((s) => s.name).join(' and ')}; load another version instead`);
  }));
}

function modelFile(doc: Record<string, unknown>): Buffer | null {
  const params = doc.parameters;
  if (params === undefined) return null;
  if (typeof params !== 'object' || params === null) throw tfError('INVALID_BODY', '"parameters" must be an object');
  const files = Object.entries(params).filter(([k]) => k.startsWith('file:'));
  if (files.length === 0) return null;
  if (files.length > 1) throw tfError('INVALID_BODY', `"parameters" names ${files.length} files; send the one ONNX file`);
  const [key, value] = files[0]!;
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw tfError('INVALID_BODY', `"parameters.${key}" must be the file's bytes in base64`);
  return Buffer.from(value, 'base64');
}
