/**
 * Mutating endpoints (learning, training, model admin, drift update and reset): with ADMIN_TOKEN
 * set they need `Authorization: Bearer <token>`; with none set, they are taken from loopback
 * clients only (the engine says so at start).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { tfError } from '../errors';

export type AdminCheck = (res: HttpResponse, req: HttpRequest) => void;

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|0{0,4}(:0{0,4}){6}:0{0,3}1|::ffff:127\.\d+\.\d+\.\d+|0000:0000:0000:0000:0000:ffff:7f[0-9a-f]{2}:[0-9a-f]{4})$/i;

export function isLoopback(address: string): boolean {
  return LOOPBACK.test(address);
}

/** Throws 401/403 unless the request may mutate state. Read synchronously from `req`. */
/**
 * Tokens are compared as SHA-256 digests: equal lengths always, so neither the comparison's time
 * nor an early length check tells a client how long the token is or how much of it it guessed.
 */
function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

export function adminCheck(token: string | null): AdminCheck {
  const expected = token === null ? null : digest(token);
  return (res, req) => {
    if (expected === null) {
      const addr = Buffer.from(res.getRemoteAddressAsText()).toString();
      if (!isLoopback(addr)) {
        throw tfError('FORBIDDEN', `no ADMIN_TOKEN is configured, so this endpoint only accepts loopback clients (got ${addr})`);
      }
      return;
    }
    const header = req.getHeader('authorization');
    const m = /^Bearer\s+(.+)$/i.exec(header);
    if (!m) throw tfError('UNAUTHORIZED');
    if (!timingSafeEqual(digest(m[1]!.trim()), expected)) {
      throw tfError('FORBIDDEN', 'the bearer token is not valid for this endpoint');
    }
  };
}
