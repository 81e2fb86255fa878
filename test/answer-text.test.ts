import { describe, expect, it } from 'vitest';
import { AnswerText } from '../src/http/answer-text';
import { float32Text } from '../src/http/float32-text';
import { rng } from '../bench/lib/bodies';

const model = { name: 'ensemble', classLabels: ['DOWN', 'UP'] as const };

/** A batch of `rows` rows: p1 from a seeded source, p0 = 1 - p1 as float32, labels the argmax. */
function batch(rows: number, seed = 1): { probs: Float32Array; labels: Int32Array } {
  const rand = rng(seed);
  const probs = new Float32Array(2 * rows);
  const labels = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    const p1 = Math.fround(rand());
    probs[2 * r] = Math.fround(1 - p1);
    probs[2 * r + 1] = p1;
    labels[r] = p1 > probs[2 * r]! ? 1 : 0;
  }
  return { probs, labels };
}

const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');

describe('AnswerText: the /predict answer as bytes', () => {
  it('one row: the fields of SPEC §3 at the top level, shortest float32 digits', () => {
    const t = new AnswerText();
    const probs = new Float32Array([Math.fround(0.6447638273239136), Math.fround(0.3552361726760864)]);
    const out = t.render(model, '1624f41c8bc8', 'order-1', true, probs, new Int32Array([0]), 0, 1);
    expect(text(out)).toBe('{"model":"ensemble","version":"1624f41c8bc8","id":"order-1","label":"DOWN","class":0,"confidence":0.6447638,"probabilities":[0.6447638,0.35523617]}');
  });

  it('many rows: a "predictions" list in order, from an offset into the batch', () => {
    const t = new AnswerText();
    const { probs, labels } = batch(300);
    const first = 17;
    const rows = 200;
    const doc = JSON.parse(text(t.render(model, 'v1', undefined, false, probs, labels, first, rows))) as {
      model: string; version: string; id?: string;
      predictions: Array<{ label: string; class: number; confidence: number; probabilities: [number, number] }>;
    };
    expect(doc.model).toBe('ensemble');
    expect(doc.version).toBe('v1');
    expect('id' in doc).toBe(false);
    expect(doc.predictions).toHaveLength(rows);
    doc.predictions.forEach((p, i) => {
      const r = first + i;
      expect(Object.keys(p)).toEqual(['label', 'class', 'confidence', 'probabilities']);
      expect(p.class).toBe(labels[r]);
      expect(p.label).toBe(labels[r] === 1 ? 'UP' : 'DOWN');
      // every number reads back to the batch's float32 exactly
      expect(Math.fround(p.probabilities[0])).toBe(probs[2 * r]);
      expect(Math.fround(p.probabilities[1])).toBe(probs[2 * r + 1]);
      expect(p.confidence).toBe(p.probabilities[p.class]);
    });
  });

  it('the text of each probability is float32Text', () => {
    const t = new AnswerText();
    const { probs, labels } = batch(64, 7);
    const s = text(t.render(model, 'v', undefined, false, probs, labels, 0, 64));
    const expected = Array.from({ length: 64 }, (_x, r) => {
      const p0 = float32Text(probs[2 * r]!);
      const p1 = float32Text(probs[2 * r + 1]!);
      const c = labels[r]!;
      return `{"label":"${c === 1 ? 'UP' : 'DOWN'}","class":${c},"confidence":${c === 1 ? p1 : p0},"probabilities":[${p0},${p1}]}`;
    });
    expect(s).toBe(`{"model":"ensemble","version":"v","predictions":[${expected.join(',')}]}`);
  });

  it('ids are JSON-escaped UTF-8; class labels of another model are its own', () => {
    const t = new AnswerText();
    const other = { name: 'sgd', classLabels: ['sell "x"', 'købe'] as const };
    const probs = new Float32Array([0.25, 0.75]);
    const out = t.render(other, 'v2', 'é "quoted" \\ 😀', true, probs, new Int32Array([1]), 0, 1);
    const doc = JSON.parse(text(out)) as Record<string, unknown>;
    expect(doc).toEqual({ model: 'sgd', version: 'v2', id: 'é "quoted" \\ 😀', label: 'købe', class: 1, confidence: 0.75, probabilities: [0.25, 0.75] });
  });

  it('grows for large answers and reuses its buffer: a render is valid until the next one', () => {
    const t = new AnswerText();
    const { probs, labels } = batch(4096, 3);
    const big = t.render(model, 'v', undefined, false, probs, labels, 0, 4096);
    expect((JSON.parse(text(big)) as { predictions: unknown[] }).predictions).toHaveLength(4096);
    const a = t.render(model, 'v', undefined, true, probs, labels, 0, 1);
    const b = t.render(model, 'v', undefined, true, probs, labels, 1, 1);
    expect(a.buffer).toBe(b.buffer);
    // extreme values still give JSON numbers that read back
    const odd = new Float32Array([1.401298464324817e-45, 1, 3.4028234663852886e38, 1e-7]);
    const doc = JSON.parse(text(t.render(model, 'v', undefined, false, odd, new Int32Array([1, 0]), 0, 2))) as { predictions: Array<{ probabilities: number[] }> };
    expect(doc.predictions.flatMap((p) => p.probabilities).map(Math.fround)).toEqual(Array.from(odd));
  });
});
