/**
 * Model admin: GET /models/{name} (versions, which one serves, their cards), POST
 * /models/{name}/load (ONNX bytes as application/octet-stream, or JSON {"path": "..."} for a
 * file on the server, under MODEL_DIR) and POST /models/{name}/rollback. Loading and rollback
 * are admin-only.
 */
import { tfError } from '../errors';
import { readModelFileWithin } from '../models/model-files';
import type { ModelRegistry } from '../models/registry';
import type { VersionStore } from '../models/version-store';
import type { ModelChanges } from '../pool/model-swap';
import type { AdminCheck } from './auth';
import { CONTROL_BODY_LIMIT, checkDeclaredLength, mediaTypeOf, parseContentLength, readBody, readControlBody, sharedBuffer } from './body';
import { BINARY_TYPE, JSON_TYPE } from './respond';
import type { HttpServer } from './server';

export interface ModelRoutesDeps {
  models: ModelRegistry;
  store: VersionStore;
  /** The local swapper, or the replicas' model history. */
  swapper: ModelChanges;
  admin: AdminCheck;
  maxUploadBytes: number;
  /** The only directory models may be loaded from by path (MODEL_DIR). */
  modelDir: string;
}

export function registerModelRoutes(server: HttpServer, deps: ModelRoutesDeps): void {
  const r = server.responder;
  const { models, store, swapper, admin } = deps;
  server
    .route('GET', '/models/{name}', (x, _req, p) => {
      const m = models.get(p.name!);
      r.json(x, 200, { ...models.describe(m), versions: m.kind === 'onnx' ? store.list(m.name) : [] });
    })
    .route('POST', '/models/{name}/rollback', (x, req, p) => {
      admin(x.res, req);
      const name = p.name!;
      models.get(name);
      readControlBody(x, r, () => {
        swapper.rollback(name).then(
          (result) => r.corked(x, () => r.json(x, 200, result)),
          (err) => r.corked(x, () => r.error(x, err)),
        );
      });
    })
    .route('POST', '/models/{name}/load', (x, req, p) => {
      admin(x.res, req);
      const name = p.name!;
      models.get(name);
      const type = mediaTypeOf(req.getHeader('content-type'));
      const length = parseContentLength(req.getHeader('content-length'));
      if (type !== BINARY_TYPE && type !== JSON_TYPE) {
        throw tfError('UNSUPPORTED_MEDIA_TYPE', `send the ONNX file as ${BINARY_TYPE}, or ${JSON_TYPE} {"path": "..."} for a file under MODEL_DIR`);
      }
      const upload = type === BINARY_TYPE;
      const limit = upload ? deps.maxUploadBytes : CONTROL_BODY_LIMIT;
      checkDeclaredLength(length, limit);
      readBody(
        x.res,
        length,
        limit,
        (body) => {
          // An upload was gathered in shared memory (sharedBuffer), where the served version keeps it.
          const model = upload ? Promise.resolve({ bytes: body, source: 'upload' }) : modelFromPath(body, deps);
          model
            .then(({ bytes, source }) => swapper.load(name, bytes, source, { reason: 'load' }))
            .then(
              (result) => r.corked(x, () => r.json(x, 200, result)),
              (err) => r.corked(x, () => r.error(x, err)),
            );
        },
        (err) => r.corked(x, () => r.error(x, err, true)),
        upload ? sharedBuffer : undefined,
      );
    });
}

/** `{"path": "..."}`: the file, read only from under MODEL_DIR (src/models/model-files.ts). */
async function modelFromPath(body: Uint8Array, deps: ModelRoutesDeps): Promise<{ bytes: Uint8Array; source: string }> {
  let path: unknown;
  try {
    path = (JSON.parse(Buffer.from(body).toString('utf8')) as { path?: unknown } | null)?.path;
  } catch (err) {
    throw tfError('INVALID_JSON', `body is not JSON: ${(err as Error).message}`);
  }
  if (typeof path !== 'string' || path === '') throw tfError('INVALID_BODY', 'JSON body needs "path": the ONNX file on the server, under MODEL_DIR');
  return { bytes: await readModelFileWithin(deps.modelDir, path, deps.maxUploadBytes), source: path };
}
