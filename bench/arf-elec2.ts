/**
 * The adaptive random forest on Elec2, in-process, test-then-train over the whole stream in file
 * order (the rows rounded to float32, as the HTTP path stores them): River's defaults and the
 * settings around them (leaf prediction, trees, features per leaf, grace period, lambda, split
 * criterion, seeds), each with accuracy, the 1,000-row window accuracies and the forest's
 * adaptations. What chose the engine's defaults; the HTTP figure is `tradeflow eval --model arf`.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/arf-elec2.js [path/to/elec2.csv]
 */
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { readLabelledCsv } from '../src/io/csv';
import { AdaptiveRandomForest, DEFAULT_ARF_OPTIONS, type ArfOptions } from '../src/learning/arf/forest';

const RIVER: Partial<ArfOptions> = { maxFeatures: 0 }; // River's max_features="sqrt"; the rest of DEFAULT_ARF_OPTIONS are River's

const CONFIGS: Array<[string, Partial<ArfOptions>]> = [
  ['River defaults (10 trees, sqrt → 3 features, nba, grace 50, λ 6, info gain)', RIVER],
  ['River defaults, leaf prediction mc', { ...RIVER, leafPrediction: 'mc' }],
  ['River defaults, gini', { ...RIVER, splitCriterion: 'gini' }],
  ['River defaults, grace 25', { ...RIVER, gracePeriod: 25 }],
  ['River defaults, grace 100', { ...RIVER, gracePeriod: 100 }],
  ['River defaults, λ 3', { ...RIVER, lambda: 3 }],
  ['River defaults, 20 trees', { ...RIVER, trees: 20 }],
  ['**engine defaults** (4 features per leaf)', {}],
  ['engine defaults, seed 1', { seed: 1 }],
  ['engine defaults, seed 2', { seed: 2 }],
  ['engine defaults, 20 trees', { trees: 20 }],
  ['engine defaults, 20 trees, seed 1', { trees: 20, seed: 1 }],
];

async function main(): Promise<void> {
  const file = process.argv[2] ?? path.join(__dirname, '..', '..', '..', 'shared', 'data', 'elec2.csv');
  const data = await readLabelledCsv(file, { labelColumn: 'class', positive: 'UP', dropColumns: ['date'] });
  const F = data.features.length;
  const x = Float32Array.from(data.rows);
  const y = data.labels;
  const n = y.length;
  console.log(`Elec2: ${n} rows, ${F} features (${data.features.join(', ')}); node ${process.version}\n`);
  console.log('| settings | accuracy | windows min / median / max | warnings | trees replaced | nodes at the end | µs per row |');
  console.log('| --- | ---: | --- | ---: | ---: | ---: | ---: |');
  for (const [name, o] of CONFIGS) {
    const forest = new AdaptiveRandomForest({ ...DEFAULT_ARF_OPTIONS, features: F, ...o });
    let right = 0;
    let inWindow = 0;
    const windows: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const ok = (forest.learn(x, i * F, y[i] as 0 | 1) > 0.5 ? 1 : 0) === y[i] ? 1 : 0;
      right += ok;
      inWindow += ok;
      if ((i + 1) % 1000 === 0) {
        windows.push(inWindow / 1000);
        inWindow = 0;
      }
    }
    const us = ((performance.now() - t0) * 1000) / n;
    windows.sort((a, b) => a - b);
    const w = `${windows[0]!.toFixed(3)} / ${windows[Math.floor(windows.length / 2)]!.toFixed(3)} / ${windows[windows.length - 1]!.toFixed(3)}`;
    console.log(`| ${name} | ${(right / n).toFixed(4)} | ${w} | ${forest.warnings} | ${forest.replaced} | ${forest.shape().nodes} | ${us.toFixed(1)} |`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
