/**
 * The drift endpoints: status of every detector, feeding one outcome, and reset. Outcomes and
 * resets go through the feedback log like any feedback, so they survive a crash too.
 */
import type { DriftMonitor } from '../drift/monitor';
import { tfError, type TradeflowError } from '../errors';
import type { OnlineLearning } from '../learning/online';
import type { AdminCheck } from './auth';
import { readControlBody } from './body';
import type { HttpServer } from './server';

function invalid(message: string): TradeflowError {
  return tfError('INVALID_QUERY', message);
}

/** `prediction`, `actual` (0 or 1) and optional `proba` in [0, 1] from a query string. */
export function parseOutcomeQuery(query: string): { prediction: number; actual: number; proba: number | null } {
  const q = new URLSearchParams(query);
  const bit = (name: string): number => {
    const v = q.get(name);
    if (v === null || v === '') throw invalid(`query parameter "${name}" is required (0 or 1)`);
    if (v !== '0' && v !== '1') throw invalid(`query parameter "${name}" must be 0 or 1, got "${v}"`);
    return Number(v);
  };
  const prediction = bit('prediction');
  const actual = bit('actual');
  const raw = q.get('proba');
  let proba: number | null = null;
  if (raw !== null && raw !== '') {
    const p = Number(raw);
    if (!/^[+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(raw) || !(p >= 0 && p <= 1)) throw invalid(`query parameter "proba" must be a number in [0, 1], got "${raw}"`);
    proba = p;
  }
  return { prediction, actual, proba };
}

export function registerDriftRoutes(server: HttpServer, monitor: DriftMonitor, learning: OnlineLearning, admin: AdminCheck): void {
  const r = server.responder;
  server
    .route('GET', '/monitoring/drift/status', (x) => r.json(x, 200, monitor.status()))
    .route('POST', '/monitoring/drift/update', (x, req) => {
      admin(x.res, req);
      const outcome = parseOutcomeQuery(req.getQuery() ?? '');
      readControlBody(x, r, () => {
        learning.submit({ kind: 'drift', ...outcome }).then(
          (u) => r.corked(x, () => r.json(x, 200, u)),
          (err) => r.corked(x, () => r.error(x, err)),
        );
      });
    })
    .route('POST', '/monitoring/drift/reset', (x, req) => {
      admin(x.res, req);
      readControlBody(x, r, () => {
        learning.submit({ kind: 'drift-reset' }).then(
          () => r.corked(x, () => r.json(x, 200, { reset: true, status: monitor.status() })),
          (err) => r.corked(x, () => r.error(x, err)),
        );
      });
    });
}
