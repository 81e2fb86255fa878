/**
 * This build's forest against another build's (a copy of an older dist/), on the same work:
 * Elec2 test-then-train (engine defaults, Gini, majority-class leaves) and two of arf.bench.ts's
 * drifting streams (F = 8, 32), each learned from a cold forest by both builds in turn, `--reps`
 * times. Per run it reports the process CPU time per learned row (user + system, less disturbed
 * by other jobs on a shared machine than the wall clock), the ratio this ÷ baseline per repetition,
 * the accuracies, the forests' shapes, and how many prequential predictions differ (and by how
 * much): 0 means the two builds learn the same forest bit for bit.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/arf-ab.js --baseline /path/to/old/dist [--reps 3] [path/to/elec2.csv]
 */
import * as path from 'node:path';
import { readLabelledCsv } from '../src/io/csv';
import * as forestModule from '../src/learning/arf/forest';
import type { ArfOptions } from '../src/learning/arf/forest';
import { Mulberry32 } from '../src/learning/arf/rng';

type Forests = typeof forestModule;

interface Data {
  x: Float32Array;
  y: ArrayLike<number>;
  F: number;
  n: number;
}

/** arf.bench.ts's stream: a threshold on two features, flipping every 8,000 rows. */
function stream(f: number, n: number): Data {
  const r = new Mulberry32(f);
  const x = new Float32Array(n * f);
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < f; j++) x[i * f + j] = r.random();
    const up = x[i * f]! + 0.5 * x[i * f + 1]! + 0.1 * r.random() > 0.8;
    y[i] = (Math.floor(i / 8000) % 2 === 0 ? up : !up) ? 1 : 0;
  }
  return { x, y, F: f, n };
}

function learnAll(M: Forests, d: Data, o: Partial<ArfOptions>): { ps: Float64Array; us: number; acc: number; shape: string } {
  const f = new M.AdaptiveRandomForest({ ...M.DEFAULT_ARF_OPTIONS, features: d.F, ...o });
  const ps = new Float64Array(d.n);
  const t0 = process.cpuUsage();
  for (let i = 0; i < d.n; i++) ps[i] = f.learn(d.x, i * d.F, d.y[i] as 0 | 1);
  const c = process.cpuUsage(t0);
  let right = 0;
  for (let i = 0; i < d.n; i++) right += (ps[i]! > 0.5 ? 1 : 0) === d.y[i] ? 1 : 0;
  return { ps, us: (c.user + c.system) / d.n, acc: right / d.n, shape: `${f.shape().nodes} nodes, ${f.replaced} replaced` };
}

const median = (v: number[]): number => v.slice().sort((a, b) => a - b)[v.length >> 1]!;

function compare(name: string, mine: Forests, theirs: Forests, d: Data, o: Partial<ArfOptions>, reps: number): string {
  const ta: number[] = [];
  const tb: number[] = [];
  let a = learnAll(mine, d, o);
  let b = a;
  for (let r = 0; r < reps; r++) {
    b = learnAll(theirs, d, o);
    tb.push(b.us);
    a = learnAll(mine, d, o);
    ta.push(a.us);
  }
  let differ = 0;
  let most = 0;
  for (let i = 0; i < d.n; i++) {
    if (a.ps[i] !== b.ps[i]) {
      differ++;
      most = Math.max(most, Math.abs(a.ps[i]! - b.ps[i]!));
    }
  }
  const ratios = ta.map((t, i) => t / tb[i]!);
  return `| ${name} | ${b.acc.toFixed(4)} / ${a.acc.toFixed(4)} | ${b.shape} / ${a.shape} | ${differ} (max ${most.toExponential(1)}) | ${median(tb).toFixed(2)} | ${median(ta).toFixed(2)} | ${ratios.map((r) => r.toFixed(2)).join(' / ')} (median **${median(ratios).toFixed(2)}×**) |`;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const flag = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv.splice(i, 2)[1] : undefined;
  };
  const baseline = flag('--baseline');
  const reps = Number(flag('--reps') ?? 3);
  if (!baseline || !(reps >= 1)) throw new Error('usage: node dist/bench/arf-ab.js --baseline DIST [--reps N] [elec2.csv]');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const theirs = require(path.resolve(baseline, 'src', 'learning', 'arf', 'forest.js')) as Forests;
  const file = argv[0] ?? path.join(__dirname, '..', '..', '..', 'shared', 'data', 'elec2.csv');
  const e = await readLabelledCsv(file, { labelColumn: 'class', positive: 'UP', dropColumns: ['date'] });
  const elec: Data = { x: Float32Array.from(e.rows), y: e.labels, F: e.features.length, n: e.labels.length };
  const runs: Array<[string, Data, Partial<ArfOptions>]> = [
    ['Elec2, engine defaults', elec, {}],
    ['Elec2, gini', elec, { splitCriterion: 'gini' }],
    ['Elec2, mc leaves', elec, { leafPrediction: 'mc' }],
    ['stream F=8 (30,000 rows)', stream(8, 30_000), {}],
    ['stream F=32 (20,000 rows)', stream(32, 20_000), {}],
  ];
  console.log(`baseline build ${baseline}; ${reps} repetitions, interleaved; node ${process.version}\n`);
  console.log('| run | accuracy baseline / this | forest baseline / this | predictions differing | CPU µs/row baseline | CPU µs/row this | this ÷ baseline per repetition |');
  console.log('| --- | --- | --- | ---: | ---: | ---: | --- |');
  for (const [name, d, o] of runs) console.log(compare(name, forestModule, theirs, d, o, reps));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
