/**
 * Errors on the protocol's routes: the status and headers of our error table (src/errors.ts),
 * the body the protocol's own `{"error": "<message>"}`.
 */
import { isTradeflowError, tfError } from '../../errors';
import type { Handler } from '../router';
import { JSON_TYPE, type Exchange, type Responder } from '../respond';

export function sendOipError(r: Responder, x: Exchange, err: unknown, closeConnection = false): void {
  const e = isTradeflowError(err) ? err : tfError('INTERNAL', `internal error: ${(err as Error)?.message ?? String(err)}`);
  r.send(x, e.status, JSON_TYPE, JSON.stringify({ error: e.message }), e.headers, closeConnection);
}

/** For answers after an await (uWS needs them corked). */
export function corkedOipError(r: Responder, x: Exchange, err: unknown, closeConnection = false): void {
  r.corked(x, () => sendOipError(r, x, err, closeConnection));
}

/** A handler whose synchronous throws are answered in the protocol's shape. */
export function oipHandler(r: Responder, h: Handler): Handler {
  return (x, req, params) => {
    try {
      h(x, req, params);
    } catch (err) {
      // A request with a body still arriving gets its answer and then the connection closed.
      sendOipError(r, x, err, hasBody(req.getHeader('content-length'), req.getHeader('transfer-encoding')));
    }
  };
}

function hasBody(cl: string, te: string): boolean {
  return (cl !== '' && cl !== '0') || te !== '';
}
