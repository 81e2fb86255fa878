/**
 * Durations on the load tool's command line ("10s", "500ms", "250us", "2m"; a bare number is
 * seconds, as wrk's -d is) and latencies in its report, in the unit that keeps three digits.
 */
import { tfError } from '../errors';

const MS_PER_UNIT: Readonly<Record<string, number>> = { us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000 };

/** Milliseconds; throws CONFIG_INVALID naming the flag. Zero only where `allowZero`. */
export function parseDuration(flag: string, raw: string, allowZero = false): number {
  const m = /^(\d+(?:\.\d+)?|\.\d+)(us|µs|ms|s|m)?$/.exec(raw.trim());
  const ms = m ? Number(m[1]) * MS_PER_UNIT[m[2] ?? 's']! : NaN;
  if (!Number.isFinite(ms) || ms < 0 || (ms === 0 && !allowZero)) {
    const what = allowZero ? 'a duration' : 'a duration above 0';
    throw tfError('CONFIG_INVALID', `${flag} must be ${what} such as 10s, 500ms, 250us or 2m (a bare number is seconds), got "${raw}"`);
  }
  return ms;
}

/** A positive number (rates: "1000", "2.5"); throws CONFIG_INVALID naming the flag. */
export function parsePositive(flag: string, raw: string): number {
  const v = /^(\d+(?:\.\d+)?|\.\d+)$/.test(raw.trim()) ? Number(raw) : NaN;
  if (!(v > 0) || !Number.isFinite(v)) throw tfError('CONFIG_INVALID', `${flag} must be a number above 0, got "${raw}"`);
  return v;
}

/** "812 µs", "1.23 ms", "45.6 ms", "1.50 s": three significant digits in the unit that fits. */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 1) return `${(ms * 1000).toPrecision(3)} µs`;
  if (ms < 1000) return `${ms.toPrecision(3)} ms`;
  return `${(ms / 1000).toPrecision(3)} s`;
}

/** "1,234.5/s" style rate. */
export function formatRate(perSecond: number): string {
  return `${perSecond.toLocaleString('en-US', { maximumFractionDigits: perSecond < 100 ? 1 : 0 })}/s`;
}
