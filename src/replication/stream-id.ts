/**
 * Redis stream entry ids (`<ms>-<seq>`, both unsigned 64-bit) compared as numbers: as strings
 * `"9-0" > "10-0"`. BigInt because a sequence part can exceed 2^53 in principle.
 */
export const ZERO_ID = '0-0';

export function parseStreamId(id: string): [bigint, bigint] {
  const m = /^(\d+)-(\d+)$/.exec(id);
  if (!m) throw new Error(`not a stream entry id: "${id}"`);
  return [BigInt(m[1]!), BigInt(m[2]!)];
}

/** Negative when a is before b, 0 when equal, positive when after. */
export function compareStreamIds(a: string, b: string): number {
  if (a === b) return 0;
  const [am, as] = parseStreamId(a);
  const [bm, bs] = parseStreamId(b);
  if (am !== bm) return am < bm ? -1 : 1;
  return as < bs ? -1 : as > bs ? 1 : 0;
}

/** The time part of an entry id: Redis's clock, in ms since the epoch, when it took the entry. */
export function entryTimeMs(id: string): number {
  return Number(parseStreamId(id)[0]);
}
