/**
 * The Open Inference Protocol beside /predict (issue 14): JSON and binary infer at 1 and 64 rows,
 * each against /predict with the same rows in the same encoding family (JSON against JSON
 * /predict, binary tensors against binary /predict), on the engine alone, alternating the two in
 * every round so drift of the machine hits both. Target: the protocol's rows/s within 10 % of
 * /predict's (ratio ≥ 0.90) for each pair.
 */
import { makeBodies, type BodySet } from '../lib/bodies';
import { runLoad } from '../lib/loadgen';
import { request } from '../lib/request';
import { fmtCount, median } from '../lib/stats';
import type { Options } from './options';
import type { Server } from './servers';

interface Pair {
  id: string;
  title: string;
  rows: number;
  binary: boolean;
}

const PAIRS: Pair[] = [
  { id: 'oip-json1', title: 'JSON, 1 row/request', rows: 1, binary: false },
  { id: 'oip-json64', title: 'JSON, 64 rows/request', rows: 64, binary: false },
  { id: 'oip-bin1', title: 'binary, 1 row/request', rows: 1, binary: true },
  { id: 'oip-bin64', title: 'binary, 64 rows/request', rows: 64, binary: true },
];

export const OIP_PAIRS = PAIRS.length;
const CONNECTIONS = 64;
const BODIES = 512;
export const OIP_PATH = '/v2/models/ensemble/infer';

/** The protocol's bodies for the rows of `predict` (same seed, same values). */
function oipBodies(predict: BodySet, F: number, input: string, binary: boolean): BodySet {
  const rows = predict.rows;
  if (binary) {
    const head = Buffer.from(JSON.stringify({ inputs: [{ name: input, datatype: 'FP32', shape: [rows, F], parameters: { binary_data_size: rows * F * 4 } }], parameters: { binary_data_output: true } }));
    return { rows, contentType: 'application/octet-stream', headers: { 'Inference-Header-Content-Length': String(head.length) }, bodies: predict.bodies.map((b) => Buffer.concat([head, b])), firstRows: predict.firstRows };
  }
  const bodies = predict.bodies.map((b) => {
    const doc = JSON.parse(b.toString()) as { features?: number[]; instances?: number[][] };
    const data = doc.features ?? doc.instances!.flat();
    return Buffer.from(`{"inputs":[{"name":${JSON.stringify(input)},"datatype":"FP32","shape":[${rows},${F}],"data":[${data.join(',')}]}]}`);
  });
  return { rows, contentType: 'application/json', bodies, firstRows: predict.firstRows };
}

interface PairResult {
  pair: Pair;
  predict: number[];
  oip: number[];
  problems: string[];
}

async function check(engine: Server, set: BodySet, path: string, problems: string[]): Promise<void> {
  const a = await request(engine.port, 'POST', path, set.bodies[0]!, { 'content-type': set.contentType, ...set.headers });
  if (a.status !== 200) problems.push(`${path} answered ${a.status}: ${a.body.toString('utf8', 0, 200)}`);
}

async function runPair(o: Options, engine: Server, pair: Pair, F: number, input: string, workDir: string): Promise<PairResult> {
  const predict = makeBodies(pair.binary ? 'binary' : pair.rows === 1 ? 'features' : 'instances', pair.rows, F, BODIES, 0x0e00 + pair.rows);
  const oip = oipBodies(predict, F, input, pair.binary);
  const out: PairResult = { pair, predict: [], oip: [], problems: [] };
  await check(engine, predict, '/predict', out.problems);
  await check(engine, oip, OIP_PATH, out.problems);
  if (out.problems.length > 0) return out;
  process.stdout.write(`\n== ${pair.title}: /predict vs ${OIP_PATH} [${pair.id}]\n`);
  const spec = (set: BodySet, path: string, id: string, durationS: number) => ({ port: engine.port, connections: CONNECTIONS, durationS, set, threads: o.threads, workDir, id, startIndex: 0, path });
  await runLoad(o.tool, spec(predict, '/predict', pair.id + '-p', Math.max(1, o.warmupS)));
  await runLoad(o.tool, spec(oip, OIP_PATH, pair.id + '-o', Math.max(1, o.warmupS)));
  for (let r = 0; r < o.rounds; r++) {
    const order: Array<[BodySet, string, number[], string]> = [[predict, '/predict', out.predict, '-p'], [oip, OIP_PATH, out.oip, '-o']];
    if (r % 2 === 1) order.reverse();
    for (const [set, path, into, suffix] of order) {
      const run = await runLoad(o.tool, spec(set, path, pair.id + suffix, o.durationS));
      if (run.non2xx + run.socketErrors > 0) out.problems.push(`${path} round ${r + 1}: ${run.non2xx} non-2xx, ${run.socketErrors} socket errors`);
      into.push(run.okPerS * pair.rows);
      process.stdout.write(`  ${path.padEnd(28)} ${fmtCount(run.okPerS * pair.rows).padStart(8)} rows/s\n`);
    }
  }
  return out;
}

export async function runOipPairs(o: Options, engine: Server, F: number, input: string, workDir: string): Promise<PairResult[]> {
  const results: PairResult[] = [];
  for (const p of PAIRS) results.push(await runPair(o, engine, p, F, input, workDir));
  return results;
}

export function oipReport(results: PairResult[]): string[] {
  const t = ['', '### Open Inference Protocol beside /predict (engine only, 64 connections)', '', '| pair | /predict rows/s | protocol rows/s | ratio | target ≥ 0.90 |', '| --- | ---: | ---: | ---: | --- |'];
  for (const r of results) {
    if (r.predict.length === 0 || r.oip.length === 0) {
      t.push(`| ${r.pair.title} | – | – | – | not measured: ${r.problems.join('; ')} |`);
      continue;
    }
    const p = median(r.predict);
    const q = median(r.oip);
    t.push(`| ${r.pair.title} | ${fmtCount(p)} | ${fmtCount(q)} | ${(q / p).toFixed(2)} | ${q / p >= 0.9 ? 'met' : 'NOT met'}${r.problems.length ? ' (' + r.problems.join('; ') + ')' : ''} |`);
  }
  return t;
}
