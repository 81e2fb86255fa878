/**
 * Shared checkpoints: the learning checkpoint of some replica, in Redis, for a replica that has no
 * state of its own (a new one) or whose position was trimmed from the stream. Every replica's state
 * at a given entry is the same bit for bit, so any replica's checkpoint serves every other.
 *
 * Two are kept, as hashes `<stream>:checkpoint` (the latest) and `<stream>:checkpoint:previous`,
 * each with the entry id the state includes, its ordinal, the checkpoint file's bytes (the local
 * checkpoint format, checksum included), who published it and when. A publish is one script, atomic
 * on the server: it is taken only if its entry is after the latest's and the latest is at least
 * `minIntervalMs` old (so three replicas publishing do not churn), the latest becomes the previous,
 * and the stream is trimmed (XTRIM MINID) below the previous one's entry, never further: a replica
 * up to one publish interval behind the latest checkpoint still finds its next entry in the stream.
 */
import type { RedisConnection } from './redis-client';

export interface SharedCheckpoint {
  id: string;
  ordinal: number;
  bytes: Buffer;
  replica: string;
  publishedAtMs: number;
}

export function sharedCheckpointKeys(streamKey: string): { latest: string; previous: string } {
  return { latest: `${streamKey}:checkpoint`, previous: `${streamKey}:checkpoint:previous` };
}

/** KEYS: stream, latest, previous. ARGV: id, ordinal, bytes, replica, min interval ms. */
const PUBLISH_SCRIPT = `
local function after(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  if am ~= bm then return am > bm end
  return as > bs
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('HMGET', KEYS[2], 'id', 'at')
if cur[1] then
  if not after(ARGV[1], cur[1]) then return 'not-newer' end
  if now - tonumber(cur[2]) < tonumber(ARGV[5]) then return 'too-soon' end
  redis.call('RENAME', KEYS[2], KEYS[3])
end
redis.call('HSET', KEYS[2], 'id', ARGV[1], 'ordinal', ARGV[2], 'bytes', ARGV[3], 'replica', ARGV[4], 'at', now)
local oldest = redis.call('HGET', KEYS[3], 'id')
if oldest then redis.call('XTRIM', KEYS[1], 'MINID', oldest) end
return 'published'
`;

export type PublishOutcome = 'published' | 'not-newer' | 'too-soon';

export async function publishSharedCheckpoint(
  conn: RedisConnection,
  streamKey: string,
  cp: { id: string; ordinal: number; bytes: Buffer; replica: string },
  minIntervalMs: number,
): Promise<PublishOutcome> {
  const k = sharedCheckpointKeys(streamKey);
  const out = await conn.send(['EVAL', PUBLISH_SCRIPT, '3', streamKey, k.latest, k.previous, cp.id, String(cp.ordinal), cp.bytes, cp.replica, String(minIntervalMs)]);
  return String(out) as PublishOutcome;
}

/** The latest shared checkpoint, or null when none was published. */
export async function fetchSharedCheckpoint(conn: RedisConnection, streamKey: string): Promise<SharedCheckpoint | null> {
  const flat = (await conn.send(['HGETALL', sharedCheckpointKeys(streamKey).latest])) as unknown;
  const h = new Map<string, Buffer>();
  if (Array.isArray(flat)) {
    for (let i = 0; i + 1 < flat.length; i += 2) h.set(String(flat[i]), flat[i + 1] as Buffer);
  } else if (flat && typeof flat === 'object') {
    for (const [name, v] of Object.entries(flat as Record<string, Buffer>)) h.set(name, v);
  }
  const id = h.get('id');
  const bytes = h.get('bytes');
  if (!id || !bytes) return null;
  return { id: id.toString(), ordinal: Number(h.get('ordinal')?.toString()), bytes, replica: h.get('replica')?.toString() ?? '', publishedAtMs: Number(h.get('at')?.toString()) };
}
