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
 *   npx tsc -p tsconfig.json && node dist/bench/arf.bench.js
 */
import { Bench } from 'tinybench';
import { AdaptiveRandomForest, DEFAULT_ARF_OPTIONS } from '../src/learning/arf/forest';
import { Mulberry32 } from '../src/learning/arf/rng';
import { SharedForest } from '../src/learning/arf/shared-forest';
import { DEFAULT_SGD_OPTIONS, SgdLearner } from '../src/learning/sgd';

const ROWS = 1024;
const GROW = 20_000;
const STREAM = 65_536;

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

function addTasks(bench: Bench, f: number, shape: ArfBenchResult['shape']): void {
  const { x, y } = stream(f);
  let at = 0;
  const next = (): number => {
    at = (at + 1) % STREAM;
    return at;
  };
  const sgd = new SgdLearner({ ...DEFAULT_SGD_OPTIONS, features: f });
  bench.add(`baseline: sgd learn|${f}`, () => {
    for (let i = 0; i < ROWS; i++) {
      const k = next();
      sink += sgd.learn(x, k, y[k] as 0 | 1);
    }
  });
  const forest = new AdaptiveRandomForest({ ...DEFAULT_ARF_OPTIONS, features: f });
  for (let i = 0; i < GROW; i++) forest.learn(x, i * f, y[i] as 0 | 1);
  at = GROW;
  const shared = SharedForest.forForest(forest);
  shared.publish(forest);
  const reader = SharedForest.attach(shared.buffer);
  bench.add(`arf learn|${f}`, () => {
    for (let i = 0; i < ROWS; i++) {
      const k = next();
      sink += forest.learn(x, k * f, y[k] as 0 | 1);
    }
  });
  bench.add(`arf learn + publish|${f}`, () => {
    for (let i = 0; i < ROWS; i++) {
      const k = next();
      sink += forest.learn(x, k * f, y[k] as 0 | 1);
      shared.publish(forest);
    }
  });
  bench.add(`arf predict (learner)|${f}`, () => {
    for (let i = 0; i < ROWS; i++) sink += forest.predict(x, next() * f);
  });
  const batch = x.subarray(0, ROWS * f);
  const probs = new Float32Array(2 * ROWS);
  const labels = new Int32Array(ROWS);
  bench.add(`arf score, worker, 1024-row batch|${f}`, () => {
    shared.publish(forest);
    sink += reader.score(batch, ROWS, probs, labels);
  });
  bench.add(`arf score, worker, 1-row batches|${f}`, () => {
    for (let i = 0; i < ROWS; i++) sink += reader.score(x.subarray(i * f, (i + 1) * f), 1, probs, labels);
  });
  shape[f] = { nodes: 0, replaced: 0 };
  bench.addEventListener('complete', () => {
    shape[f] = { nodes: forest.shape().nodes, replaced: forest.replaced };
  });
}

export async function run(opts: { time?: number; warmupTime?: number; quiet?: boolean } = {}): Promise<ArfBenchResult> {
  const bench = new Bench({ name: 'arf', time: opts.time ?? 1500, warmupTime: opts.warmupTime ?? 300 });
  const shape: ArfBenchResult['shape'] = {};
  for (const f of [8, 32]) addTasks(bench, f, shape);
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
  const result: ArfBenchResult = { name: 'arf', rows, shape };
  if (opts.quiet !== true) console.log(formatReport(result));
  return result;
}

export function formatReport(result: ArfBenchResult): string {
  const lines = [
    `adaptive random forest, µs per row (batches of ${ROWS}; default options, ${DEFAULT_ARF_OPTIONS.trees} trees; node ${process.version})`,
    '',
    '| F | task | µs/row (median batch) | µs/row (mean) | µs/row (p99 batch) | ÷ sgd learn (median) |',
    '| ---: | --- | ---: | ---: | ---: | ---: |',
  ];
  for (const r of result.rows) {
    const base = result.rows.find((b) => b.features === r.features && b.task.startsWith('baseline'));
    const ratio = base && r !== base ? `${(r.p50UsPerRow / base.p50UsPerRow).toFixed(0)}×` : '';
    lines.push(`| ${r.features} | ${r.task} | ${r.p50UsPerRow.toFixed(3)} | ${r.meanUsPerRow.toFixed(3)} | ${r.p99UsPerRow.toFixed(3)} | ${ratio} |`);
  }
  lines.push('', `Forest at the end: ${Object.entries(result.shape).map(([f, s]) => `F=${f}: ${s.nodes} nodes over the trees, ${s.replaced} trees replaced`).join('; ')}.`);
  return lines.join('\n');
}

if (require.main === module) {
  run().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
