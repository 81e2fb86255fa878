/**
 * Prequential evaluation on Elec2 through HTTP: for each SGD setting, a cold-start engine
 * (MODEL_PATH=none, FEATURES=7, fresh state directory) and `tradeflow eval` over the whole
 * stream, test-then-train, one row per request. Prints a markdown table.
 *
 *   npm run build && node dist/bench/elec2-http.js [--csv ../shared/data/elec2.csv] [--limit N]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { runEval, type EvalResult } from '../src/cli/eval';
import { numberFlag, type FlagSpec } from './lib/args';
import { runScript, startEngine, stopEngine } from './lib/engine-proc';

interface Setting {
  name: string;
  env: Record<string, string>;
}

const SETTINGS: Setting[] = [
  { name: 'defaults', env: {} },
  { name: 'constant eta0=0.1, standardized', env: { SGD_LEARNING_RATE: 'constant', SGD_ETA0: '0.1', SGD_STANDARDIZE: 'true' } },
  { name: 'optimal alpha=1e-4, raw (sklearn defaults)', env: { SGD_LEARNING_RATE: 'optimal', SGD_ALPHA: '0.0001', SGD_STANDARDIZE: 'false' } },
  { name: 'optimal alpha=1e-4, standardized', env: { SGD_LEARNING_RATE: 'optimal', SGD_ALPHA: '0.0001', SGD_STANDARDIZE: 'true' } },
  { name: 'invscaling eta0=1 power_t=0.5, standardized', env: { SGD_LEARNING_RATE: 'invscaling', SGD_ETA0: '1', SGD_POWER_T: '0.5', SGD_STANDARDIZE: 'true' } },
];

async function evaluate(setting: Setting, csv: string, limit: number): Promise<EvalResult> {
  const work = mkdtempSync(path.join(tmpdir(), 'tradeflow-elec2-'));
  const engine = await startEngine('elec2', { MODEL_PATH: 'none', FEATURES: '7', ...setting.env }, work);
  try {
    return await runEval({
      url: `http://127.0.0.1:${engine.port}`,
      csv,
      labelColumn: 'class',
      positive: 'UP',
      dropColumns: ['date'],
      model: 'sgd',
      batch: 1,
      skip: 0,
      limit,
      token: null,
      inProcess: false,
      json: false,
    });
  } finally {
    await stopEngine(engine);
    rmSync(work, { recursive: true, force: true });
  }
}

const FLAGS: FlagSpec[] = [
  { name: 'csv', help: 'the Elec2 CSV (default ../shared/data/elec2.csv)' },
  { name: 'limit', help: 'stop after this many rows (default: the whole stream)' },
];

async function main(flags: Map<string, string>): Promise<number> {
  const csv = path.resolve(flags.get('csv') ?? path.join(__dirname, '..', '..', '..', 'shared', 'data', 'elec2.csv'));
  const limit = flags.has('limit') ? Math.round(numberFlag(flags, 'limit', 0, 1, Number.MAX_SAFE_INTEGER)) : Infinity;
  const rows: string[] = [];
  rows.push('| setting | accuracy | precision | recall | F1 | window acc. min / median / max | previous label | rows/s |');
  rows.push('| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |');
  for (const s of SETTINGS) {
    const r = await evaluate(s, csv, limit);
    const f = (v: number) => v.toFixed(4);
    rows.push(`| ${s.name} | ${f(r.accuracy)} | ${f(r.precision)} | ${f(r.recall)} | ${f(r.f1)} | ${f(r.windows.min)} / ${f(r.windows.median)} / ${f(r.windows.max)} | ${f(r.previousLabelAccuracy)} | ${r.rowsPerSecond.toFixed(0)} |`);
    process.stderr.write(`${s.name}: accuracy ${f(r.accuracy)} (${r.rows} rows, ${r.seconds.toFixed(1)} s)\n`);
  }
  process.stdout.write(rows.join('\n') + '\n');
  return 0;
}

if (require.main === module) runScript(FLAGS, main);
