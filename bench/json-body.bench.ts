/**
 * JSON body decoding: the scanner (decodeJsonBody) against the naive JSON.parse + copy into a
 * Float32Array, for a 1-row and a 64-row body of 16 features and issue 11's 64×32 body of
 * 6-decimal numbers, beside a bare loop over the bytes (the floor). The reference path (JSON.parse with
 * all the checks) is listed too: it is what a body costs when the scanner hands it over.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/json-body.bench.js
 */
import { Bench } from 'tinybench';
import { decodeJsonBody, decodeJsonBodyReference } from '../src/http/json-body';

const F = 16;
const MAX_ROWS = 64;

export interface JsonBodyBenchRow {
  body: string;
  task: string;
  bytes: number;
  meanNs: number;
  p50Ns: number;
  p99Ns: number;
  opsPerSec: number;
  samples: number;
}

export interface JsonBodyBenchResult {
  name: 'json-body';
  rows: JsonBodyBenchRow[];
  /** Naive JSON.parse+copy time over scanner time, per body (mean and p50). */
  speedup: Record<string, { mean: number; p50: number }>;
}

// Deterministic bodies so that runs compare: a fixed LCG, not Math.random.
function makeRng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** Feature values as trading clients write them: returns, small rates, prices, volumes. */
function featureLiteral(rnd: () => number): string {
  const r = rnd();
  if (r < 0.4) return ((rnd() - 0.5) * 2).toFixed(9); // 0.123456789
  if (r < 0.65) return `${((rnd() - 0.5) * 20).toFixed(1)}e-3`; // -1.5e-3
  if (r < 0.85) return (100 + rnd() * 2000).toFixed(2); // 1234.56
  return String(Math.floor(rnd() * 100000)); // 15230
}

function row(rnd: () => number): string {
  return `[${Array.from({ length: F }, () => featureLiteral(rnd)).join(',')}]`;
}

export function benchBodies(): Record<string, Uint8Array> {
  const rnd = makeRng(42);
  const enc = new TextEncoder();
  return {
    '1 row': enc.encode(`{"features":${row(rnd)}}`),
    '64 rows': enc.encode(`{"instances":[${Array.from({ length: MAX_ROWS }, () => row(rnd)).join(',')}]}`),
  };
}

/** Issue 11's body: 64 rows of 32 features printed with 6 decimals (about 19.6 kB). */
function wideBody(): Uint8Array {
  const rnd = makeRng(7);
  const rows = Array.from({ length: MAX_ROWS }, () => `[${Array.from({ length: WIDE_F }, () => ((rnd() - 0.5) * 4).toFixed(6)).join(',')}]`);
  return new TextEncoder().encode(`{"instances":[${rows.join(',')}]}`);
}

const WIDE_F = 32;
const WIDE = '64×32, 6 decimals';

/** Features per row of each body. */
function featuresOf(body: string): number {
  return body === WIDE ? WIDE_F : F;
}

const utf8 = new TextDecoder();

/** What a server does without the scanner: decode, parse, copy (no validation at all). */
function parseAndCopy(body: Uint8Array, out: Float32Array): number {
  const doc = JSON.parse(utf8.decode(body)) as { features?: number[]; instances?: number[][] };
  const rows = doc.instances ?? [doc.features!];
  let k = 0;
  for (const r of rows) for (let j = 0; j < r.length; j++) out[k++] = r[j];
  return rows.length;
}

/** The floor: every byte read once. */
function byteSum(b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < b.length; i++) s += b[i]!;
  return s;
}

let sink = 0; // keeps the results observable so that no work is optimised away

/** Runs the benchmark, prints its report (unless quiet) and returns the numbers. */
export async function run(opts: { time?: number; warmupTime?: number; quiet?: boolean } = {}): Promise<JsonBodyBenchResult> {
  const bodies: Record<string, Uint8Array> = { ...benchBodies(), [WIDE]: wideBody() };
  const out = new Float32Array(MAX_ROWS * WIDE_F);
  const check = new Float32Array(MAX_ROWS * WIDE_F);

  // A benchmark of a scanner that silently falls back, or disagrees, would be meaningless.
  for (const [name, body] of Object.entries(bodies)) {
    const f = featuresOf(name);
    const a = decodeJsonBody(body, f, out, MAX_ROWS);
    const b = decodeJsonBodyReference(body, f, check, MAX_ROWS);
    parseAndCopy(body, check);
    const n = a.rows * f;
    if (!a.fast || a.rows !== b.rows) throw new Error(`json-body bench: scanner did not take the fast path on "${name}"`);
    const x = new Uint32Array(out.buffer, 0, n);
    const y = new Uint32Array(check.buffer, 0, n);
    for (let k = 0; k < n; k++) if (x[k] !== y[k]) throw new Error(`json-body bench: scanner and JSON.parse differ on "${name}"`);
  }

  const bench = new Bench({ name: 'json-body', time: opts.time ?? 1500, warmupTime: opts.warmupTime ?? 300 });
  for (const [name, body] of Object.entries(bodies)) {
    const f = featuresOf(name);
    bench
      .add(`${name}|scanner`, () => {
        sink += decodeJsonBody(body, f, out, MAX_ROWS).rows + out[0];
      })
      .add(`${name}|JSON.parse+copy`, () => {
        sink += parseAndCopy(body, out) + out[0];
      })
      .add(`${name}|reference (JSON.parse+checks)`, () => {
        sink += decodeJsonBodyReference(body, f, out, MAX_ROWS).rows + out[0];
      })
      .add(`${name}|byte loop (reading the bytes)`, () => {
        sink += byteSum(body);
      });
  }
  await bench.run();

  const rows: JsonBodyBenchRow[] = [];
  for (const task of bench.tasks) {
    const r = task.result;
    if (r.state !== 'completed') throw new Error(`json-body bench: task ${task.name} ${r.state}`);
    const [body, name] = task.name.split('|');
    rows.push({
      body,
      task: name,
      bytes: bodies[body].length,
      meanNs: r.latency.mean * 1e6,
      p50Ns: r.latency.p50 * 1e6,
      p99Ns: r.latency.p99 * 1e6,
      opsPerSec: 1000 / r.latency.mean,
      samples: r.latency.samplesCount,
    });
  }
  const speedup: JsonBodyBenchResult['speedup'] = {};
  for (const body of Object.keys(bodies)) {
    const scanner = rows.find((r) => r.body === body && r.task === 'scanner')!;
    const naive = rows.find((r) => r.body === body && r.task === 'JSON.parse+copy')!;
    speedup[body] = { mean: naive.meanNs / scanner.meanNs, p50: naive.p50Ns / scanner.p50Ns };
  }
  if (sink === 0.5) console.log(''); // never true; reads sink
  const result: JsonBodyBenchResult = { name: 'json-body', rows, speedup };
  if (opts.quiet !== true) console.log(formatReport(result));
  return result;
}

export function formatReport(result: JsonBodyBenchResult): string {
  const lines = [`json-body decoding, ${F} features (${WIDE_F} for ${WIDE}) (node ${process.version})`, '', formatTable(result), ''];
  for (const [body, s] of Object.entries(result.speedup)) {
    lines.push(`${body}: scanner is ${s.mean.toFixed(2)}× faster than JSON.parse+copy (mean), ${s.p50.toFixed(2)}× (p50)`);
  }
  return lines.join('\n');
}

export function formatTable(result: JsonBodyBenchResult): string {
  const fmt = (ns: number) => (ns >= 10_000 ? `${(ns / 1000).toFixed(1)} µs` : `${ns.toFixed(0)} ns`);
  const lines = [
    '| body | decoder | ns/op (mean) | p50 | p99 | ops/s | speed vs JSON.parse+copy (mean) |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of result.rows) {
    const naive = result.rows.find((x) => x.body === r.body && x.task === 'JSON.parse+copy')!;
    lines.push(
      `| ${r.body} (${r.bytes} B) | ${r.task} | ${r.meanNs.toFixed(0)} | ${fmt(r.p50Ns)} | ${fmt(r.p99Ns)} | ` +
        `${Math.round(r.opsPerSec).toLocaleString('en-US')} | ${(naive.meanNs / r.meanNs).toFixed(2)}× |`,
    );
  }
  return lines.join('\n');
}

if (require.main === module) {
  run().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
