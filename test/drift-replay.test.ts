/**
 * `tradeflow drift replay`: run in-process with stream arguments, and once as a real process
 * from the build (as `npm test` builds before running).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { driftCommand, driftReplay } from '../src/cli/drift-replay';
import { createDetector } from '../src/drift/registry';
import { requireBuilt } from './helpers/requirements';

const streams = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'drift', 'river_streams.json'), 'utf8')) as {
  binary_seed42: number[];
  real_seed12345: number[];
};

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'drift-replay-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, text);
  return p;
}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
  lines: string[];
}

async function replay(argv: string[], input = '', command = false): Promise<Ran> {
  const stdin = Readable.from([Buffer.from(input)]);
  const out = new PassThrough();
  const err = new PassThrough();
  const outChunks: Buffer[] = [];
  const errChunks: Buffer[] = [];
  out.on('data', (c: Buffer) => outChunks.push(c));
  err.on('data', (c: Buffer) => errChunks.push(c));
  const code = command ? await driftCommand(argv, stdin, out, err) : await driftReplay(argv, stdin, out, err);
  const stdout = Buffer.concat(outChunks).toString('utf8');
  return { code, stdout, stderr: Buffer.concat(errChunks).toString('utf8'), lines: stdout.split('\n').filter(Boolean) };
}

/** What the CLI should print: every step in warning or drift, by feeding a detector directly. */
function expected(type: string, params: Record<string, string>, xs: number[]): string[] {
  const d = createDetector(type, params);
  return xs.flatMap((x, i) => {
    const s = d.update(x);
    return s === 'stable' ? [] : [`{"index": ${i}, "state": "${s}"}`];
  });
}

describe('tradeflow drift replay', () => {
  it('prints one JSON line per step in drift (Page-Hinkley on the River example, from a file)', async () => {
    const input = file('real.txt', streams.real_seed12345.join('\n') + '\n');
    const r = await replay(['--detector', 'page_hinkley', '--input', input]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.lines).toEqual(['{"index": 1006, "state": "drift"}']);
    expect(JSON.parse(r.lines[0])).toEqual({ index: 1006, state: 'drift' });
  });

  it('prints every step in warning, not only the first, and reads standard input', async () => {
    const r = await replay(['--detector', 'ddm'], streams.binary_seed42.join('\n'));
    expect(r.code).toBe(0);
    expect(r.lines).toEqual(expected('ddm', {}, streams.binary_seed42));
    expect(r.lines.filter((l) => l.includes('warning')).length).toBeGreaterThan(100);
    expect(r.lines).toContain('{"index": 1084, "state": "warning"}');
    expect(r.lines).toContain('{"index": 1334, "state": "drift"}');
    expect(r.lines).not.toContain('{"index": 1083, "state": "warning"}');
  });

  it('takes --param name=value (repeatable, also --param=name=value) and --detector=NAME', async () => {
    const input = streams.binary_seed42.join('\n');
    const r = await replay(['--detector=eddm', '--param', 'alpha=0.8', '--param=beta=0.75'], input);
    expect(r.code).toBe(0);
    expect(r.lines).toEqual(expected('eddm', { alpha: '0.8', beta: '0.75' }, streams.binary_seed42));
    expect(r.lines).toContain('{"index": 1278, "state": "drift"}');
    const k = await replay(['--detector', 'kswin', '--param', 'alpha=0.0001', '--param', 'seed=42', '--input', '-'], streams.real_seed12345.join('\n'));
    expect(k.lines).toEqual(['{"index": 1016, "state": "drift"}']);
  });

  it('accepts CRLF, spaces around numbers, exponents, and no newline at the end', async () => {
    const r = await replay(['--detector', 'page_hinkley', '--param', 'min_instances=1', '--param', 'threshold=1'], ' 0\r\n0 \r\n+0.0\r\n1e1\r\n5E+0');
    expect(r.code).toBe(0);
    expect(r.lines).toEqual(expected('page_hinkley', { min_instances: '1', threshold: '1' }, [0, 0, 0, 10, 5]));
    expect(r.lines.length).toBeGreaterThan(0);
  });

  it('prints nothing for a stream without change, and for an empty input', async () => {
    expect(await replay(['--detector', 'adwin'], '0\n'.repeat(500))).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(await replay(['--detector', 'hddm_w'], '')).toMatchObject({ code: 0, stdout: '', stderr: '' });
  });

  it('exits 2 on an unknown detector, naming the known ones', async () => {
    const r = await replay(['--detector', 'cusum'], '1\n');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown drift detector "cusum" \(known: ddm, eddm, hddm_a, hddm_w, adwin, page_hinkley, kswin\)/);
    expect(r.stdout).toBe('');
  });

  it('exits 2 on an unknown parameter or a bad value, naming it', async () => {
    const unknown = await replay(['--detector', 'adwin', '--param', 'window=5'], '1\n');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/adwin: unknown parameter "window" \(known: delta, clock, max_buckets, min_window_length, grace_period\)/);
    const bad = await replay(['--detector', 'adwin', '--param', 'clock=soon'], '1\n');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/clock must be a whole number >= 1, got "soon"/);
    const malformed = await replay(['--detector', 'adwin', '--param', 'clock'], '1\n');
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toMatch(/--param expects name=value, got "clock"/);
  });

  it('exits 2 on a line that is not a number, naming the line, after printing the steps before it', async () => {
    const lines = [...new Array(40).fill('0'), '1', 'abc', '1'];
    const r = await replay(['--detector', 'ddm'], lines.join('\n'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/line 42 is not a number: "abc"/);
    expect(r.lines).toEqual(['{"index": 40, "state": "drift"}']);
    const empty = await replay(['--detector', 'ddm'], '0\n\n1\n');
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/line 2 is empty, expected a number/);
    const inf = await replay(['--detector', 'ddm'], '0\n1e999\n');
    expect(inf.code).toBe(2);
    expect(inf.stderr).toMatch(/line 2 is out of range: "1e999"/);
    for (const word of ['nan', 'Infinity', '0x10', '1,5', 'true']) {
      const w = await replay(['--detector', 'adwin'], `${word}\n`);
      expect([w.code, w.stderr.includes('line 1 is not a number')], word).toEqual([2, true]);
    }
  });

  it('exits 2 on usage errors: no detector, unknown option, missing value, unreadable input', async () => {
    expect((await replay([], '')).stderr).toMatch(/--detector is required/);
    expect((await replay(['--detector', 'ddm', '--fast'], '')).stderr).toMatch(/unknown option "--fast"/);
    expect((await replay(['--detector'], '')).stderr).toMatch(/--detector needs a value/);
    expect((await replay(['--detector', 'ddm', 'extra'], '')).stderr).toMatch(/unexpected argument "extra"/);
    expect((await replay(['--detector', 'ddm', '--param', 'warm_start=1', '--param', 'warm_start=2'], '')).stderr).toMatch(/given twice/);
    const missing = await replay(['--detector', 'ddm', '--input', path.join(tmp, 'nope.txt')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read .*nope\.txt/);
    const dir = await replay(['--detector', 'ddm', '--input', tmp]);
    expect(dir).toMatchObject({ code: 2 });
    expect(dir.stderr).toMatch(/is a directory/);
    for (const argv of [[], ['--detector', 'ddm', '--fast']]) expect((await replay(argv, '')).code).toBe(2);
  });

  it('--help lists every detector with its parameters and River defaults', async () => {
    const r = await replay(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: tradeflow drift replay --detector NAME \[--param name=value \.\.\.\] \[--input FILE\]/);
    for (const s of ['ddm (error bits, warnings', 'kswin (real values', 'warm_start=30', 'lambda_val=0.05', 'delta=0.002', 'mode=both', 'seed=unset']) {
      expect(r.stdout).toContain(s);
    }
  });

  it('answers "tradeflow drift" with its subcommands', async () => {
    expect(await replay(['--help'], '', true)).toMatchObject({ code: 0 });
    expect((await replay(['--help'], '', true)).stdout).toMatch(/replay/);
    expect(await replay([], '', true)).toMatchObject({ code: 2 });
    expect((await replay(['rewind'], '', true)).stderr).toMatch(/unknown command "rewind"/);
    expect((await replay(['replay', '--detector', 'page_hinkley'], streams.real_seed12345.join('\n'), true)).lines).toEqual([
      '{"index": 1006, "state": "drift"}',
    ]);
  });

  const build = requireBuilt(path.join('src', 'cli', 'drift-replay.js'));
  it.skipIf(build.skip)('runs as a process from the build: stdin in, lines out, exit codes', () => {
    const built = build.get();
    const ok = spawnSync(process.execPath, [built, 'replay', '--detector', 'adwin'], { input: streams.real_seed12345.join('\n') + '\n', encoding: 'utf8' });
    expect([ok.status, ok.stdout, ok.stderr]).toEqual([0, '{"index": 1023, "state": "drift"}\n', '']);
    const bad = spawnSync(process.execPath, [built, 'replay', '--detector', 'adwin'], { input: '1\n2\nthree\n', encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe('tradeflow drift replay: line 3 is not a number: "three"\n');
  });
});
