import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Engine } from '../src/app';
import { PrequentialScore, parseEvalArgs, runEval } from '../src/cli/eval';
import { startTestEngine } from './helpers/engine';

const CLI = path.join(__dirname, '..', 'dist', 'src', 'cli', 'main.js');
let dir: string;
let csv: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tradeflow-eval-'));
  csv = path.join(dir, 'stream.csv');
  // A drifting stream: the sign of a*x1 - x2 decides UP/DOWN, and a flips half-way.
  let s = 12345;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const lines = ['t,x1,x2,x3,label'];
  for (let i = 0; i < 2500; i++) {
    const x1 = rnd() * 2 - 1;
    const x2 = rnd() * 2 - 1;
    const x3 = rnd();
    const a = i < 1250 ? 1 : -1;
    lines.push(`${i},${x1.toFixed(5)},${x2.toFixed(5)},${x3.toFixed(5)},${a * x1 - 0.5 * x2 > 0 ? 'UP' : 'DOWN'}`);
  }
  writeFileSync(csv, lines.join('\n') + '\n');
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('tradeflow eval', () => {
  it('scores a prequential stream', () => {
    const p = new PrequentialScore();
    const pairs: [number, number][] = [[1, 1], [0, 1], [1, 0], [0, 0], [1, 1]];
    for (const [pred, actual] of pairs) p.add(pred, actual);
    const r = p.result(1, 'in-process', 'sgd');
    expect(r).toMatchObject({ rows: 5, accuracy: 0.6, precision: 2 / 3, recall: 2 / 3 });
    // previous label: 1→1 ok, 1→0 no, 0→0 ok, 0→1 no
    expect(r.previousLabelAccuracy).toBe(0.5);
  });

  it('through HTTP matches the same learner in-process, and learns the stream', async () => {
    const engine: Engine = await startTestEngine({ MODEL_PATH: 'none', FEATURES: '3' });
    try {
      const base = ['--csv', csv, '--label-column', 'label', '--positive', 'UP', '--drop-columns', 't'];
      const overHttp = await runEval(parseEvalArgs([...base, '--url', `http://127.0.0.1:${engine.port}`]));
      const inProcess = await runEval(parseEvalArgs([...base, '--in-process']));
      expect(overHttp.rows).toBe(2500);
      expect(engine.learning.learner.updates).toBe(2500);
      // Workers score with the weights folded to raw features: a class can flip at p ≈ 0.5.
      expect(Math.abs(overHttp.accuracy - inProcess.accuracy)).toBeLessThan(0.002);
      expect(overHttp.accuracy).toBeGreaterThan(0.8);
      expect(overHttp.windows.count).toBe(2);
      expect(overHttp.windows.min).toBeLessThan(overHttp.windows.max);
    } finally {
      await engine.shutdown('test end');
    }
  });

  it('--model default names no model, so the engine\'s default route answers (and the result says who did)', async () => {
    const wide = path.join(dir, 'wide.csv');
    let t = 99;
    const rnd = () => ((t = (Math.imul(t, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const lines = [Array.from({ length: 16 }, (_, j) => `f${j}`).join(',') + ',label'];
    for (let i = 0; i < 300; i++) lines.push(Array.from({ length: 16 }, () => rnd().toFixed(4)).join(',') + ',' + (rnd() < 0.5 ? 'UP' : 'DOWN'));
    writeFileSync(wide, lines.join('\n') + '\n');
    const engine: Engine = await startTestEngine({ SERVE_POLICY: 'fixed' });
    try {
      const base = ['--csv', wide, '--label-column', 'label', '--positive', 'UP', '--url', `http://127.0.0.1:${engine.port}`];
      const byDefault = await runEval(parseEvalArgs([...base, '--model', 'default']));
      expect(byDefault).toMatchObject({ rows: 300, model: 'default', servedBy: { ensemble: 300 } });
      const named = await runEval(parseEvalArgs([...base, '--model', 'sgd']));
      expect(named.servedBy).toEqual({ sgd: 300 });
    } finally {
      await engine.shutdown('test end');
    }
  });

  it('refuses bad arguments with exit 2 and a message', () => {
    const r = spawnSync(process.execPath, [CLI, 'eval', '--csv', csv], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--label-column/);
    const bad = spawnSync(process.execPath, [CLI, 'eval', '--csv', csv, '--label-column', 'nope', '--positive', 'UP', '--in-process'], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/nope/);
  });
});
