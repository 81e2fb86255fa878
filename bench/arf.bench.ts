/**
 * The adaptive random forest (`arf`), per row: `learn` (the prequential prediction plus the
 * update of every tree, with Poisson(6) weights and the ADWINs), `learn` followed by the publish
 * to shared memory (what the engine's main thread does per record), the learner's own `predict`,
 * and a worker's `SharedForest.score` of a 1,024-row batch and of a 1-row batch, at F = 8 (Elec2
 * has 7 features) and F = 32, default options (10 trees). Baseline in the same run: the online SGD
 * model's `learn` (default options), the other online model the engine keeps.
 *
 * The forest is grown on 20,000 rows of a drifting stream before measuring, so trees have the
 * size they have in use; the measured loops keep learning the same stream. A tinybench task runs
 * a batch of ROWS calls (the timer's own cost spread over it); the table divides by ROWS. The
 * median batch is the figure to compare on a shared machine.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/arf.bench.js [--baseline /path/to/other/dist]
 *
 * With --baseline, the forest of another build (a copy of an older dist/, say) runs the same
 * tasks on the same streams in the same process, each task right after this build's, and the
 * table gains the ratio of this build's median to the baseline's: the comparison that holds on a
 * machine shared with other jobs.
 */
import { Bench } from 'tinybench';
import * as path from 'node:path';
import * as forestModule from '../src/learning/arf/forest';
import { Mulberry32 } from '../src/learning/arf/rng';
import * as sharedModule from '../src/learning/arf/shared-forest';
import { DEFAULT_SGD_OPTIONS, SgdLearner } from '../src/learning/sgd';

const ROWS = 1024;
const GROW = 20_000;
const STREAM = 65_536;

/** The forest and its shared-memory view of one build. */
interface Build {
  AdaptiveRandomForest: typeof forestModule.AdaptiveRandomForest;
  SharedForest: typeof sharedModule.SharedForest;
}

const THIS_BUILD: Build = { AdaptiveRandomForest: forestModule.AdaptiveRandomForest, SharedForest: sharedModule.SharedForest };
const { DEFAULT_ARF_OPTIONS } = forestModule;

function loadBuild(dist: string): Build {
  const dir = path.resolve(dist, 'src', 'learning', 'arf');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const f = require(path.join(dir, 'forest.js')) as typeof forestModule;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const sh = require(path.join(dir, 'shared-forest.js')) as typeof sharedModule;
  return { AdaptiveRandomForest: f.AdaptiveRandomForest, SharedForest: sh.SharedForest };
}

export interface ArfBenchRow {
  task: string;
  features: number;
  p50UsPerRow: number;
  meanUsPerRow: number;
  p99UsPerRow: number;
  samples: number;
}

export interface ArfBenchResult {
  name: 'arf';
  rows: ArfBenchRow[];
  shape: Record<number, { nodes: number; replaced: number }>;
  /** Whether rows named "baseline build: ..." ran the forest of another build. */
  baseline: string | null;
}

/** Rows whose class is a threshold on two features, flipping every 8,000 rows (so trees get replaced). */
function stream(f: number): { x: Float32Array; y: Uint8Array } {
  const r = new Mulberry32(f);
  const x = new Float32Array(STREAM * f);
  const y = new Uint8Array(STREAM);
  for (let i = 0; i < STREAM; i++) {
    for (let j = 0; j < f; j++) x[i * f + j] = r.random();
    const up = x[i * f]! + 0.5 * x[i * f + 1]! + 0.1 * r.random() > 0.8;
    y[i] = (Math.floor(i / 8000) % 2 === 0 ? up : !up) ? 1 : 0;
  }
  return { x, y };
}

let sink = 0; // keeps results observable so that no work is optimised away

function addTasks(bench: Bench, f: number, shape: ArfBenchResult['shape'], baseline: Build | null): void {
  const data = stream(f);
  const sgd = new SgdLearner({ ...DEFAULT_SGD_OPTIONS, features: f });
  let at = 0;
  bench.add(`baseline: sgd learn|${f}`, () => {
    for (let i = 0; i < ROWS; i++) {
      at = (at + 1) % STREAM;
      sink += sgd.learn(data.x, at, data.y[at] as 0 | 1);
    }
  });
  const mine = forestTasks(f, data, THIS_BUILD);
  const theirs = baseline ? forestTasks(f, data, baseline) : null;
  for (const [name, fn] of mine.tasks) {
    bench.add(`${name}|${f}`, fn);
    const other = theirs?.tasks.get(name);
    if (other) bench.add(`baseline build: ${name}|${f}`, other);
  }
  shape[f] = { nodes: 0, replaced: 0 };
  bench.addEventListener('complete', () => {
    shape[f] = mine.shape();
  });
}

/** One build's forest, grown on the stream, and its tasks (each with its own place in the stream). */
function forestTasks(f: number, data: { x: Float32Array; y: Uint8Array }, b: Build): { tasks: Map<string, () => void>; shape: () => { nodes: number; replaced: number } } {
  const { x, y } = data;
  let at = GROW;
  const next = (): number => {
    at = (at + 1) % STREAM;
    return at;
  };
  const forest = new b.AdaptiveRandomForest({ ...DEFAULT_ARF_OPTIONS, features: f });
  for (let i = 0; i < GROW; i++) forest.learn(x, i * f, y[i] as 0 | 1);
  const shared = b.SharedForest.forForest(forest);
  shared.publish(forest);
  const reader = b.SharedForest.attach(shared.buffer);
  const batch = x.subarray(0, ROWS * f);
  const probs = new Float32Array(2 * ROWS);
  const labels = new Int32Array(ROWS);
  const tasks = new Map<string, () => void>([
    ['arf learn', () => {
      for (let i = 0; i < ROWS; i++) {
        const k = next();
        sink += forest.learn(x, k * f, y[k] as 0 | 1);
      }
    }],
    ['arf learn + publish', () => {
      for (let i = 0; i < ROWS; i++) {
        const k = next();
        sink += forest.learn(x, k * f, y[k] as 0 | 1);
        shared.publish(forest);
      }
    }],
    ['arf predict (learner)', () => {
      for (let i = 0; i < ROWS; i++) sink += forest.predict(x, next() * f);
    }],
    ['arf score, worker, 1024-row batch', () => {
      shared.publish(forest);
      sink += reader.score(batch, ROWS, probs, labels);
    }],
    ['arf score, worker, 1-row batches', () => {
      for (let i = 0; i < ROWS; i++) sink += reader.score(x.subarray(i * f, (i + 1) * f), 1, probs, labels);
    }],
  ]);
  return { tasks, shape: () => ({ nodes: forest.shape().nodes, replaced: forest.replaced }) };
}

export async function run(opts: { time?: number; warmupTime?: number; quiet?: boolean; baseline?: string } = {}): Promise<ArfBenchResult> {
  const bench = new Bench({ name: 'arf', time: opts.time ?? 1500, warmupTime: opts.warmupTime ?? 300 });
  const shape: ArfBenchResult['shape'] = {};
  const baseline = opts.baseline ? loadBuild(opts.baseline) : null;
  for (const f of [8, 32]) addTasks(bench, f, shape, baseline);
  await bench.run();
  const rows: ArfBenchRow[] = [];
  for (const task of bench.tasks) {
    const r = task.result;
    if (r.state !== 'completed') throw new Error(`arf bench: task ${task.name} ${r.state}`);
    const [name, f] = task.name.split('|');
    const per = (ms: number) => (ms * 1e3) / ROWS;
    rows.push({ task: name!, features: Number(f), p50UsPerRow: per(r.latency.p50!), meanUsPerRow: per(r.latency.mean), p99UsPerRow: per(r.latency.p99), samples: r.latency.samplesCount });
  }
  if (sink === 0.5) console.log(''); // never true; reads sink
  const result: ArfBenchResult = { name: 'arf', rows, shape, baseline: opts.baseline ?? null };
  if (opts.quiet !== true) console.log(formatReport(result));
  return result;
}

export function formatReport(result: ArfBenchResult): string {
  const lines = [
    `adaptive random forest, µs per row (batches of ${ROWS}; default options, ${DEFAULT_ARF_OPTIONS.trees} trees; node ${process.version})`,
    ...(result.baseline ? [`baseline build: ${result.baseline}`] : []),
    '',
    '| F | task | µs/row (median batch) | µs/row (mean) | µs/row (p99 batch) | ÷ sgd learn (median) | ÷ baseline build (median) |',
    '| ---: | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of result.rows) {
    const base = result.rows.find((b) => b.features === r.features && b.task.startsWith('baseline: sgd'));
    const ratio = base && r !== base ? `${(r.p50UsPerRow / base.p50UsPerRow).toFixed(0)}×` : '';
    const old = result.rows.find((b) => b.features === r.features && b.task === `baseline build: ${r.task}`);
    const vsOld = old ? `${(r.p50UsPerRow / old.p50UsPerRow).toFixed(2)}×` : '';
    lines.push(`| ${r.features} | ${r.task} | ${r.p50UsPerRow.toFixed(3)} | ${r.meanUsPerRow.toFixed(3)} | ${r.p99UsPerRow.toFixed(3)} | ${ratio} | ${vsOld} |`);
  }
  lines.push('', `Forest at the end (this build): ${Object.entries(result.shape).map(([f, s]) => `F=${f}: ${s.nodes} nodes over the trees, ${s.replaced} trees replaced`).join('; ')}.`);
  return lines.join('\n');
}

if (require.main === module) {
  const i = process.argv.indexOf('--baseline');
  run({ baseline: i > 0 ? process.argv[i + 1] : undefined }).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
