/**
 * The F = 16 features of the UP/DOWN classifier and the label, computed from a price/volume
 * path. Row t uses only closes and volumes up to and including period t; its label is the
 * sign of the return from t to t+1. The order of FEATURES is the column order of every
 * model trained here and of the ONNX input, so it never changes silently: a new feature set
 * is a new model.
 */
import type { MarketPath } from './market-sim';

export interface FeatureSpec {
  readonly name: string;
  readonly meaning: string;
}

export const FEATURES: readonly FeatureSpec[] = Object.freeze([
  { name: 'ret_1', meaning: 'log return of the last period, ln(c[t]/c[t-1])' },
  { name: 'ret_3', meaning: 'log return over the last 3 periods, ln(c[t]/c[t-3])' },
  { name: 'ret_5', meaning: 'log return over the last 5 periods' },
  { name: 'ret_10', meaning: 'log return over the last 10 periods' },
  { name: 'ret_20', meaning: 'log return over the last 20 periods' },
  { name: 'vol_10', meaning: 'standard deviation of the last 10 one-period log returns' },
  { name: 'vol_30', meaning: 'standard deviation of the last 30 one-period log returns' },
  { name: 'vol_ratio_10_30', meaning: 'vol_10 / vol_30: is volatility rising (> 1) or falling' },
  { name: 'momentum_z_10', meaning: 'ret_10 / (vol_30 * sqrt(10)): 10-period move in units of its expected size' },
  { name: 'rsi_14', meaning: 'relative strength index over 14 periods, 0..100 (sum of gains / sum of absolute moves)' },
  { name: 'sma_ratio_5_20', meaning: 'mean close of 5 periods / mean close of 20 periods - 1' },
  { name: 'sma_ratio_20_50', meaning: 'mean close of 20 periods / mean close of 50 periods - 1' },
  { name: 'price_z_20', meaning: '(close - mean close of 20) / standard deviation of the 20 closes' },
  { name: 'volume_ratio_5_20', meaning: 'mean volume of 5 periods / mean volume of 20 periods' },
  { name: 'volume_z_20', meaning: 'z-score of ln(volume) against the last 20 periods' },
  { name: 'flow_imbalance_5', meaning: 'sum(sign(return) * volume) / sum(volume) over 5 periods, -1..1' },
]);

export const FEATURE_NAMES: readonly string[] = Object.freeze(FEATURES.map((f) => f.name));
export const FEATURE_COUNT = FEATURES.length;

/** Periods of history a row needs (the 50-period moving average and 30 returns). */
export const WARMUP_PERIODS = 50;

export interface Dataset {
  /** Row-major `[rows, FEATURE_COUNT]`. */
  readonly x: Float64Array;
  /** 1 = UP (next-period return > 0), 0 = DOWN. */
  readonly y: Uint8Array;
  readonly rows: number;
  readonly features: number;
  /** The period of the path each row describes. */
  readonly period: Uint32Array;
}

/** One row per period t in [WARMUP_PERIODS, periods - 2]; the last period has no label. */
export function buildDataset(path: MarketPath): Dataset {
  const { close, volume, returns } = path;
  const periods = close.length;
  const rows = Math.max(0, periods - 1 - WARMUP_PERIODS);
  const F = FEATURE_COUNT;
  const x = new Float64Array(rows * F);
  const y = new Uint8Array(rows);
  const period = new Uint32Array(rows);
  const logVolume = volume.map((v) => Math.log(v));

  for (let i = 0; i < rows; i++) {
    const t = WARMUP_PERIODS + i;
    const o = i * F;
    const ret = (h: number): number => Math.log(close[t]! / close[t - h]!);
    const vol10 = std(returns, t - 9, t);
    const vol30 = std(returns, t - 29, t);
    const sma5 = mean(close, t - 4, t);
    const sma20 = mean(close, t - 19, t);
    const sma50 = mean(close, t - 49, t);
    const closeSd20 = std(close, t - 19, t);
    const lvMean = mean(logVolume, t - 19, t);
    const lvSd = std(logVolume, t - 19, t);

    x[o + 0] = returns[t]!;
    x[o + 1] = ret(3);
    x[o + 2] = ret(5);
    x[o + 3] = ret(10);
    x[o + 4] = ret(20);
    x[o + 5] = vol10;
    x[o + 6] = vol30;
    x[o + 7] = safeDiv(vol10, vol30, 1);
    x[o + 8] = safeDiv(ret(10), vol30 * Math.sqrt(10), 0);
    x[o + 9] = rsi(returns, t - 13, t);
    x[o + 10] = sma5 / sma20 - 1;
    x[o + 11] = sma20 / sma50 - 1;
    x[o + 12] = safeDiv(close[t]! - sma20, closeSd20, 0);
    x[o + 13] = safeDiv(mean(volume, t - 4, t), mean(volume, t - 19, t), 1);
    x[o + 14] = safeDiv(logVolume[t]! - lvMean, lvSd, 0);
    x[o + 15] = flowImbalance(returns, volume, t - 4, t);

    y[i] = returns[t + 1]! > 0 ? 1 : 0;
    period[i] = t;
  }
  return { x, y, rows, features: F, period };
}

/** Rows [from, to) of a dataset, sharing no memory with it. */
export function sliceRows(data: Dataset, from: number, to: number): Dataset {
  const F = data.features;
  return {
    x: data.x.slice(from * F, to * F),
    y: data.y.slice(from, to),
    rows: to - from,
    features: F,
    period: data.period.slice(from, to),
  };
}

/** Time-ordered split: the first rows train, the last `holdoutFraction` are held out. */
export function splitTimeOrdered(data: Dataset, holdoutFraction: number): { train: Dataset; holdout: Dataset } {
  if (!(holdoutFraction > 0 && holdoutFraction < 1)) {
    throw new RangeError(`holdoutFraction must be in (0, 1), got ${holdoutFraction}`);
  }
  const cut = Math.round(data.rows * (1 - holdoutFraction));
  return { train: sliceRows(data, 0, cut), holdout: sliceRows(data, cut, data.rows) };
}

function mean(a: ArrayLike<number>, from: number, to: number): number {
  let s = 0;
  for (let i = from; i <= to; i++) s += a[i]!;
  return s / (to - from + 1);
}

/** Population standard deviation of a[from..to] (inclusive). */
function std(a: ArrayLike<number>, from: number, to: number): number {
  const m = mean(a, from, to);
  let s = 0;
  for (let i = from; i <= to; i++) {
    const d = a[i]! - m;
    s += d * d;
  }
  return Math.sqrt(s / (to - from + 1));
}

function rsi(returns: ArrayLike<number>, from: number, to: number): number {
  let gains = 0;
  let moves = 0;
  for (let i = from; i <= to; i++) {
    const r = returns[i]!;
    if (r > 0) gains += r;
    moves += Math.abs(r);
  }
  return moves > 0 ? (100 * gains) / moves : 50;
}

function flowImbalance(returns: ArrayLike<number>, volume: ArrayLike<number>, from: number, to: number): number {
  let signed = 0;
  let total = 0;
  for (let i = from; i <= to; i++) {
    signed += Math.sign(returns[i]!) * volume[i]!;
    total += volume[i]!;
  }
  return safeDiv(signed, total, 0);
}

/** A flat window (zero spread) has no scale; fall back to the neutral value instead of NaN. */
function safeDiv(num: number, den: number, neutral: number): number {
  return den > 0 ? num / den : neutral;
}
