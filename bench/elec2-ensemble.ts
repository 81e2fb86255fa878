/**
 * The ensemble on Elec2 with and without drift-triggered retraining. An initial ensemble is
 * trained (`tradeflow train`) on the first rows of the stream — the cold start's training data —
 * and the rest of the stream goes through the engine test-then-train (`tradeflow eval --model
 * ensemble`): each row is predicted with an id, then its label sent to /learn, which fills the
 * replay buffer and feeds the drift detectors. With TRAIN_ON_DRIFT=ddm a drift schedules a
 * training run on the rows seen since; without it the initial ensemble serves throughout.
 *
 *   npm run build && node dist/bench/elec2-ensemble.js [--csv ../shared/data/elec2.csv] [--initial 5000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { runEval, type EvalResult } from '../src/cli/eval';
import { numberFlag, type FlagSpec } from './lib/args';
import { runScript, startEngine, stopEngine } from './lib/engine-proc';
import { trainCommand } from '../src/cli/train';

interface Row {
  name: string;
  result: EvalResult;
  runs: Array<{ status: string; trigger: string; rows: number }>;
}

async function evaluate(name: string, model: string, csv: string, skip: number, env: Record<string, string>): Promise<Row> {
  const work = mkdtempSync(path.join(tmpdir(), 'tradeflow-elec2-ens-'));
  const engine = await startEngine('elec2-ensemble', { MODEL_PATH: model, TRAIN_INTERVAL: '0', CACHE_CAPACITY: '0', ...env }, work);
  const port = engine.port;
  try {
    const result = await runEval({ url: `http://127.0.0.1:${port}`, csv, labelColumn: 'class', positive: 'UP', dropColumns: ['date'], model: 'ensemble', batch: 1, skip, limit: Infinity, token: null, inProcess: false, json: false });
    // Let a run that started near the end finish, so the count is complete.
    for (let i = 0; i < 600; i++) {
      const runs = (await (await fetch(`http://127.0.0.1:${port}/train`)).json()) as { runs: Array<{ status: string; trigger: string; rows: number }> };
      if (!runs.runs.some((r) => r.status === 'running')) return { name, result, runs: runs.runs };
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('a training run did not finish');
  } finally {
    await stopEngine(engine);
    rmSync(work, { recursive: true, force: true });
  }
}

const FLAGS: FlagSpec[] = [
  { name: 'csv', help: 'the Elec2 CSV (default ../shared/data/elec2.csv)' },
  { name: 'initial', help: 'rows the initial ensemble is trained on (default 5000)' },
];

async function main(flags: Map<string, string>): Promise<number> {
  const csv = path.resolve(flags.get('csv') ?? path.join(__dirname, '..', '..', '..', 'shared', 'data', 'elec2.csv'));
  const initial = Math.round(numberFlag(flags, 'initial', 5000, 1, Number.MAX_SAFE_INTEGER));
  const dir = mkdtempSync(path.join(tmpdir(), 'tradeflow-elec2-model-'));
  const model = path.join(dir, 'initial.onnx');
  const out: string[] = [];
  const sink = { write: (s: string) => (out.push(s), true) } as unknown as NodeJS.WritableStream;
  const code = await trainCommand(['--csv', csv, '--label-column', 'class', '--positive', 'UP', '--drop-columns', 'date', '--limit', String(initial), '--out', model], sink, process.stderr);
  if (code !== 0) throw new Error('initial training failed');
  process.stderr.write(out.join(''));
  const rows: Row[] = [];
  rows.push(await evaluate('no retraining', model, csv, initial, {}));
  rows.push(await evaluate('retrain on DDM drift (1,000 rows after it)', model, csv, initial, { TRAIN_ON_DRIFT: 'ddm', TRAIN_DRIFT_MIN_ROWS: '1000' }));
  rows.push(await evaluate('retrain on ADWIN drift (1,000 rows after it)', model, csv, initial, { TRAIN_ON_DRIFT: 'adwin', TRAIN_DRIFT_MIN_ROWS: '1000' }));
  rmSync(dir, { recursive: true, force: true });
  const f = (v: number) => v.toFixed(4);
  const table = [
    `Initial ensemble: trained by \`tradeflow train\` on rows 0–${initial - 1}; evaluated test-then-train on rows ${initial}–end through HTTP.`,
    '',
    '| setting | accuracy | F1 | window acc. min / median / max | runs (promoted / rejected / failed) | previous label | rows/s |',
    '| --- | ---: | ---: | --- | --- | ---: | ---: |',
    ...rows.map((r) => {
      const count = (s: string) => r.runs.filter((x) => x.status === s).length;
      return `| ${r.name} | ${f(r.result.accuracy)} | ${f(r.result.f1)} | ${f(r.result.windows.min)} / ${f(r.result.windows.median)} / ${f(r.result.windows.max)} | ${r.runs.length} (${count('promoted')} / ${count('rejected')} / ${count('failed')}) | ${f(r.result.previousLabelAccuracy)} | ${r.result.rowsPerSecond.toFixed(0)} |`;
    }),
  ];
  process.stdout.write(table.join('\n') + '\n');
  return 0;
}

if (require.main === module) runScript(FLAGS, main);
