/**
 * Champion routing on Elec2 (issue 16). An initial ensemble is trained (`tradeflow train`) on the
 * first rows of the stream and configured as the default model; the rest of the stream goes through
 * the engine test-then-train with `tradeflow eval`. Rows: the default route under SERVE_POLICY=fixed
 * (the ensemble), each online model named explicitly on the same setup, and the default route under
 * SERVE_POLICY=champion for several CHAMPION_MARGINs; with --drift, the same with ADWIN-triggered
 * retraining. Each row is its own engine with a fresh state directory.
 *
 *   npm run build && node dist/bench/elec2-champion.js [--csv ../shared/data/elec2.csv] [--initial 5000]
 *     [--online sgd,arf] [--margins 0,0.01,0.02,0.05] [--windows 1000,500] [--drift] [--without-arf]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { runEval, type EvalResult } from '../src/cli/eval';
import { trainCommand } from '../src/cli/train';
import { readLabelledCsv } from '../src/io/csv';
import { numberFlag, type FlagSpec } from './lib/args';
import { runScript, startEngine, stopEngine } from './lib/engine-proc';

interface Setup {
  name: string;
  model: string;
  env: Record<string, string>;
}

interface Row {
  setup: Setup;
  result: EvalResult;
  champion: { switches: number; model: string; candidates: Array<{ name: string; accuracy: number | null }> } | null;
}

async function evaluate(setup: Setup, modelPath: string, csv: string, skip: number, base: Record<string, string>): Promise<Row> {
  const work = mkdtempSync(path.join(tmpdir(), 'tradeflow-elec2-champion-'));
  const engine = await startEngine('elec2-champion', { MODEL_PATH: modelPath, TRAIN_INTERVAL: '0', CACHE_CAPACITY: '0', ...base, ...setup.env }, work);
  try {
    const keepPredictions = setup.model !== 'default' || setup.env.SERVE_POLICY === 'fixed';
    const result = await runEval({ url: `http://127.0.0.1:${engine.port}`, csv, labelColumn: 'class', positive: 'UP', dropColumns: ['date'], model: setup.model, batch: 1, skip, limit: Infinity, token: null, inProcess: false, json: false, keepPredictions });
    const models = (await (await fetch(`http://127.0.0.1:${engine.port}/models`)).json()) as { champion?: Row['champion'] };
    process.stderr.write(`${setup.name}: ${result.accuracy.toFixed(4)} ${JSON.stringify(result.servedBy)}\n`);
    return { setup, result, champion: models.champion ?? null };
  } finally {
    await stopEngine(engine);
    rmSync(work, { recursive: true, force: true });
  }
}

const FLAGS: FlagSpec[] = [
  { name: 'csv', help: 'the Elec2 CSV (default ../shared/data/elec2.csv)' },
  { name: 'initial', help: 'rows the initial ensemble is trained on (default 5000)' },
  { name: 'margins', help: 'CHAMPION_MARGIN values, comma-separated (default 0,0.01,0.02,0.05)' },
  { name: 'online', help: 'online models to run named, comma-separated (default sgd; add arf when it is served)' },
  { name: 'windows', help: 'QUALITY_WINDOW values for the champion rows, comma-separated (default 1000)' },
  { name: 'drift', help: 'also run with TRAIN_ON_DRIFT=adwin (1,000 rows after the drift)', switch: true },
  { name: 'drift-only', help: 'run only with TRAIN_ON_DRIFT=adwin', switch: true },
  { name: 'without-arf', help: 'ARF_ENABLED=false in every engine: the candidates are the ensemble and sgd', switch: true },
];

function setups(flags: Map<string, string>): Setup[] {
  const margins = (flags.get('margins') ?? '0,0.01,0.02,0.05').split(',').map((m) => m.trim());
  const online = (flags.get('online') ?? 'sgd').split(',').map((m) => m.trim());
  const windows = (flags.get('windows') ?? '1000').split(',').map((m) => m.trim());
  const variants: Array<{ label: string; env: Record<string, string> }> = flags.has('drift-only') ? [] : [{ label: '', env: {} }];
  if (flags.has('drift') || flags.has('drift-only')) variants.push({ label: ', retrain on ADWIN drift', env: { TRAIN_ON_DRIFT: 'adwin', TRAIN_DRIFT_MIN_ROWS: '1000' } });
  const out: Setup[] = [];
  for (const v of variants) {
    out.push({ name: `fixed: default route (ensemble)${v.label}`, model: 'default', env: { SERVE_POLICY: 'fixed', ...v.env } });
    for (const m of online) out.push({ name: `${m} named${v.label}`, model: m, env: { SERVE_POLICY: 'fixed', ...v.env } });
    for (const w of windows) {
      for (const margin of margins) {
        const label = `champion, margin ${margin}${w === '1000' ? '' : `, window ${w}`}: default route${v.label}`;
        out.push({ name: label, model: 'default', env: { SERVE_POLICY: 'champion', CHAMPION_MARGIN: margin, QUALITY_WINDOW: w, ...v.env } });
      }
    }
  }
  return out;
}

function table(rows: Row[], initial: number): string {
  const f = (v: number) => v.toFixed(4);
  return [
    `Initial ensemble: trained by \`tradeflow train\` on rows 0–${initial - 1}; rows ${initial}–end test-then-train through HTTP, one row per request.`,
    '',
    '| setting | accuracy | F1 | window acc. min / median / max | rows served by | switches | final window accuracy | previous label | rows/s |',
    '| --- | ---: | ---: | --- | --- | ---: | --- | ---: | ---: |',
    ...rows.map((r) => {
      const served = Object.entries(r.result.servedBy).map(([m, n]) => `${m} ${n}`).join(', ');
      const c = r.champion;
      const finals = c ? c.candidates.map((x) => `${x.name} ${x.accuracy === null ? 'n/a' : f(x.accuracy)}`).join(', ') : '';
      const switches = c && r.setup.env.SERVE_POLICY === 'champion' ? String(c.switches) : '—';
      const w = r.result.windows;
      return `| ${r.setup.name} | ${f(r.result.accuracy)} | ${f(r.result.f1)} | ${f(w.min)} / ${f(w.median)} / ${f(w.max)} | ${served} | ${switches} | ${finals} | ${f(r.result.previousLabelAccuracy)} | ${r.result.rowsPerSecond.toFixed(0)} |`;
    }),
  ].join('\n');
}

async function main(flags: Map<string, string>): Promise<number> {
  const csv = path.resolve(flags.get('csv') ?? path.join(__dirname, '..', '..', '..', 'shared', 'data', 'elec2.csv'));
  const initial = Math.round(numberFlag(flags, 'initial', 5000, 1, Number.MAX_SAFE_INTEGER));
  const dir = mkdtempSync(path.join(tmpdir(), 'tradeflow-elec2-model-'));
  const model = path.join(dir, 'initial.onnx');
  const sink = { write: () => true } as unknown as NodeJS.WritableStream;
  const code = await trainCommand(['--csv', csv, '--label-column', 'class', '--positive', 'UP', '--drop-columns', 'date', '--limit', String(initial), '--out', model], sink, process.stderr);
  if (code !== 0) throw new Error('initial training failed');
  const base: Record<string, string> = flags.has('without-arf') ? { ARF_ENABLED: 'false' } : {};
  const rows: Row[] = [];
  try {
    for (const s of setups(flags)) rows.push(await evaluate(s, model, csv, initial, base));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(table(rows, initial) + '\n\n' + (await bounds(rows, csv, initial)) + '\n');
  return 0;
}

/**
 * What any default route built from these models could reach, from the named runs' own answers
 * (each model learns every row whoever serves, so its answers are the same in every run): a row
 * oracle (right whenever one model is), a window oracle (the best model of each 1,000-row window,
 * in hindsight) and follow-the-leader (each window served by the best model of the window before).
 */
async function bounds(rows: Row[], csv: string, initial: number): Promise<string> {
  const named = rows.filter((r) => r.result.predictions && !r.setup.env.TRAIN_ON_DRIFT);
  if (named.length < 2) return '';
  const data = await readLabelledCsv(csv, { labelColumn: 'class', positive: 'UP', dropColumns: ['date'] });
  const y = data.labels.subarray(initial);
  const n = y.length;
  let anyRight = 0;
  for (let i = 0; i < n; i++) if (named.some((r) => r.result.predictions![i] === y[i])) anyRight++;
  const W = 1000;
  const windows = Math.floor(n / W);
  let oracle = 0;
  let leader = 0;
  let prevBest = 0;
  for (let k = 0; k < windows; k++) {
    const acc = named.map((r) => r.result.windows.accuracies[k]!);
    oracle += Math.max(...acc);
    leader += acc[prevBest]!;
    prevBest = acc.indexOf(Math.max(...acc));
  }
  const f = (v: number) => v.toFixed(4);
  return [
    `Bounds from the named runs (${named.map((r) => r.setup.name).join('; ')}), rows ${initial}–end:`,
    `- row oracle (a row counts when any of them is right): ${f(anyRight / n)}`,
    `- window oracle (the best of them in each of ${windows} windows of ${W} rows, in hindsight): ${f(oracle / windows)}`,
    `- follow the leader (each window served by the best of the window before): ${f(leader / windows)}`,
    `- per-window accuracy: ${named.map((r) => `${r.setup.name} [${r.result.windows.accuracies.map((a) => a.toFixed(3)).join(' ')}]`).join('; ')}`,
  ].join('\n');
}

if (require.main === module) runScript(FLAGS, main);
