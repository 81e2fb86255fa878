/**
 * Online SGD: ns per `learn` (predict + update of one example) at F = 8 and 32, with the default
 * options (constant rate) with and without online standardization, and with the `optimal`
 * schedule, against a baseline loop that only computes a dot product per row (the least any
 * per-example linear model can do). Also the shared-weights seqlock: ns per publish and per read
 * of an F = 32 vector, uncontended.
 *
 * A tinybench task runs a batch of ROWS calls, so the timer's own cost (tens of ns) is spread
 * over the batch instead of swamping a ~50 ns operation; the table divides by ROWS. The median
 * batch is the figure to compare on a shared machine: a preempted batch inflates the mean.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/sgd.bench.js
 */
import { Bench } from 'tinybench';
import { DEFAULT_SGD_OPTIONS, SgdLearner } from '../src/learning/sgd';
import { SharedWeights } from '../src/learning/shared-weights';

const ROWS = 1024;

export interface SgdBenchRow {
  task: string;
  features: number;
  nsPerOp: number;
  /** The median batch, per op. */
  p50NsPerOp: number;
  /** p99 of a batch, per op. */
  p99NsPerOp: number;
  samples: number;
}

export interface SgdBenchResult {
  name: 'sgd';
  rows: SgdBenchRow[];
}

function makeRng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

function data(f: number): { x: Float64Array; y: Uint8Array } {
  const rnd = makeRng(f);
  const x = new Float64Array(ROWS * f);
  const y = new Uint8Array(ROWS);
  for (let i = 0; i < ROWS; i++) {
    let m = 0;
    for (let j = 0; j < f; j++) {
      const v = (rnd() - 0.5) * (1 + j);
      x[i * f + j] = v;
      m += j % 2 === 0 ? v : -v;
    }
    y[i] = m + rnd() - 0.5 > 0 ? 1 : 0;
  }
  return { x, y };
}

let sink = 0; // keeps results observable so that no work is optimised away

export async function run(opts: { time?: number; warmupTime?: number; quiet?: boolean } = {}): Promise<SgdBenchResult> {
  const bench = new Bench({ name: 'sgd', time: opts.time ?? 1000, warmupTime: opts.warmupTime ?? 300 });
  for (const f of [8, 32]) {
    const { x, y } = data(f);
    const w = new Float64Array(f).fill(0.01);
    bench.add(`baseline: dot product|${f}`, () => {
      let acc = 0;
      for (let i = 0; i < ROWS; i++) {
        let d = 0.1;
        const off = i * f;
        for (let j = 0; j < f; j++) d += w[j]! * x[off + j]!;
        acc += d;
      }
      sink += acc;
    });
    for (const standardize of [false, true]) {
      const learner = new SgdLearner({ ...DEFAULT_SGD_OPTIONS, features: f, standardize });
      bench.add(`learn, default options, ${standardize ? 'standardized' : 'raw'}|${f}`, () => {
        let acc = 0;
        for (let i = 0; i < ROWS; i++) acc += learner.learn(x, i, y[i] as 0 | 1);
        sink += acc;
      });
    }
    const optimal = new SgdLearner({ features: f, learningRate: 'optimal', alpha: 1e-4, eta0: 0, powerT: 0.5, standardize: false });
    bench.add(`learn, optimal schedule, raw|${f}`, () => {
      let acc = 0;
      for (let i = 0; i < ROWS; i++) acc += optimal.learn(x, i, y[i] as 0 | 1);
      sink += acc;
    });
  }
  {
    const f = 32;
    const shared = SharedWeights.create(f);
    const reader = SharedWeights.attach(shared.buffer);
    const w = new Float64Array(f).fill(0.5);
    const out = new Float64Array(f);
    let version = 0;
    bench.add(`SharedWeights.publish|${f}`, () => {
      for (let i = 0; i < ROWS; i++) shared.publish(w, 0.1, ++version);
    });
    bench.add(`SharedWeights.read|${f}`, () => {
      let acc = 0;
      for (let i = 0; i < ROWS; i++) acc += reader.read(out).version;
      sink += acc;
    });
  }
  await bench.run();

  const rows: SgdBenchRow[] = [];
  for (const task of bench.tasks) {
    const r = task.result;
    if (r.state !== 'completed') throw new Error(`sgd bench: task ${task.name} ${r.state}`);
    const [name, f] = task.name.split('|');
    rows.push({ task: name!, features: Number(f), nsPerOp: (r.latency.mean * 1e6) / ROWS, p50NsPerOp: (r.latency.p50! * 1e6) / ROWS, p99NsPerOp: (r.latency.p99 * 1e6) / ROWS, samples: r.latency.samplesCount });
  }
  if (sink === 0.5) console.log(''); // never true; reads sink
  const result: SgdBenchResult = { name: 'sgd', rows };
  if (opts.quiet !== true) console.log(formatReport(result));
  return result;
}

export function formatReport(result: SgdBenchResult): string {
  const lines = [
    `online SGD, ns per example (batches of ${ROWS}; node ${process.version})`,
    '',
    '| F | task | ns/op (median batch) | ns/op (mean) | ns/op (p99 batch) | vs dot-product baseline (median) |',
    '| ---: | --- | ---: | ---: | ---: | ---: |',
  ];
  for (const r of result.rows) {
    const base = result.rows.find((b) => b.features === r.features && b.task.startsWith('baseline'));
    const ratio = base && !r.task.startsWith('SharedWeights') ? `${(r.p50NsPerOp / base.p50NsPerOp).toFixed(1)}×` : '';
    lines.push(`| ${r.features} | ${r.task} | ${r.p50NsPerOp.toFixed(1)} | ${r.nsPerOp.toFixed(1)} | ${r.p99NsPerOp.toFixed(1)} | ${ratio} |`);
  }
  return lines.join('\n');
}

if (require.main === module) {
  run().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
