/**
 * Reads the Prometheus text exposition format (version 0.0.4, what GET /monitoring/metrics
 * serves): every sample with its labels unescaped, each family's TYPE and HELP, and the two
 * questions asked of a scrape: a counter summed over the series that match some labels, and a
 * histogram's cumulative buckets.
 *
 * It imports nothing from the rest of the engine, so a client (benchmarks, tests, a load
 * generator reading a remote engine's latency histogram) can use it without starting one.
 */

export interface Sample {
  /** As exposed: a histogram's series are `<name>_bucket`, `<name>_sum` and `<name>_count`. */
  name: string;
  labels: Record<string, string>;
  /** NaN, +Inf and -Inf are kept as such. */
  value: number;
  /** Milliseconds since the epoch, when the line carries one. */
  timestampMs?: number;
}

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Exposition {
  samples: Sample[];
  /** Family name → type, from `# TYPE` lines. */
  types: Map<string, MetricType>;
  /** Family name → docstring (unescaped), from `# HELP` lines. */
  help: Map<string, string>;
}

export class PrometheusTextError extends Error {}

const NAME = /[a-zA-Z_:][a-zA-Z0-9_:]*/y;
const LABEL_NAME = /[a-zA-Z_][a-zA-Z0-9_]*/y;
const FLOAT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const TYPES = new Set<string>(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/** Throws PrometheusTextError naming the line of anything that is not the format. */
export function parsePrometheusText(text: string): Exposition {
  const out: Exposition = { samples: [], types: new Map(), help: new Map() };
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    try {
      if (line.trim() === '') continue;
      if (line.startsWith('#')) readComment(line, out);
      else out.samples.push(readSample(line));
    } catch (err) {
      throw new PrometheusTextError(`line ${i + 1}: ${(err as Error).message}: ${line.slice(0, 200)}`);
    }
  }
  return out;
}

function readComment(line: string, out: Exposition): void {
  const m = /^#\s+(HELP|TYPE)\s+([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\s(.*))?$/.exec(line);
  if (!m) return; // any other comment carries nothing
  const [, keyword, name, rest = ''] = m;
  if (keyword === 'HELP') {
    out.help.set(name!, unescapeText(rest, false));
    return;
  }
  const type = rest.trim();
  if (!TYPES.has(type)) throw new Error(`unknown metric type "${type}"`);
  out.types.set(name!, type as MetricType);
}

function readSample(line: string): Sample {
  let at = 0;
  const skipSpace = (): void => {
    while (line[at] === ' ' || line[at] === '\t') at++;
  };
  const token = (re: RegExp, what: string): string => {
    re.lastIndex = at;
    const m = re.exec(line);
    if (!m) throw new Error(`expected ${what} at column ${at + 1}`);
    at += m[0].length;
    return m[0];
  };
  const name = token(NAME, 'a metric name');
  const labels: Record<string, string> = {};
  skipSpace();
  if (line[at] === '{') {
    at++;
    for (skipSpace(); line[at] !== '}'; skipSpace()) {
      const label = token(LABEL_NAME, 'a label name');
      skipSpace();
      if (line[at++] !== '=') throw new Error(`expected "=" after label ${label}`);
      skipSpace();
      if (line[at++] !== '"') throw new Error(`expected a quoted value for label ${label}`);
      const end = closingQuote(line, at);
      if (end === -1) throw new Error(`unterminated value of label ${label}`);
      if (label in labels) throw new Error(`label ${label} given twice`);
      labels[label] = unescapeText(line.slice(at, end), true);
      at = end + 1;
      skipSpace();
      if (line[at] === ',') at++;
      else if (line[at] !== '}') throw new Error(`expected "," or "}" after label ${label}`);
    }
    at++;
  }
  const [value, timestamp, ...extra] = line.slice(at).trim().split(/[ \t]+/);
  if (value === undefined || value === '') throw new Error('no value');
  if (extra.length > 0) throw new Error('unexpected text after the timestamp');
  const sample: Sample = { name, labels, value: parseSampleValue(value) };
  if (timestamp !== undefined) {
    if (!/^-?\d+$/.test(timestamp)) throw new Error(`bad timestamp "${timestamp}"`);
    sample.timestampMs = Number(timestamp);
  }
  return sample;
}

/** Index of the `"` that ends a label value starting at `from` (escapes skipped), or -1. */
function closingQuote(line: string, from: number): number {
  for (let i = from; i < line.length; i++) {
    if (line[i] === '\\') i++;
    else if (line[i] === '"') return i;
  }
  return -1;
}

/** Label values escape `\`, `"` and newline; HELP docstrings only `\` and newline. */
function unescapeText(s: string, quotes: boolean): string {
  return s.replace(/\\(.)/g, (all, c: string) => (c === 'n' ? '\n' : c === '\\' || (quotes && c === '"') ? c : all));
}

/** A sample value: a float, or Go's spellings of the specials (`+Inf`, `-Inf`, `NaN`, any case). */
export function parseSampleValue(raw: string): number {
  const lower = raw.toLowerCase();
  if (lower === 'nan') return NaN;
  if (lower === '+inf' || lower === 'inf') return Infinity;
  if (lower === '-inf') return -Infinity;
  if (!FLOAT.test(raw)) throw new Error(`bad value "${raw}"`);
  return Number(raw);
}

/** True when the sample has every label of `selector` with that value (others may differ). */
export function matchesLabels(sample: Sample, selector: Readonly<Record<string, string>>): boolean {
  for (const k in selector) if (sample.labels[k] !== selector[k]) return false;
  return true;
}

/** The sample of `name` with exactly these labels, no more, no fewer. */
export function findSample(samples: readonly Sample[], name: string, labels: Readonly<Record<string, string>> = {}): Sample | undefined {
  const n = Object.keys(labels).length;
  return samples.find((s) => s.name === name && Object.keys(s.labels).length === n && matchesLabels(s, labels));
}

/** Sum of the values of `name` over every series whose labels include `selector`; 0 for none. */
export function sumSamples(samples: readonly Sample[], name: string, selector: Readonly<Record<string, string>> = {}): number {
  let total = 0;
  for (const s of samples) if (s.name === name && matchesLabels(s, selector)) total += s.value;
  return total;
}

export interface Bucket {
  /** Upper bound; the last bucket's is Infinity (`le="+Inf"`). */
  le: number;
  /** Cumulative: observations <= le. */
  count: number;
}

/**
 * The cumulative buckets of histogram `name` (its `<name>_bucket` series), summed over the series
 * whose labels include `selector` (as PromQL's `sum by (le)`), in increasing `le`.
 */
export function histogramBuckets(samples: readonly Sample[], name: string, selector: Readonly<Record<string, string>> = {}): Bucket[] {
  const byLe = new Map<number, number>();
  for (const s of samples) {
    if (s.name !== `${name}_bucket` || !matchesLabels(s, selector)) continue;
    const raw = s.labels.le;
    if (raw === undefined) throw new PrometheusTextError(`${s.name} sample without an le label`);
    const le = parseSampleValue(raw);
    byLe.set(le, (byLe.get(le) ?? 0) + s.value);
  }
  return [...byLe].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
}
