/**
 * The few Redis operations the prediction ids, the training lease and the model history need:
 * Lua scripts, each atomic on the server, so a check and its write cannot be split by another
 * replica. A narrow interface rather than the connection itself, so these modules say exactly
 * what they use; `redisOps` adapts a connection of redis-client.ts.
 *
 * Scripts go as EVALSHA (the script's SHA-1, 40 bytes, instead of its text on every call: the
 * prediction store's runs once per /predict with an id) and fall back to EVAL once when Redis
 * does not know the script yet (after its start or a SCRIPT FLUSH), which also caches it there.
 */
import { createHash } from 'node:crypto';
import type { RedisConnection } from './redis-client';

export interface RedisOps {
  /** Runs a Lua script; bulk strings in the reply come back as Buffers. */
  script(lua: string, keys: string[], args: Array<string | Uint8Array>): Promise<unknown>;
  /** Sends one plain command (binary values; bulk strings come back as Buffers). */
  command(args: Array<string | Buffer>): Promise<unknown>;
  /** Whether commands can be sent now (connected). */
  readonly isReady: boolean;
  /** Resolves once connected (commands sent before that fail at once). */
  ready(): Promise<void>;
}

const shas = new Map<string, string>();

function shaOf(lua: string): string {
  let sha = shas.get(lua);
  if (sha === undefined) {
    sha = createHash('sha1').update(lua).digest('hex');
    shas.set(lua, sha);
  }
  return sha;
}

export function redisOps(conn: Pick<RedisConnection, 'send' | 'isReady' | 'ready'>): RedisOps {
  return {
    async script(lua, keys, args) {
      const tail: Array<string | Buffer> = [String(keys.length), ...keys];
      for (const a of args) tail.push(typeof a === 'string' ? a : Buffer.from(a.buffer, a.byteOffset, a.byteLength));
      try {
        return await conn.send(['EVALSHA', shaOf(lua), ...tail]);
      } catch (err) {
        if (!/NOSCRIPT/.test((err as Error).message)) throw err;
        return conn.send(['EVAL', lua, ...tail]);
      }
    },
    command: (args) => conn.send(args),
    ready: () => conn.ready(),
    get isReady() {
      return conn.isReady;
    },
  };
}

/** A script reply entry as text (Buffers from the binary mapping, numbers from integer replies). */
export function replyText(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  return String(v);
}
