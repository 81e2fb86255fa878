import { describe, expect, it } from 'vitest';
import { Rng, deriveSeed } from '../src/training/rng';
import { simulateMarket, type MarketPath } from '../src/training/market-sim';
import { FEATURE_COUNT, FEATURE_NAMES, WARMUP_PERIODS, buildDataset, splitTimeOrdered } from '../src/training/features';
import { fitStandardizer, standardize } from '../src/training/standardize';
import { logregProba, trainLogreg } from '../src/training/logreg';
import { mlpProba, trainMlp } from '../src/training/mlp';
import { binaryMetrics, majorityBaseline } from '../src/training/metrics';

describe('Rng', () => {
  it('is deterministic for a seed and differs between seeds', () => {
    const draw = (seed: number): number[] => {
      const r = new Rng(seed);
      return Array.from({ length: 50 }, () => r.next());
    };
    expect(draw(123)).toEqual(draw(123));
    expect(draw(123)).not.toEqual(draw(124));
    const g1 = new Rng(9);
    const g2 = new Rng(9);
    for (let i = 0; i < 101; i++) expect(g1.gaussian()).toBe(g2.gaussian());
  });

  it('draws uniforms in [0,1) and standard normals', () => {
    const r = new Rng(2024);
    const n = 100_000;
    let sum = 0;
    let sumSq = 0;
    let outOfRange = 0;
    for (let i = 0; i < n; i++) {
      const u = r.next();
      if (!(u >= 0 && u < 1)) outOfRange++;
      const g = r.gaussian();
      sum += g;
      sumSq += g * g;
    }
    expect(outOfRange).toBe(0);
    const mean = sum / n;
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(Math.abs(Math.sqrt(sumSq / n - mean * mean) - 1)).toBeLessThan(0.02);
  });

  it('derives distinct, stable stream seeds', () => {
    expect(deriveSeed(1, 'a')).toBe(deriveSeed(1, 'a'));
    expect(deriveSeed(1, 'a')).not.toBe(deriveSeed(1, 'b'));
    expect(deriveSeed(1, 'a')).not.toBe(deriveSeed(2, 'a'));
  });

  it('shuffles to a permutation, deterministically', () => {
    const a = new Rng(5).shuffle(Uint32Array.from({ length: 100 }, (_, i) => i));
    const b = new Rng(5).shuffle(Uint32Array.from({ length: 100 }, (_, i) => i));
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a).sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });
});

describe('market simulator', () => {
  it('is deterministic and visits every regime', () => {
    const a = simulateMarket({ seed: 77, periods: 5000 });
    const b = simulateMarket({ seed: 77, periods: 5000 });
    expect(a.close).toEqual(b.close);
    expect(a.volume).toEqual(b.volume);
    expect(a.regime).toEqual(b.regime);
    expect(simulateMarket({ seed: 78, periods: 5000 }).close).not.toEqual(a.close);
    expect(new Set(a.regime).size).toBe(a.regimes.length);
    for (let t = 0; t < a.close.length; t++) {
      expect(Number.isFinite(a.close[t]!) && a.close[t]! > 0).toBe(true);
      expect(a.volume[t]!).toBeGreaterThan(0);
    }
    for (let t = 1; t < a.close.length; t++) {
      expect(a.returns[t]!).toBeCloseTo(Math.log(a.close[t]! / a.close[t - 1]!), 12);
    }
  });
});

describe('features', () => {
  const path = simulateMarket({ seed: 3, periods: 3000 });
  const data = buildDataset(path);

  it('has 16 named, unique columns', () => {
    expect(FEATURE_COUNT).toBe(16);
    expect(FEATURE_NAMES).toHaveLength(16);
    expect(new Set(FEATURE_NAMES).size).toBe(16);
    expect(FEATURE_NAMES.join(',')).toBe(
      'ret_1,ret_3,ret_5,ret_10,ret_20,vol_10,vol_30,vol_ratio_10_30,momentum_z_10,rsi_14,' +
        'sma_ratio_5_20,sma_ratio_20_50,price_z_20,volume_ratio_5_20,volume_z_20,flow_imbalance_5',
    );
  });

  it('labels UP when the next return is positive, and all values are finite', () => {
    expect(data.rows).toBe(3000 - 1 - WARMUP_PERIODS);
    for (let i = 0; i < data.rows; i++) {
      const t = data.period[i]!;
      expect(data.y[i]).toBe(path.returns[t + 1]! > 0 ? 1 : 0);
    }
    for (const v of data.x) expect(Number.isFinite(v)).toBe(true);
    expect(data.x[0]).toBe(path.returns[WARMUP_PERIODS]); // ret_1 of the first row
  });

  it('uses only the past: changing the future leaves earlier rows unchanged', () => {
    const cut = 1500;
    const future: MarketPath = {
      ...path,
      close: path.close.map((c, t) => (t > cut ? c * 1.37 : c)),
      volume: path.volume.map((v, t) => (t > cut ? v * 3 : v)),
      returns: path.returns.map((r, t) => (t === cut + 1 ? r + Math.log(1.37) : r)),
    };
    const changed = buildDataset(future);
    const F = data.features;
    for (let i = 0; i < data.rows; i++) {
      const t = data.period[i]!;
      const row = Array.from(data.x.subarray(i * F, (i + 1) * F));
      const row2 = Array.from(changed.x.subarray(i * F, (i + 1) * F));
      if (t <= cut) expect(row2).toEqual(row);
      if (t === cut + 1) expect(row2).not.toEqual(row);
    }
  });

  it('splits in time order with the last fraction held out', () => {
    const { train, holdout } = splitTimeOrdered(data, 0.2);
    expect(train.rows + holdout.rows).toBe(data.rows);
    expect(holdout.rows).toBe(Math.round(data.rows * 0.2));
    expect(train.period[train.rows - 1]! + 1).toBe(holdout.period[0]);
  });
});

describe('standardizer and metrics', () => {
  it('z-scores the training columns and survives a constant column', () => {
    const x = Float64Array.from([1, 5, 2, 5, 3, 5, 4, 5]); // 4 rows, 2 columns, column 1 constant
    const s = fitStandardizer(x, 4, 2);
    expect(s.mean[0]).toBe(2.5);
    expect(s.std[0]).toBeCloseTo(Math.sqrt(1.25), 12);
    expect(s.std[1]).toBe(1);
    const z = standardize(s, x, 4);
    expect(z[1]).toBe(0);
    expect(z[0]! + z[2]! + z[4]! + z[6]!).toBeCloseTo(0, 12);
  });

  it('computes accuracy, precision, recall, F1 and the majority baseline', () => {
    const y = [1, 1, 0, 0, 1];
    const p = [0.9, 0.2, 0.7, 0.1, 0.6]; // predictions 1,0,1,0,1: tp 2, fp 1, fn 1
    const m = binaryMetrics(y, p);
    expect(m.accuracy).toBeCloseTo(0.6, 12);
    expect(m.precision).toBeCloseTo(2 / 3, 12);
    expect(m.recall).toBeCloseTo(2 / 3, 12);
    expect(m.f1).toBeCloseTo(2 / 3, 12);
    expect(majorityBaseline(y)).toEqual({ label: 1, accuracy: 0.6 });
  });
});

describe('trainers', () => {
  const data = buildDataset(simulateMarket({ seed: 11, periods: 30_000 }));
  const { train, holdout } = splitTimeOrdered(data, 0.2);
  const s = fitStandardizer(train.x, train.rows, train.features);
  const zTrain = standardize(s, train.x, train.rows);
  const zHold = standardize(s, holdout.x, holdout.rows);
  const baseline = majorityBaseline(holdout.y).accuracy;

  it('logistic regression reduces the loss and beats the majority class on the holdout', () => {
    const settings = { epochs: 150, learningRate: 0.5, l2: 1e-4, seed: 4 };
    const { model, lossHistory } = trainLogreg(zTrain, train.y, train.rows, train.features, settings);
    expect(lossHistory).toHaveLength(151);
    expect(lossHistory.at(-1)!).toBeLessThan(lossHistory[0]! - 0.005);
    for (let i = 1; i < lossHistory.length; i++) expect(lossHistory[i]!).toBeLessThanOrEqual(lossHistory[i - 1]! + 1e-12);
    const acc = binaryMetrics(holdout.y, logregProba(model, zHold, holdout.rows)).accuracy;
    expect(acc).toBeGreaterThan(baseline + 0.03);
    const again = trainLogreg(zTrain, train.y, train.rows, train.features, settings).model;
    expect(again.weights).toEqual(model.weights);
    expect(again.bias).toBe(model.bias);
  });

  it('MLP reduces the loss, beats the majority class on the holdout and is deterministic', () => {
    const settings = { hidden: 16, epochs: 4, batchSize: 256, learningRate: 0.003, l2: 1e-4, seed: 4 };
    const { model, lossHistory } = trainMlp(zTrain, train.y, train.rows, train.features, settings);
    expect(lossHistory).toHaveLength(5);
    expect(lossHistory.at(-1)!).toBeLessThan(lossHistory[0]!);
    expect(lossHistory.at(-1)!).toBeLessThan(lossHistory[1]!);
    const acc = binaryMetrics(holdout.y, mlpProba(model, zHold, holdout.rows)).accuracy;
    expect(acc).toBeGreaterThan(baseline + 0.03);
    const again = trainMlp(zTrain, train.y, train.rows, train.features, settings).model;
    expect(again.w1).toEqual(model.w1);
    expect(again.w2).toEqual(model.w2);
    expect(again.b2).toBe(model.b2);
  });
});
