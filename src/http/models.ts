/**
 * Model admin: GET /models/{name} (versions, which one serves, their cards), POST
 * /models/{name}/load (ONNX bytes as application/octet-stream, or JSON {"path": "..."} for a
 * file on the server) and POST /models/{name}/rollback. Loading and rollback are admin-only.
 */
import { readFile } from 'node:fs/promises';
import { tfError } from '../errors';
import type { ModelRegistry } from '../models/registry';
import type { VersionStore } from '../models/version-store';
import type { ModelSwapper } from '../pool/model-swap';
import type { AdminCheck } from './auth';
import { checkDeclaredLength, mediaTypeOf, parseContentLength, readBody, readControlBody, sharedBuffer } from './body';
import { BINARY_TYPE, JSON_TYPE } from './respond';
import type { HttpServer } from './server';

export interface ModelRoutesDeps {
  models: ModelRegistry;
  store: VersionStore;
  swapper: ModelSwapper;
  admin: AdminCheck;
  maxUploadBytes: number;
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
        throw tfError('UNSUPPORTED_MEDIA_TYPE', `send the ONNX file as ${BINARY_TYPE}, or ${JSON_TYPE} {"path": "..."} for a file on the server`);
      }
      checkDeclaredLength(length, deps.maxUploadBytes);
      readBody(
        x.res,
        length,
        deps.maxUploadBytes,
        (body) => {
          let bytes: Promise<{ bytes: Uint8Array; source: string }>;
          if (type === BINARY_TYPE) {
            // Gathered in shared memory (sharedBuffer), where the served version keeps it.
            bytes = Promise.resolve({ bytes: body, source: 'upload' });
          } else {
            let path: unknown;
            try {
              path = (JSON.parse(Buffer.from(body).toString('utf8')) as { path?: unknown }).path;
            } catch (err) {
              r.corked(x, () => r.error(x, tfError('INVALID_JSON', `body is not JSON: ${(err as Error).message}`)));
              return;
            }
            if (typeof path !== 'string' || path === '') {
              r.corked(x, () => r.error(x, tfError('INVALID_BODY', 'JSON body needs "path": the ONNX file on the server')));
              return;
            }
            bytes = readFile(path).then(
              (b) => ({ bytes: new Uint8Array(b), source: path as string }),
              (err: NodeJS.ErrnoException) => {
                throw tfError('MODEL_REJECTED', `cannot read ${path}: ${err.code ?? err.message}`);
              },
            );
          }
          bytes
            .then(({ bytes: b, source }) => swapper.load(name, b, source, { reason: 'load' }))
            .then(
              (result) => r.corked(x, () => r.json(x, 200, result)),
              (err) => r.corked(x, () => r.error(x, err)),
            );
        },
        (err) => r.corked(x, () => r.error(x, err, true)),
        type === BINARY_TYPE ? sharedBuffer : undefined,
      );
    });
}
