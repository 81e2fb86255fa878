/**
 * POST /train (admin): starts a training run and answers 202 with its id at once; 409 while one
 * runs. GET /train/{id}: the run and, when it has ended, its result. GET /train: recent runs.
 */
import { tfError } from '../errors';
import type { TrainingRuns } from '../retraining/training-runs';
import type { AdminCheck } from './auth';
import { readControlBody } from './body';
import type { HttpServer } from './server';

/**
 * With several replicas: resolves when this replica may start a run (it holds the training
 * lease), rejects with NOT_TRAINING_LEADER naming the holder otherwise. Runs are not proxied: the
 * client learns where they run (the message and `X-Training-Leader`) and the lease holder's
 * `GET /train/{id}` has the record.
 */
export type TrainingGate = () => Promise<void>;

export function registerTrainRoutes(server: HttpServer, runs: TrainingRuns, admin: AdminCheck, gate: TrainingGate | null = null): void {
  const r = server.responder;
  server
    .route('GET', '/train', (x) => r.json(x, 200, { runs: runs.list() }))
    .route('GET', '/train/{id}', (x, _req, p) => r.json(x, 200, runs.get(p.id!)))
    .route('POST', '/train', (x, req) => {
      admin(x.res, req);
      readControlBody(x, r, (body) => {
        let force: boolean;
        try {
          force = parseForce(body);
        } catch (err) {
          const e = err instanceof SyntaxError ? tfError('INVALID_JSON', `body is not JSON: ${err.message}`) : err;
          r.corked(x, () => r.error(x, e));
          return;
        }
        const start = (): void => {
          try {
            const { record } = runs.start('api', force);
            r.corked(x, () => r.json(x, 202, { id: record.id, status: record.status, rows: record.rows, url: `/train/${record.id}` }, { Location: `/train/${record.id}` }));
          } catch (err) {
            r.corked(x, () => r.error(x, err));
          }
        };
        // One engine: started in the same turn, as before; several replicas: once the lease says so.
        if (gate === null) start();
        else gate().then(start, (err: unknown) => r.corked(x, () => r.error(x, err)));
      });
    });
}

function parseForce(body: Uint8Array): boolean {
  if (body.length === 0) return false;
  const parsed = JSON.parse(Buffer.from(body).toString('utf8')) as { force?: unknown };
  if (parsed === null || typeof parsed !== 'object') throw tfError('INVALID_BODY', 'body must be a JSON object such as {"force": true}');
  if (parsed.force !== undefined && typeof parsed.force !== 'boolean') throw tfError('INVALID_BODY', '"force" must be true or false');
  return parsed.force === true;
}
