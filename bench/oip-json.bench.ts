/**
 * The two per-number costs of the Open Inference Protocol's JSON infer, old way against new way,
 * in one process: reading the data array's numbers (the general scanner of src/http/json-body.ts
 * against the plain-decimal fast path of src/http/oip/decimal.ts) and printing the FP32
 * probabilities of the answer (`String(f)`, 17 digits, as a string, against the shortest float32
 * digits written as bytes, src/http/float32-text.ts). 1 row (16 features in, 2 floats out)
 * and 64 rows.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/oip-json.bench.js
 */
import { Bench } from 'tinybench';
import { numOut, scanNumber } from '../src/http/json-body';
import { scanFloat32 } from '../src/http/oip/decimal';
import { FLOAT32_TEXT_MAX, writeFloat32 } from '../src/http/float32-text';

const F = 16;
const COMMA = 0x2c;

function makeRng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** Features as the HTTP benchmark sends them: 8 significant digits. */
function literals(rows: number, rnd: () => number): Uint8Array {
  const xs = Array.from({ length: rows * F }, () => String(Number(((rnd() - 0.5) * 10 ** Math.floor(rnd() * 4)).toPrecision(8))));
  return Buffer.from(xs.join(',') + ']', 'latin1');
}

function scanAll(b: Uint8Array, out: Float32Array, fast: boolean): number {
  const n = b.length;
  let i = 0;
  let k = 0;
  for (;;) {
    if (fast) {
      i = scanFloat32(b, i, n, out, k++);
    } else {
      i = scanNumber(b, i, n);
      out[k++] = Math.fround(numOut[0]!);
    }
    if (i < 0) throw new Error('oip-json bench: literal not taken');
    if (b[i] !== COMMA) return k;
    i++;
  }
}

function stringText(p: Float32Array): string {
  let s = '';
  for (let i = 0; i < p.length; i++) {
    if (i !== 0) s += ',';
    s += '' + p[i]!;
  }
  return s;
}

function byteText(p: Float32Array, buf: Uint8Array): number {
  let at = 0;
  for (let i = 0; i < p.length; i++) {
    if (i !== 0) buf[at++] = COMMA;
    at = writeFloat32(buf, at, p[i]!);
  }
  return at;
}

let sink = 0;

export interface OipJsonBenchResult {
  name: 'oip-json';
  rows: { task: string; meanNs: number; p50Ns: number; p99Ns: number }[];
  /** Old mean time over new, per task pair. */
  speedup: Record<string, number>;
}

export async function run(opts: { time?: number; warmupTime?: number; quiet?: boolean } = {}): Promise<OipJsonBenchResult> {
  const rnd = makeRng(7);
  const bench = new Bench({ name: 'oip-json', time: opts.time ?? 1000, warmupTime: opts.warmupTime ?? 200 });
  const pairs: [string, string, string][] = [];
  for (const rows of [1, 64]) {
    const b = literals(rows, rnd);
    const out = new Float32Array(rows * F);
    const check = new Float32Array(rows * F);
    scanAll(b, out, true);
    scanAll(b, check, false);
    if (!Buffer.from(out.buffer).equals(Buffer.from(check.buffer))) throw new Error('oip-json bench: scanners differ');
    // Distinct probabilities per call, as answers have: V8 caches the text of recently printed
    // numbers, so printing the same few floats over and over would measure that cache.
    const sets = Math.max(4, 65536 / rows);
    const pool = Float32Array.from({ length: 2 * rows * sets }, () => rnd());
    let next = 0;
    const probs = (): Float32Array => {
      const at = next;
      next = (next + 1) % sets;
      return pool.subarray(2 * rows * at, 2 * rows * (at + 1));
    };
    const buf = new Uint8Array(2 * rows * (FLOAT32_TEXT_MAX + 1));
    const tag = `${rows} row${rows > 1 ? 's' : ''}`;
    bench
      .add(`${tag}: read ${rows * F} numbers, general scanner`, () => void (sink += scanAll(b, out, false)))
      .add(`${tag}: read ${rows * F} numbers, plain-decimal fast path`, () => void (sink += scanAll(b, out, true)))
      .add(`${tag}: print ${2 * rows} FP32, String(f)`, () => void (sink += stringText(probs()).length))
      .add(`${tag}: print ${2 * rows} FP32, shortest float32 bytes`, () => void (sink += byteText(probs(), buf)));
    pairs.push([`${tag} read`, `${tag}: read ${rows * F} numbers, general scanner`, `${tag}: read ${rows * F} numbers, plain-decimal fast path`]);
    pairs.push([`${tag} print`, `${tag}: print ${2 * rows} FP32, String(f)`, `${tag}: print ${2 * rows} FP32, shortest float32 bytes`]);
  }
  await bench.run();
  const rows = bench.tasks.map((t) => {
    const r = t.result;
    if (r.state !== 'completed') throw new Error(`oip-json bench: task ${t.name} ${r.state}`);
    return { task: t.name, meanNs: r.latency.mean * 1e6, p50Ns: r.latency.p50 * 1e6, p99Ns: r.latency.p99 * 1e6 };
  });
  const speedup: Record<string, number> = {};
  for (const [name, old, now] of pairs) speedup[name] = rows.find((r) => r.task === old)!.meanNs / rows.find((r) => r.task === now)!.meanNs;
  if (sink === 0.5) console.log('');
  const result: OipJsonBenchResult = { name: 'oip-json', rows, speedup };
  if (opts.quiet !== true) {
    console.log(`OIP JSON numbers, ${F} features (node ${process.version})\n`);
    console.log('| task | mean ns | p50 ns | p99 ns |\n| --- | ---: | ---: | ---: |');
    for (const r of rows) console.log(`| ${r.task} | ${r.meanNs.toFixed(0)} | ${r.p50Ns.toFixed(0)} | ${r.p99Ns.toFixed(0)} |`);
    console.log('');
    for (const [name, s] of Object.entries(speedup)) console.log(`${name}: new is ${s.toFixed(2)}× faster (mean)`);
  }
  return result;
}

if (require.main === module) {
  run().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
