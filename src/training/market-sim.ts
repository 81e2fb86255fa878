/**
 * Seeded synthetic market: one instrument, one price and one volume per period, driven by a
 * hidden Markov chain of regimes (bull, bear, sideways, high volatility) that differ in
 * drift, volatility and volume. Two things make the next move partly predictable, as
 * momentum and mean reversion do in real markets: a slow latent trend shared by all regimes
 * (visible in returns over tens of periods, usable by a linear model), and the
 * autocorrelation of returns, which is positive in trending regimes and negative in the
 * quiet sideways one (a model has to infer the regime from volatility to use it, which is
 * what the MLP adds over the logistic regression). The rest is noise: accuracy near 0.6 is
 * the ceiling by design, not a training failure.
 */
import { Rng } from './rng';

export interface RegimeSpec {
  readonly name: string;
  /** Mean log return per period. */
  readonly drift: number;
  /** Standard deviation of the return shock per period. */
  readonly volatility: number;
  /** AR(1) coefficient of returns: > 0 momentum, < 0 mean reversion. */
  readonly persistence: number;
  /** Typical volume in this regime (arbitrary units). */
  readonly volumeLevel: number;
  /** Probability of staying in this regime from one period to the next. */
  readonly stay: number;
}

export interface MarketSimOptions {
  readonly seed: number;
  readonly periods: number;
  readonly startPrice?: number;
  readonly regimes?: readonly RegimeSpec[];
  readonly trend?: TrendSpec;
}

/**
 * A slow latent trend added to every regime's drift (time-series momentum): an AR(1) with
 * persistence close to 1, so that returns over tens of periods carry information about the
 * next one.
 */
export interface TrendSpec {
  readonly persistence: number;
  /** Standard deviation of the trend's innovation per period. */
  readonly noise: number;
}

export const DEFAULT_TREND: TrendSpec = Object.freeze({ persistence: 0.98, noise: 0.0004 });

export interface MarketPath {
  readonly close: Float64Array;
  readonly volume: Float64Array;
  /** Log return into period t (`returns[0]` is 0). */
  readonly returns: Float64Array;
  /** Index into `regimes` of the regime in force at period t. */
  readonly regime: Uint8Array;
  readonly regimes: readonly RegimeSpec[];
}

export const DEFAULT_REGIMES: readonly RegimeSpec[] = Object.freeze([
  { name: 'bull', drift: 0.0006, volatility: 0.008, persistence: 0.3, volumeLevel: 1.0, stay: 0.995 },
  { name: 'bear', drift: -0.0008, volatility: 0.012, persistence: 0.3, volumeLevel: 1.3, stay: 0.993 },
  { name: 'sideways', drift: 0, volatility: 0.004, persistence: -0.3, volumeLevel: 0.7, stay: 0.995 },
  { name: 'high_vol', drift: 0, volatility: 0.022, persistence: 0.1, volumeLevel: 2.0, stay: 0.98 },
]);

/** How strongly volume reacts to the size of the move (in units of the regime's volatility). */
const VOLUME_MOVE_SENSITIVITY = 0.35;
/** Log-normal noise on volume. */
const VOLUME_NOISE = 0.25;

export function simulateMarket(options: MarketSimOptions): MarketPath {
  const { seed, periods } = options;
  const regimes = options.regimes ?? DEFAULT_REGIMES;
  if (!Number.isInteger(periods) || periods < 2) {
    throw new RangeError(`periods must be an integer >= 2, got ${periods}`);
  }
  if (regimes.length === 0 || regimes.length > 255) {
    throw new RangeError(`between 1 and 255 regimes are needed, got ${regimes.length}`);
  }
  const rng = new Rng(seed);
  const close = new Float64Array(periods);
  const volume = new Float64Array(periods);
  const returns = new Float64Array(periods);
  const regime = new Uint8Array(periods);

  let k = rng.int(regimes.length);
  let logPrice = Math.log(options.startPrice ?? 100);
  close[0] = Math.exp(logPrice);
  volume[0] = regimes[k]!.volumeLevel;
  regime[0] = k;
  const trendSpec = options.trend ?? DEFAULT_TREND;
  let trend = 0;
  let prevReturn = 0;

  for (let t = 1; t < periods; t++) {
    k = nextRegime(rng, regimes, k);
    const spec = regimes[k]!;
    trend = trendSpec.persistence * trend + trendSpec.noise * rng.gaussian();
    const shock = rng.gaussian();
    const r = spec.drift + trend + spec.persistence * prevReturn + spec.volatility * shock;
    logPrice += r;
    close[t] = Math.exp(logPrice);
    returns[t] = r;
    regime[t] = k;
    const moveSize = Math.abs(r) / spec.volatility;
    volume[t] = spec.volumeLevel * (1 + VOLUME_MOVE_SENSITIVITY * moveSize) * Math.exp(VOLUME_NOISE * rng.gaussian());
    prevReturn = r;
  }
  return { close, volume, returns, regime, regimes };
}

/** One step of the regime chain: stay with probability `stay`, else jump uniformly elsewhere. */
function nextRegime(rng: Rng, regimes: readonly RegimeSpec[], current: number): number {
  if (regimes.length === 1 || rng.next() < regimes[current]!.stay) return current;
  const other = rng.int(regimes.length - 1);
  return other >= current ? other + 1 : other;
}
