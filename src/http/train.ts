/**
 * POST /train (admin): starts a training run and answers 202 with its id at once; 409 while one
 * runs. GET /train/{id}: the run and, when it has ended, its result. GET /train: recent runs.
 */
import { tfError } from '../errors';
import type { TrainingRuns } from '../retraining/training-runs';
import type { AdminCheck } from './auth';
import { readControlBody } from './body';
import type { HttpServer } from './server';

export function registerTrainRoutes(server: HttpServer, runs: TrainingRuns, admin: AdminCheck): void {
  const r = server.responder;
  server
    .route('GET', '/train', (x) => r.json(x, 200, { runs: runs.list() }))
    .route('GET', '/train/{id}', (x, _req, p) => r.json(x, 200, runs.get(p.id!)))
    .route('POST', '/train', (x, req) => {
      admin(x.res, req);
      readControlBody(x, r, (body) => {
        let force = false;
        try {
          if (body.length > 0) {
            const parsed = JSON.parse(Buffer.from(body).toString('utf8')) as { force?: unknown };
            if (parsed === null || typeof parsed !== 'object') throw tfError('INVALID_BODY', 'body must be a JSON object such as {"force": true}');
            if (parsed.force !== undefined && typeof parsed.force !== 'boolean') throw tfError('INVALID_BODY', '"force" must be true or false');
            force = parsed.force === true;
          }
          const { record } = runs.start('api', force);
          r.corked(x, () => r.json(x, 202, { id: record.id, status: record.status, rows: record.rows, url: `/train/${record.id}` }, { Location: `/train/${record.id}` }));
        } catch (err) {
          const e = err instanceof SyntaxError ? tfError('INVALID_JSON', `body is not JSON: ${err.message}`) : err;
          r.corked(x, () => r.error(x, e));
        }
      });
    });
}
