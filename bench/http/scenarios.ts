/** The four load shapes of `npm run bench:http` (issue #2's targets are stated per scenario). */
import { UsageError } from '../lib/args';
import type { BodyKind } from '../lib/bodies';

export interface Scenario {
  id: string;
  letter: string;
  title: string;
  kind: BodyKind;
  rows: number;
  connections: number;
  bodies: number;
  seed: number;
}

export const SCENARIOS: readonly Scenario[] = [
  // 65,536 one-row bodies, sent in a cycle that continues from run to run: far more than the
  // engine's prediction cache holds (CACHE_CAPACITY, 10,000 by default), so an LRU never hits.
  { id: 'json1-c64', letter: 'a', title: 'JSON, 1 row/request, 64 connections', kind: 'features', rows: 1, connections: 64, bodies: 65536, seed: 0xa1 },
  { id: 'json64-c8', letter: 'b', title: 'JSON, 64 rows/request, 8 connections', kind: 'instances', rows: 64, connections: 8, bodies: 512, seed: 0xb2 },
  { id: 'json64-c64', letter: 'c', title: 'JSON, 64 rows/request, 64 connections', kind: 'instances', rows: 64, connections: 64, bodies: 512, seed: 0xc3 },
  { id: 'bin64-c64', letter: 'd', title: 'binary float32, 64 rows/request, 64 connections', kind: 'binary', rows: 64, connections: 64, bodies: 512, seed: 0xd4 },
];

/** Scenarios named by id or letter, comma-separated, in SCENARIOS order; undefined: all. */
export function pickScenarios(list: string | undefined): Scenario[] {
  if (list === undefined) return [...SCENARIOS];
  const picked = new Set<Scenario>();
  for (const name of list.split(',').map((s) => s.trim()).filter(Boolean)) {
    const sc = SCENARIOS.find((s) => s.id === name || s.letter === name);
    if (!sc) throw new UsageError(`unknown scenario "${name}"; one of ${SCENARIOS.map((s) => `${s.letter}|${s.id}`).join(', ')}`);
    picked.add(sc);
  }
  return SCENARIOS.filter((s) => picked.has(s));
}
