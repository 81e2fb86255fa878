/**
 * The /predict answer text: AnswerText (bytes into a reused buffer, shortest float32 digits)
 * against the string concatenation it replaced (every probability as a 17-digit double), for 1
 * and 64 rows. The old path is measured with the UTF-8 encoding uWS then did on the string
 * (Buffer.from), since the new one hands uWS bytes.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/answer-text.bench.js
 */
import { Bench } from 'tinybench';
import { AnswerText } from '../src/http/answer-text';
import { rng } from './lib/bodies';

const MODEL = { name: 'ensemble', classLabels: ['DOWN', 'UP'] as const };
const VERSION = '1624f41c8bc8';

export interface AnswerTextBenchRow {
  rows: number;
  task: string;
  bytes: number;
  meanNs: number;
  p50Ns: number;
  p99Ns: number;
}

export interface AnswerTextBenchResult {
  name: 'answer-text';
  rows: AnswerTextBenchRow[];
}

/** The answer text as predict.ts built it before (commit 9fe58c7). */
const heads = [`"label":"DOWN","class":0,"confidence":`, `"label":"UP","class":1,"confidence":`];
function rowJson(p0: number, p1: number, cls: number): string {
  const s0 = '' + p0;
  const s1 = '' + p1;
  return heads[cls]! + (cls === 1 ? s1 : s0) + ',"probabilities":[' + s0 + ',' + s1 + ']';
}
function concatAnswer(probs: Float32Array, labels: Int32Array, first: number, rows: number): string {
  let body = '{"model":"' + MODEL.name + '","version":"' + VERSION + '"';
  if (rows === 1) return body + ',' + rowJson(probs[2 * first]!, probs[2 * first + 1]!, labels[first]!) + '}';
  body += ',"predictions":[';
  for (let r = first; r < first + rows; r++) {
    if (r !== first) body += ',';
    body += '{' + rowJson(probs[2 * r]!, probs[2 * r + 1]!, labels[r]!) + '}';
  }
  return body + ']}';
}

// Many distinct batches, so V8's number-to-string cache does not answer for the old path.
const BATCHES = 4096;
function batches(rows: number): { probs: Float32Array[]; labels: Int32Array[] } {
  const rand = rng(0xa75 + rows);
  const probs: Float32Array[] = [];
  const labels: Int32Array[] = [];
  for (let b = 0; b < BATCHES; b++) {
    const p = new Float32Array(2 * rows);
    const l = new Int32Array(rows);
    for (let r = 0; r < rows; r++) {
      const p1 = Math.fround(1 / (1 + Math.exp(-(rand() * 8 - 4))));
      p[2 * r] = Math.fround(1 - p1);
      p[2 * r + 1] = p1;
      l[r] = p1 > p[2 * r]! ? 1 : 0;
    }
    probs.push(p);
    labels.push(l);
  }
  return { probs, labels };
}

let sink = 0;

export async function run(opts: { time?: number; warmupTime?: number; quiet?: boolean } = {}): Promise<AnswerTextBenchResult> {
  const text = new AnswerText();
  const bench = new Bench({ name: 'answer-text', time: opts.time ?? 1500, warmupTime: opts.warmupTime ?? 300 });
  const sizes = new Map<string, number>();
  for (const rows of [1, 64]) {
    const { probs, labels } = batches(rows);
    let k = 0;
    sizes.set(`${rows}|AnswerText (bytes)`, text.render(MODEL, VERSION, undefined, rows === 1, probs[0]!, labels[0]!, 0, rows).length);
    sizes.set(`${rows}|concatenation + Buffer.from`, Buffer.byteLength(concatAnswer(probs[0]!, labels[0]!, 0, rows)));
    bench
      .add(`${rows}|AnswerText (bytes)`, () => {
        k = (k + 1) & (BATCHES - 1);
        sink += text.render(MODEL, VERSION, undefined, rows === 1, probs[k]!, labels[k]!, 0, rows).length;
      })
      .add(`${rows}|concatenation + Buffer.from`, () => {
        k = (k + 1) & (BATCHES - 1);
        sink += Buffer.from(concatAnswer(probs[k]!, labels[k]!, 0, rows)).length;
      });
  }
  await bench.run();
  const out: AnswerTextBenchRow[] = bench.tasks.map((task) => {
    const r = task.result;
    if (r.state !== 'completed') throw new Error(`answer-text bench: task ${task.name} ${r.state}`);
    const [rows, name] = task.name.split('|');
    return { rows: Number(rows), task: name!, bytes: sizes.get(task.name)!, meanNs: r.latency.mean * 1e6, p50Ns: r.latency.p50 * 1e6, p99Ns: r.latency.p99 * 1e6 };
  });
  if (sink === 0.5) console.log('');
  const result: AnswerTextBenchResult = { name: 'answer-text', rows: out };
  if (opts.quiet !== true) console.log(formatTable(result));
  return result;
}

export function formatTable(result: AnswerTextBenchResult): string {
  const lines = [`answer text (node ${process.version})`, '', '| rows | writer | answer bytes | ns/op (mean) | p50 ns | p99 ns | vs concatenation |', '| ---: | --- | ---: | ---: | ---: | ---: | ---: |'];
  for (const r of result.rows) {
    const old = result.rows.find((x) => x.rows === r.rows && x.task !== 'AnswerText (bytes)')!;
    lines.push(`| ${r.rows} | ${r.task} | ${r.bytes} | ${r.meanNs.toFixed(0)} | ${r.p50Ns.toFixed(0)} | ${r.p99Ns.toFixed(0)} | ${(old.meanNs / r.meanNs).toFixed(2)}× |`);
  }
  return lines.join('\n');
}

if (require.main === module) {
  run().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
