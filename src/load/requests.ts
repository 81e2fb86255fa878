/**
 * The requests a load run sends: the served model's F (GET /models, or --features), the rows
 * (a CSV through the project's reader, or generated), and the whole HTTP requests built from
 * them once, before the run, so that sending one is a single socket write.
 */
import * as fs from 'node:fs';
import { tfError } from '../errors';
import { readLabelledCsv } from '../io/csv';
import type { Target } from './connection';
import type { RequestShape, ShapeTarget } from './shapes';

export interface FeatureRows {
  rows: Float64Array;
  count: number;
  features: number;
  /** For the report: "generated (seed 1)" or the CSV's path. */
  source: string;
}

/**
 * Generated rows are cycled: more distinct rows than the engine's default prediction cache holds
 * (CACHE_CAPACITY 10000), so 1-row requests in rotation miss an LRU cache every time and the
 * run measures the model, not the cache.
 */
export const GENERATED_ROWS = 20_000;
const MAX_POOL_BYTES = 128 * 1024 * 1024;

export interface ServedModel {
  name: string;
  features: number;
}

/** The model that answers requests naming `model` (or none) and its F, from GET /models. */
export async function servedModel(baseUrl: string, model: string | null): Promise<ServedModel> {
  let listed: Array<{ name?: unknown; features?: unknown }>;
  try {
    const res = await fetch(`${baseUrl}/models`, { signal: AbortSignal.timeout(10_000) });
    if (res.status !== 200) throw new Error(`GET /models answered ${res.status}`);
    listed = ((await res.json()) as { models?: typeof listed }).models ?? [];
  } catch (err) {
    throw new Error(`cannot read the served models from ${baseUrl}/models (${(err as Error).message}); a target that is not the engine needs --features F`);
  }
  const models = listed.filter((m): m is ServedModel => typeof m.name === 'string' && typeof m.features === 'number');
  const chosen = model === null ? (models.find((m) => m.name === 'ensemble') ?? models[0]) : models.find((m) => m.name === model);
  if (!chosen) {
    const names = models.map((m) => m.name).join(', ') || 'none';
    throw tfError('CONFIG_INVALID', model === null ? `${baseUrl}/models lists no model` : `--model ${model}: not served (models: ${names})`);
  }
  return { name: chosen.name, features: chosen.features };
}

/** Seeded rows in [-2, 2], rounded to 6 decimals so a JSON body stays short. */
export function generatedRows(features: number, count: number, seed: number): FeatureRows {
  const rows = new Float64Array(features * count);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < rows.length; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    rows[i] = Math.round(((s / 0x100000000) * 4 - 2) * 1e6) / 1e6;
  }
  return { rows, count, features, source: `generated (seed ${seed})` };
}

/**
 * The feature columns of a labelled CSV (every column but the label and the dropped ones, as
 * `tradeflow eval` reads it). The label's values do not matter here; the reader wants one it
 * can call positive, so the first data row's is taken.
 */
export async function csvRows(path: string, labelColumn: string, dropColumns: string[]): Promise<FeatureRows> {
  const positive = firstLabel(path, labelColumn);
  const data = await readLabelledCsv(path, { labelColumn, positive, dropColumns });
  return { rows: data.rows, count: data.rowCount, features: data.features.length, source: `${path} (${data.features.length} feature columns)` };
}

function firstLabel(path: string, labelColumn: string): string {
  let head: string;
  try {
    const fd = fs.openSync(path, 'r');
    const buf = Buffer.alloc(1 << 16);
    head = buf.toString('utf8', 0, fs.readSync(fd, buf, 0, buf.length, 0));
    fs.closeSync(fd);
  } catch (err) {
    throw tfError('CONFIG_INVALID', `--csv ${path}: ${(err as Error).message}`);
  }
  const [header = '', first = ''] = head.replace(/^\uFEFF/, '').split('\n');
  const unquote = (c: string): string => c.trim().replace(/^"(.*)"$/, '$1');
  const at = header.split(',').map(unquote).indexOf(labelColumn);
  // An unknown column or an empty file: the reader names the problem with the line.
  return at < 0 ? '' : unquote(first.replace(/\r$/, '').split(',')[at] ?? '');
}

/** Whole HTTP/1.1 requests (head and body), one per consecutive group of t.rows rows, cycled by the run. */
export function buildRequests(shape: RequestShape, t: ShapeTarget, data: FeatureRows, target: Target): Buffer[] {
  if (data.features !== t.features) {
    throw tfError('CONFIG_INVALID', `${data.source} has ${data.features} features per row; the served model${t.servedModel ? ` ${t.servedModel}` : ''} takes ${t.features}`);
  }
  if (data.count < t.rows) throw tfError('CONFIG_INVALID', `--rows ${t.rows}: ${data.source} has only ${data.count} rows`);
  const head = `POST ${shape.path(t)} HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\n` + Object.entries(shape.headers(t)).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  const out: Buffer[] = [];
  let bytes = 0;
  for (let first = 0; first + t.rows <= data.count && bytes < MAX_POOL_BYTES; first += t.rows) {
    const body = shape.body(data.rows, first, t);
    const request = Buffer.concat([Buffer.from(`${head}Content-Length: ${body.length}\r\n\r\n`, 'latin1'), body]);
    out.push(request);
    bytes += request.length;
  }
  return out;
}

/**
 * How many rows to generate: GENERATED_ROWS for small requests; for large ones (which bypass the
 * cache anyway) a few requests' worth, 2 to 64 of them within about 16 MiB of float32 rows.
 */
export function generatedRowCount(rowsPerRequest: number, features: number): number {
  const requests = Math.min(64, Math.max(2, Math.floor((16 << 20) / (rowsPerRequest * features * 4))));
  return Math.max(GENERATED_ROWS, rowsPerRequest * requests);
}

/**
 * The requests of a load, sent in turn; one cycle serves every step of a sweep, so a step goes on
 * where the previous one stopped and the engine's cache does not see the same rows again.
 */
export class RequestCycle {
  private at = 0;

  constructor(readonly requests: readonly Buffer[]) {}

  next(): Buffer {
    const r = this.requests[this.at]!;
    this.at = (this.at + 1) % this.requests.length;
    return r;
  }
}
