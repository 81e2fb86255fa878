import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { cardPathFor, trainCommand } from '../src/cli/train';
import { inspectOnnx, servingContract } from '../src/models/onnx-inspect';
import type { ModelCard } from '../src/training/model-card';
import { Rng } from '../src/training/rng';
import { requireElec2 } from './helpers/requirements';

// Read in place from ../shared/data (or $ELEC2_CSV), never copied into the repository.
const elec2 = requireElec2();

const dir = mkdtempSync(join(tmpdir(), 'tradeflow-train-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sink(): { stream: Writable; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  return { stream, text: () => text };
}

async function train(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = sink();
  const err = sink();
  const code = await trainCommand(argv, out.stream, err.stream);
  return { code, out: out.text(), err: err.text() };
}

/** A labelled CSV: a date column, three features, the label; UP when a + b*c is high. */
function writeCsv(file: string, rows: number): void {
  const r = new Rng(99);
  const lines = ['date,a,b,c,label'];
  for (let i = 0; i < rows; i++) {
    const a = r.gaussian();
    const b = 5 + 2 * r.gaussian();
    const c = r.gaussian();
    const up = a + 0.3 * (b - 5) * c + 0.5 * r.gaussian() > 0;
    lines.push(`2024-01-${String((i % 28) + 1).padStart(2, '0')},${a.toFixed(6)},${b.toFixed(6)},${c.toFixed(6)},${up ? 'UP' : 'DOWN'}`);
  }
  writeFileSync(file, lines.join('\n') + '\n');
}

const csv = join(dir, 'small.csv');
writeCsv(csv, 1500);
const baseArgs = ['--csv', csv, '--label-column', 'label', '--positive', 'UP', '--drop-columns', 'date'];

async function loadAndRun(file: string, rows: Float32Array, features: number): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(readFileSync(file), { intraOpNumThreads: 1, interOpNumThreads: 1 });
  try {
    const n = rows.length / features;
    const out = await session.run({ input: new ort.Tensor('float32', rows, [n, features]) });
    expect(out['label']!.dims).toEqual([n]);
    return out['probabilities']!.data as Float32Array;
  } finally {
    await session.release();
  }
}

describe('tradeflow train', () => {
  it('writes a loadable model and its card, and prints the holdout metrics', async () => {
    const out = join(dir, 'models', 'small.onnx');
    const r = await train([...baseArgs, '--out', out]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^rows {12}1500 \(1200 train, 300 holdout: the last rows\)$/m);
    expect(r.out).toMatch(/^features {8}3 \(a, b, c\)$/m);
    expect(r.out).toMatch(/^holdout {9}accuracy 0\.\d{4} {2}precision 0\.\d{4} {2}recall 0\.\d{4} {2}f1 0\.\d{4}$/m);

    expect(cardPathFor(out)).toBe(join(dir, 'models', 'small.card.json'));
    const card = JSON.parse(readFileSync(cardPathFor(out), 'utf8')) as ModelCard;
    expect(card.producer).toBe('tradeflow');
    expect(card.features).toEqual({ count: 3, names: ['a', 'b', 'c'] });
    expect(card.classes).toEqual([{ index: 0, label: 'DOWN' }, { index: 1, label: 'UP' }]);
    expect(card.data).toMatchObject({ rows: 1500, train_rows: 1200, holdout_rows: 300 });
    expect(card.data.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(Date.parse(card.created_at!)).not.toBeNaN();
    expect(card.metrics.holdout.serving).toBeNull();
    expect(card.metrics.holdout.candidate.accuracy).toBeGreaterThan(card.metrics.holdout.majority_baseline.accuracy);
    expect(card.trainer).toMatchObject({ holdout_fraction: 0.2, min_rows: 200 });

    const bytes = readFileSync(out);
    const { createHash } = await import('node:crypto');
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(card.onnx.sha256);
    const info = inspectOnnx(bytes);
    expect(servingContract(info).features).toBe(3);
    expect(info.metadata['feature_names']).toBe('a,b,c');
    const p = await loadAndRun(out, Float32Array.from([0.5, 5, 1, -2, 5, 0]), 3);
    expect(p.length).toBe(4);
    expect(p[1]!).toBeGreaterThan(0.5); // a high: UP
    expect(p[3]!).toBeLessThan(0.5); // a low: DOWN
    expect(existsSync(`${out}.tmp-${process.pid}`)).toBe(false);
  });

  it('is reproducible and honours --holdout, --seed and --limit', async () => {
    const a = join(dir, 'a.onnx');
    const b = join(dir, 'b.onnx');
    const c = join(dir, 'c.onnx');
    expect((await train([...baseArgs, '--out', a, '--holdout', '0.3', '--seed', '5'])).code).toBe(0);
    expect((await train([...baseArgs, '--out', b, '--holdout', '0.3', '--seed', '5'])).code).toBe(0);
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
    const card = JSON.parse(readFileSync(join(dir, 'a.card.json'), 'utf8')) as ModelCard;
    expect(card.data).toMatchObject({ train_rows: 1050, holdout_rows: 450 });
    expect(card.seed).toBe(5);
    const r = await train([...baseArgs, '--out', c, '--limit', '1000']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/1000 \(800 train, 200 holdout/);
    expect(readFileSync(c).equals(readFileSync(a))).toBe(false);
  });

  it('names the sidecar after the model file', () => {
    expect(cardPathFor('/m/model.onnx')).toBe('/m/model.card.json');
    expect(cardPathFor('/m/model.ONNX')).toBe('/m/model.card.json');
    expect(cardPathFor('/m/model.bin')).toBe('/m/model.bin.card.json');
  });

  it('exits 2 on bad arguments, with a clear message', async () => {
    const out = join(dir, 'never.onnx');
    const cases: [string[], RegExp][] = [
      [[...baseArgs], /--out FILE is required/],
      [['--label-column', 'label', '--positive', 'UP', '--out', out], /--csv FILE is required/],
      [[...baseArgs, '--out', out, '--holdout', '1.5'], /--holdout must be a fraction in \(0, 1\), got "1\.5"/],
      [[...baseArgs, '--out', out, '--seed', 'abc'], /--seed must be a whole number/],
      [[...baseArgs, '--out', out, '--mlp-hidden', '0'], /--mlp-hidden must be a whole number ≥ 1/],
      [[...baseArgs, '--out', out, '--frobnicate'], /unknown option "--frobnicate"/],
      [[...baseArgs, '--out'], /--out needs a value/],
    ];
    for (const [argv, message] of cases) {
      const r = await train(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err).toMatch(/^tradeflow train: /);
      expect(r.err).toMatch(message);
      expect(r.out).toBe('');
    }
    expect(existsSync(out)).toBe(false);
  });

  it('exits 1 when the run fails: missing file, unknown column, too few rows', async () => {
    const out = join(dir, 'never.onnx');
    const missing = await train(['--csv', join(dir, 'nope.csv'), '--label-column', 'label', '--positive', 'UP', '--out', out]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/nope\.csv: no such file/);
    const column = await train(['--csv', csv, '--label-column', 'class', '--positive', 'UP', '--drop-columns', 'date', '--out', out]);
    expect(column.code).toBe(1);
    expect(column.err).toMatch(/unknown label column "class"/);
    const few = await train([...baseArgs, '--out', out, '--limit', '150']);
    expect(few.code).toBe(1);
    expect(few.err).toMatch(/too few labelled rows to train: 150, at least 200/);
    expect(existsSync(out)).toBe(false);
  });

  it('prints its usage with --help', async () => {
    const r = await train(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Usage: tradeflow train --csv FILE/);
  });

  it.skipIf(elec2.skip)('trains on the first 5,000 rows of Elec2', async () => {
    const out = join(dir, 'elec2.onnx');
    const r = await train(['--csv', elec2.get(), '--label-column', 'class', '--positive', 'UP', '--drop-columns', 'date', '--limit', '5000', '--out', out]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const card = JSON.parse(readFileSync(join(dir, 'elec2.card.json'), 'utf8')) as ModelCard;
    expect(card.features.names).toEqual(['day', 'period', 'nswprice', 'nswdemand', 'vicprice', 'vicdemand', 'transfer']);
    expect(card.data).toMatchObject({ rows: 5000, train_rows: 4000, holdout_rows: 1000 });
    expect(card.metrics.holdout.candidate.accuracy).toBeGreaterThan(card.metrics.holdout.majority_baseline.accuracy);
    const p = await loadAndRun(out, new Float32Array(2 * 7).fill(0.5), 7);
    for (const v of p) expect(Number.isFinite(v)).toBe(true);
  });
});
